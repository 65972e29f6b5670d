"""The papermill runner: executes in place, records provenance, names failures."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("papermill")


def write_notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "full"\ndevice = "auto"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A test notebook"),
        params,
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def run(book: Path, *notebooks: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYPERCORE_PROFILE"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hypercore.book.runner",
            *map(str, notebooks),
            "--book",
            str(book),
            "--profile",
            "smoke",
            "--device",
            "cpu",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=book.parent,
    )


def test_runner_executes_in_place_and_records_provenance(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    nb = book / "ok.ipynb"
    write_notebook(nb, "print(profile, device, seed)")
    result = run(book, nb)
    assert result.returncode == 0, result.stderr
    outputs = nbformat.read(nb, 4).cells[-1].outputs
    assert outputs[0]["text"].strip() == "smoke cpu 3"
    record = json.loads((book / "provenance.json").read_text())["ok.ipynb"]
    assert record["profile"] == "smoke" and record["seed"] == 3
    assert record["device"].startswith("cpu") and record["torch"] and record["commit"]
    assert "ok.ipynb" in (book / "provenance.md").read_text()


def test_a_failing_notebook_is_named_and_left_untouched(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    good, bad = book / "good.ipynb", book / "bad.ipynb"
    write_notebook(good, "print('fine')")
    write_notebook(bad, "raise RuntimeError('claim does not hold')")
    before = bad.read_text()
    result = run(book, good, bad)
    assert result.returncode == 1
    assert "bad.ipynb" in result.stderr and "claim does not hold" in result.stdout
    assert bad.read_text() == before
    records = json.loads((book / "provenance.json").read_text())
    assert list(records) == ["good.ipynb"]
    assert (tmp_path / "_build" / "failed" / "bad.ipynb").exists()


def test_a_missing_notebook_is_named(tmp_path):
    result = run(tmp_path, tmp_path / "nope.ipynb")
    assert result.returncode == 2 and "nope.ipynb" in result.stderr
