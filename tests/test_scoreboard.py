"""The reproduction scoreboard: rows from stored claim records, and the claim-cell check."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from hypercore.book import provenance, scoreboard
from hypercore.book.claims import ClaimBook, exact, paired
from hypercore.book.scoreboard import collect, main, missing_records, render

ROOT = Path(__file__).resolve().parents[1]
CLAIM_CELL = 'claims = ClaimBook(cfg)\nclaims.record("...")\nclaims.check()'


def claim_outputs(profile="full", expected="held", paper_claim="beats the MLP"):
    """The outputs a claim cell stores, produced by a real ClaimBook."""
    outputs = []

    def display(bundle, raw=False, metadata=None):
        outputs.append(nbformat.v4.new_output("display_data", data=bundle, metadata=metadata))

    book = ClaimBook(profile=profile, device="NVIDIA H200", display=display)
    book.record(
        "hn-beats-mlp",
        paper="Ha, Dai & Le (2017), HyperNetworks",
        paper_claim=paper_claim,
        setting="digits, 64-32-10 MLP",
        result=paired(
            [0.95, 0.96, 0.94, 0.95, 0.97],
            [0.90, 0.91, 0.90, 0.92, 0.91],
            direction="greater",
            names=("hypernetwork", "MLP"),
            metric="test accuracy",
        ),
        seeds=range(5),
        expected=expected,
    )
    book.record(
        "smaller",
        paper="Ha, Dai & Le (2017), HyperNetworks",
        paper_claim="fewer parameters than the target",
        setting="chunk head",
        result=exact(1600, reference=4810, direction="less", name="hypernetwork"),
        expected="held",
    )
    book.store()
    return outputs


def write_notebook(path: Path, title: str, claim_cell: bool, outputs=()) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(CLAIM_CELL if claim_cell else "x = 1")
    cell.outputs = list(outputs)
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nText."), cell]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.fixture
def book(tmp_path):
    book = tmp_path / "book"
    write_notebook(book / "design/b.ipynb", "Chapter B", True, claim_outputs())
    write_notebook(book / "foundations/a.ipynb", "Chapter A", False)
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - chapters:\n"
        "      - file: book/foundations/a\n      - file: book/design/b\n"
    )
    (book / "provenance.json").write_text(
        json.dumps(
            {"design/b.ipynb": {"device": "NVIDIA H200", "profile": "full", "commit": "abc1234"}}
        )
    )
    return book


def rows(page: str) -> list[str]:
    return [line for line in page.splitlines() if line.startswith("| [")]


def test_one_row_per_claim_with_provenance(book):
    chapters = collect(book)
    assert [c.path for c in chapters] == ["foundations/a.ipynb", "design/b.ipynb"]  # toc order
    b = chapters[1]
    assert b.title == "Chapter B" and b.has_claim_cell
    assert [c.id for c in b.claims] == ["hn-beats-mlp", "smaller"]
    page = render(chapters, scoreboard.load_provenance(book))
    first, _ = rows(page)
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", first)[1:-1]]
    assert cells[0] == "[b](design/b.ipynb): `hn-beats-mlp`"
    assert cells[1] == "**held**"
    assert cells[2] == "+0.0460 [+0.0318, +0.0602]; seeds 0-4"
    assert cells[3] == "Ha, Dai & Le (2017), HyperNetworks"
    assert len(rows(page)) == 2
    details = page[page.index("## Every claim in full") :]
    assert "### [Chapter B](design/b.ipynb)" in details
    assert "- **Paper**: Ha, Dai & Le (2017), HyperNetworks: beats the MLP" in details
    assert "- **Our setting**: digits, 64-32-10 MLP" in details
    assert "difference +0.0460 [+0.0318, +0.0602] (95% CI), 5 seeds" in details
    assert "Declared claim: hypernetwork - MLP > 0." in details
    assert "- **Run**: NVIDIA H200 (full), commit `abc1234`" in details
    assert "hypernetwork 1600 vs reference 4810" in details
    assert "2 claim(s) from 1 chapter(s): 2 held, 0 did not hold, 0 inconclusive." in page
    assert "Chapters without a claim cell: [Chapter A](foundations/a.ipynb)." in page
    assert "No chapter has stored a claim record yet" not in page


def test_smoke_runs_mismatches_and_missing_provenance_are_marked(tmp_path):
    book = tmp_path / "book"
    outputs = claim_outputs(profile="smoke", expected="did not hold", paper_claim="a | b\nc")
    write_notebook(book / "c.ipynb", "C", True, outputs)
    page = render(collect(book), {})
    row = rows(page)[0]
    assert "| **held** (smoke run: not asserted) (the text says: did not hold) |" in row
    assert "a \\| b c" in page  # a pipe cannot break a table, nor a newline a line
    assert "NVIDIA H200 (smoke; no provenance record), commit unknown" in page


def test_claim_cell_without_records_fails_the_check(book, capsys):
    write_notebook(book / "design/c.ipynb", "Chapter C", True)  # never executed
    assert missing_records(collect(book)) == ["design/c.ipynb"]
    assert main(["--book", str(book), "--check"]) == 1
    assert "design/c.ipynb" in capsys.readouterr().err
    assert not (book / "scoreboard.md").exists()  # --check writes nothing
    assert main(["--book", str(book)]) == 1  # the build's call fails too, after writing
    assert len(rows((book / "scoreboard.md").read_text())) == 2


def test_check_passes_and_page_is_written(book, capsys):
    assert main(["--book", str(book), "--check"]) == 0
    assert main(["--book", str(book)]) == 0
    assert "2 claim(s) from 2 notebook(s)" in capsys.readouterr().out
    assert len(rows((book / "scoreboard.md").read_text())) == 2


def test_an_empty_book_says_so(tmp_path):
    write_notebook(tmp_path / "book" / "a.ipynb", "A", False)
    page = render(collect(tmp_path / "book"), {})
    assert "No chapter has stored a claim record yet" in page
    assert rows(page) == []
    assert "| chapter (claim) | verdict | our result | paper |" in page


def test_markdown_mentions_are_not_claim_cells(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T\n\nThe claim cell calls `ClaimBook(cfg)`.")]
    assert not scoreboard.has_claim_cell(json.loads(nbformat.writes(nb)))


def test_shares_names_with_runner_and_provenance():
    runner = pytest.importorskip("hypercore.book.runner")
    assert scoreboard.PROVENANCE == provenance.RECORDS
    assert scoreboard.find_notebooks(ROOT / "book") == runner.find_notebooks(ROOT / "book")


def test_scoreboard_is_in_the_toc_and_the_build():
    toc = (ROOT / "_toc.yml").read_text()
    assert re.search(r"file: book/provenance\n\s+- file: book/scoreboard\n", toc)
    assert "python -m hypercore.book.scoreboard" in (ROOT / "scripts/build-book").read_text()
    assert (ROOT / "book" / scoreboard.PAGE).exists()


def test_every_chapter_with_a_claim_cell_has_stored_records():
    """Over the real book: a chapter whose claim cell has no stored record fails here."""
    chapters = collect(ROOT / "book")
    assert chapters, "no notebooks found under book/"
    missing = missing_records(chapters)
    assert not missing, f"claim cell but no stored claim records (run the runner): {missing}"


def test_claims_stored_by_a_real_kernel_reach_the_scoreboard(tmp_path):
    """End to end: a tiny notebook executed in a kernel stores records that the page shows."""
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    book = tmp_path / "book"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Kernel chapter"),
        nbformat.v4.new_code_cell(
            "from hypercore.book.claims import ClaimBook, paired\n"
            "claims = ClaimBook(profile='full', device='cpu')\n"
            "claims.record('greater', paper='P (2020)', paper_claim='a beats b',\n"
            "              setting='toy', expected='held', seeds=[0, 1, 2],\n"
            "              result=paired([2.0, 2.1, 2.2], [1.0, 1.05, 1.1],\n"
            "                            direction='greater'))\n"
            "claims.check()"
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    old = dict(os.environ)
    os.environ.update(env)
    try:
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    book.mkdir()
    nbformat.write(nb, book / "k.ipynb")
    nbformat.validate(nbformat.read(book / "k.ipynb", 4))
    stdout = "".join(o.get("text", "") for o in nb.cells[1].outputs if o.output_type == "stream")
    assert "greater" in stdout and "held" in stdout
    (claim,) = collect(book)[0].claims
    assert claim.verdict == "held" and claim.seeds == [0, 1, 2]
    out = subprocess.run(
        [sys.executable, "-m", "hypercore.book.scoreboard", "--book", str(book)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    page = (book / "scoreboard.md").read_text()
    assert "| [k](k.ipynb): `greater` | **held** |" in page
    assert "- **Paper**: P (2020): a beats b" in page


def test_landing_page_maps_applications_to_chapters_modules_and_verdicts(tmp_path):
    from hypercore.book import landing

    book = tmp_path / "book"
    (book / "applications").mkdir(parents=True)
    module = tmp_path / "hypercore" / "apps"
    module.mkdir(parents=True)
    (module / "continual.py").write_text("")
    held = scoreboard.Claim.from_dict(
        {"id": "continual-a", "verdict": "held", "result": "r", "paper": "P (2020)"}
    )
    undecided = scoreboard.Claim.from_dict(
        {"id": "continual-b", "verdict": "inconclusive", "result": "r", "paper": "P (2020)"}
    )
    chapter = scoreboard.Chapter(
        path="applications/continual.ipynb",
        title="Continual",
        has_claim_cell=True,
        claims=[held, undecided],
    )
    page = landing.write_page(book, [chapter])
    text = page.read_text()
    assert page == book / "applications" / "index.md"
    assert "| [continual](continual.ipynb), `hypercore.apps.continual` |" in text
    assert "[1 held, 1 inconclusive](../scoreboard.md)" in text
    assert "`hypercore.apps.continual`" in text  # the module file exists
    assert "`hypercore.apps.transfer`" not in text  # it does not
    assert "| Transfer learning (von Oswald et al. (2020)) |" in text
    assert "| not written yet, `hypercore" not in text
    total = sum(len(g) for g in landing.APPLICATIONS.values())
    assert f"1 of the {total} applications have a chapter so far." in text
    assert total == 18
