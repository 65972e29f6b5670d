"""What the repository ships besides code: a licence, citation metadata, one bibliography."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_licence_file_matches_pyproject():
    assert pyproject()["license"] == {"text": "MIT"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "The Hypernetworks book team" in text


def test_the_citation_file_matches_the_package():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert str(cff["version"]) == pyproject()["version"] and cff["license"] == "MIT"
    assert [a["name"] for a in cff["authors"]] == [a["name"] for a in pyproject()["authors"]]
    assert cff["preferred-citation"]["type"] == "book"


def test_one_bibliography_for_the_book():
    yaml = pytest.importorskip("yaml")
    database = pytest.importorskip("pybtex.database")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["bibtex_bibfiles"] == ["book/references.bib"]
    assert "book/bibliography" in (ROOT / "_toc.yml").read_text()
    assert "{bibliography}" in (ROOT / "book" / "bibliography.md").read_text()
    bib = database.parse_file(str(ROOT / "book" / "references.bib"))
    assert len(bib.entries) >= 20
    for key, entry in bib.entries.items():
        assert entry.persons.get("author") and entry.fields.get("title"), key
        if entry.type != "misc" or "eprint" in entry.fields:
            assert entry.fields.get("year"), key
