"""The papermill runner: executes, records provenance, names failures, guards the published
outputs (clean tree, no smoke over full, an output directory) and finds stale notebooks."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from hypercore.book import gitstate, runner
from hypercore.book.imports import (
    module_closure,
    module_paths,
    notebook_modules,
    source_hash,
)
from hypercore.book.provenance import load_records, record, save_records
from hypercore.book.setup import setup
from hypercore.book.staleness import find_stale

pytest.importorskip("papermill")

ENV_VARS = (
    "HYPERCORE_PROFILE",
    "HYPERCORE_DEVICE",
    "HYPERCORE_COMMIT",
    "HYPERCORE_CLEAN",
    "TQDM_DISABLE",
    "PYTHONPATH",
    "OMP_NUM_THREADS",
)


# --------------------------------------------------------------------------- helpers


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def new_notebook(body: str, *more: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "full"\ndevice = "auto"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A test notebook"),
        params,
        nbformat.v4.new_code_cell(body),
        *map(nbformat.v4.new_code_cell, more),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def write_notebook(path: Path, body: str, *more: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(body, *more), path)
    return path


def make_repo(root: Path, notebooks: dict[str, str]) -> Path:
    """A git repository with book/<name> notebooks (committed); returns the book folder."""
    book = root / "book"
    for name, body in notebooks.items():
        write_notebook(book / name, body)
    (root / ".gitignore").write_text("_build/\n")
    (root / "lib.py").write_text("x = 1\n")
    git(root, "init", "-q")
    commit_all(root)
    return book


def commit_all(root: Path, message: str = "commit") -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "--short", "HEAD").strip()


def run(book: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The runner in a subprocess (a real kernel), profile smoke on the CPU, seed 3."""
    clean = {k: v for k, v in os.environ.items() if k not in ENV_VARS[:4]}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hypercore.book.runner",
            *args,
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
        env={**clean, **(env or {})},
        timeout=300,
        cwd=book.parent,
    )


@pytest.fixture
def env(monkeypatch):
    """An environment without the runner's variables, restored after the test (the
    in-process runner sets some of them for its kernels)."""
    for var in ENV_VARS:
        monkeypatch.setenv(var, "placeholder")
        monkeypatch.delenv(var)
    return monkeypatch


@pytest.fixture
def fake_execute(monkeypatch):
    """Replace papermill: the 'executed' notebook is the input with one output added.
    Returns the list of (notebook, destination, params) it was called with."""
    calls = []

    def execute(notebook, destination, params, timeout, root):
        calls.append((notebook, destination, params))
        nb = nbformat.read(notebook, as_version=4)
        nb.cells[-1].outputs = [nbformat.v4.new_output("stream", text=f"{params}\n")]
        destination.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, destination)
        return True, 0.5, "ok"

    monkeypatch.setattr(runner, "execute", execute)
    return calls


def main(book: Path, *args: str) -> int:
    return runner.main([*args, "--book", str(book), "--device", "cpu"])


# ------------------------------------------------------------ real execution (one kernel each)


def test_runner_executes_in_place_and_records_provenance(tmp_path):
    book = make_repo(tmp_path, {"ok.ipynb": "import os\nprint(profile, device, seed)"})
    head = git(tmp_path, "rev-parse", "--short", "HEAD").strip()
    nb = book / "ok.ipynb"
    result = run(book, str(nb))
    assert result.returncode == 0, result.stderr
    stored = nbformat.read(nb, 4)
    assert stored.cells[-1].outputs[0]["text"].strip() == "smoke cpu 3"
    row = json.loads((book / "provenance.json").read_text())["ok.ipynb"]
    assert row["profile"] == "smoke" and row["seed"] == 3
    assert row["device"].startswith("cpu") and row["torch"]
    assert row["commit"] == head and row["published"] is True
    assert row["source_sha256"] == source_hash(stored) and row["modules"] == []
    assert "ok.ipynb" in (book / "provenance.md").read_text()


def test_a_failing_notebook_is_named_and_left_untouched(tmp_path):
    book = make_repo(
        tmp_path,
        {"good.ipynb": "print('fine')", "bad.ipynb": "raise RuntimeError('claim does not hold')"},
    )
    good, bad = book / "good.ipynb", book / "bad.ipynb"
    before = bad.read_text()
    result = run(book, str(good), str(bad))
    assert result.returncode == 1
    assert "bad.ipynb" in result.stderr and "claim does not hold" in result.stdout
    assert bad.read_text() == before
    records = json.loads((book / "provenance.json").read_text())
    assert list(records) == ["good.ipynb"]
    assert (tmp_path / "_build" / "failed" / "bad.ipynb").exists()


def test_a_missing_notebook_is_named(tmp_path, env, capsys):
    assert main(tmp_path, str(tmp_path / "nope.ipynb")) == 2
    assert "nope.ipynb" in capsys.readouterr().err


# ----------------------------------------------------------------- a clean tree, or marked


def test_a_dirty_tree_is_refused_and_named(tmp_path, env, fake_execute, capsys):
    book = make_repo(tmp_path, {"a.ipynb": "print(1)"})
    (tmp_path / "lib.py").write_text("x = 2\n")
    (tmp_path / "new.py").write_text("y = 1\n")
    assert main(book, "--profile", "full") == 2
    err = capsys.readouterr().err
    assert "lib.py" in err and "new.py" in err and "--allow-dirty" in err
    assert fake_execute == [] and not (book / "provenance.json").exists()


def test_the_executed_notebooks_and_generated_pages_do_not_make_a_tree_dirty(
    tmp_path, env, fake_execute
):
    book = make_repo(tmp_path, {"a.ipynb": "print(1)", "b.ipynb": "print(2)"})
    write_notebook(book / "a.ipynb", "print('edited')")
    (book / "scoreboard.md").write_text("generated\n")
    assert main(book, str(book / "a.ipynb"), "--profile", "full") == 0
    assert load_records(book)["a.ipynb"]["published"] is True
    # ...but another notebook's uncommitted edit does
    commit_all(tmp_path)
    write_notebook(book / "b.ipynb", "print('edited')")
    assert main(book, str(book / "a.ipynb"), "--profile", "full") == 2


def test_allow_dirty_runs_and_marks_the_row_not_publishable(tmp_path, env, fake_execute):
    book = make_repo(tmp_path, {"a.ipynb": "print(1)"})
    head = git(tmp_path, "rev-parse", "--short", "HEAD").strip()
    (tmp_path / "lib.py").write_text("x = 2\n")
    assert main(book, "--profile", "full", "--allow-dirty") == 0
    row = load_records(book)["a.ipynb"]
    assert row["commit"] == head + "+dirty" and row["published"] is False
    assert row["dirty"] == ["lib.py"]
    assert "(not publishable)" in (book / "provenance.md").read_text()


def test_a_copy_without_git_is_checked_against_its_manifest(tmp_path, env):
    book = make_repo(tmp_path / "repo", {"a.ipynb": "print(1)"})
    repo = book.parent
    head = git(repo, "rev-parse", "--short", "HEAD").strip()
    gitstate.write_manifest(repo)
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".git"))
    state = gitstate.tree_state(copy)
    assert state.how == "manifest" and state.clean and state.commit == head
    write_notebook(copy / "book" / "a.ipynb", "print('edited')")
    assert gitstate.tree_state(copy, [copy / "book" / "a.ipynb"]).clean
    (copy / "lib.py").write_text("x = 2\n")
    state = gitstate.tree_state(copy, [copy / "book" / "a.ipynb"])
    assert state.dirty == ("lib.py",) and state.recorded_commit == head + "+dirty"


def test_without_git_or_manifest_the_environment_must_vouch(tmp_path, env):
    state = gitstate.tree_state(tmp_path)
    assert not state.clean and "HYPERCORE_CLEAN=1" in state.unknown
    env.setenv("HYPERCORE_COMMIT", "abc1234")
    assert not gitstate.tree_state(tmp_path).clean
    env.setenv("HYPERCORE_CLEAN", "1")
    state = gitstate.tree_state(tmp_path)
    assert state.clean and state.recorded_commit == "abc1234"


def test_porcelain_paths_keep_both_sides_of_a_rename():
    out = " M lib.py\0R  new.py\0old.py\0?? book/x.ipynb\0"
    assert gitstate.porcelain_paths(out) == ["lib.py", "new.py", "old.py", "book/x.ipynb"]


# ------------------------------------------------- the published outputs are not overwritten


def test_output_dir_leaves_the_book_untouched(tmp_path, env, fake_execute):
    book = make_repo(tmp_path, {"part/a.ipynb": "print(1)"})
    (tmp_path / "lib.py").write_text("x = 2\n")  # a reader's local change: allowed here
    before = (book / "part" / "a.ipynb").read_text()
    out = tmp_path / "out"
    assert main(book, "--profile", "smoke", "--output-dir", str(out)) == 0
    assert (book / "part" / "a.ipynb").read_text() == before
    assert not (book / "provenance.json").exists()
    executed = nbformat.read(out / "part" / "a.ipynb", 4)
    assert "smoke" in executed.cells[-1].outputs[0]["text"]
    row = load_records(out)["part/a.ipynb"]
    assert row["profile"] == "smoke" and row["published"] is False


def test_a_smoke_run_does_not_replace_full_outputs_unless_asked(tmp_path, env, fake_execute):
    book = make_repo(tmp_path, {"a.ipynb": "print(1)", "b.ipynb": "print(2)", "c.ipynb": "1"})
    head = git(tmp_path, "rev-parse", "--short", "HEAD").strip()
    save_records(book, {"a.ipynb": record("a.ipynb", "full", 0, "gpu", 1.0, head, "ok")})
    nb = nbformat.read(book / "b.ipynb", 4)  # no row, but papermill says full
    nb.metadata["papermill"] = {"parameters": {"profile": "full"}}
    nbformat.write(nb, book / "b.ipynb")
    commit_all(tmp_path)
    assert main(book, "--profile", "smoke") == 2
    assert fake_execute == []
    assert main(book, str(book / "c.ipynb"), "--profile", "smoke") == 0
    assert main(book, "--profile", "smoke", "--overwrite-full") == 0
    assert load_records(book)["a.ipynb"]["profile"] == "smoke"


def test_the_profile_comes_from_the_option_or_the_environment_never_both(
    tmp_path, env, fake_execute, capsys
):
    book = make_repo(tmp_path, {"a.ipynb": "print(1)"})
    env.setenv("HYPERCORE_PROFILE", "smoke")
    assert main(book, "--profile", "full") == 2
    assert "HYPERCORE_PROFILE=smoke contradicts --profile full" in capsys.readouterr().err
    assert main(book, "--output-dir", str(tmp_path / "out")) == 0
    assert fake_execute[-1][2]["profile"] == "smoke"
    assert os.environ["HYPERCORE_PROFILE"] == "smoke" and os.environ["HYPERCORE_DEVICE"] == "cpu"


def test_the_setup_call_honours_the_device_override(env):
    env.setenv("HYPERCORE_DEVICE", "cpu")
    assert setup(device="cuda:7", plot_style=False).device.type == "cpu"


# ------------------------------------------------------- what a notebook's outputs depend on


def test_the_source_hash_covers_code_only():
    nb = new_notebook("x = 1")
    base = source_hash(nb)
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[0].source = "# Another title"
    injected = nbformat.v4.new_code_cell('profile = "smoke"')
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(2, injected)
    assert source_hash(nb) == base
    nb.cells[-1].source = "x = 2"
    assert source_hash(nb) != base


def fake_package(root: Path) -> Path:
    """fakepkg: __init__ -> .a ; a -> fakepkg.sub.deep (lazily) ; sub/deep -> ..c ; unused."""
    pkg = root / "fakepkg"
    files = {
        "__init__.py": "from .a import f\n",
        "a.py": "import os\n\ndef f():\n    from fakepkg.sub import deep\n    return deep\n",
        "sub/__init__.py": "",
        "sub/deep.py": "from ..c import g\n",
        "c.py": "g = 1\n",
        "unused.py": "import fakepkg.c\n",
        "b.py": "from . import c\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    return pkg


def test_the_import_closure_follows_the_package_imports(tmp_path):
    pkg = fake_package(tmp_path)
    everything_but = {"fakepkg.unused", "fakepkg.b"}
    expected = {"fakepkg", "fakepkg.a", "fakepkg.sub", "fakepkg.sub.deep", "fakepkg.c"}
    assert module_closure(["fakepkg"], pkg, "fakepkg") == expected
    nb = new_notebook("%matplotlib inline\nimport numpy\nfrom fakepkg import b, f")
    assert set(notebook_modules(nb, pkg, "fakepkg")) == expected | {"fakepkg.b"}
    assert not everything_but & module_closure(["fakepkg.c"], pkg, "fakepkg")
    assert module_paths(["fakepkg.sub"], "fakepkg") == ["fakepkg/sub.py", "fakepkg/sub/__init__.py"]


def test_the_import_closure_of_hypercore_itself():
    nb = new_notebook("from hypercore.book import setup")
    modules = notebook_modules(nb)
    assert {"hypercore", "hypercore.book", "hypercore.book.setup"} <= set(modules)
    assert "hypercore.book.runner" not in modules and "hypercore.bench" not in modules


def test_staleness_source_module_and_missing_rows(tmp_path):
    pkg = fake_package(tmp_path)
    book = tmp_path / "book"
    one = write_notebook(book / "one.ipynb", "import fakepkg.c")
    two = write_notebook(book / "two.ipynb", "import fakepkg.b")
    three = write_notebook(book / "three.ipynb", "print(3)")
    git(tmp_path, "init", "-q")
    head = commit_all(tmp_path)

    def row(nb: Path, commit: str = head) -> dict:
        stored = nbformat.read(nb, 4)
        return record(
            nb.name,
            "full",
            0,
            "cpu",
            1.0,
            gitstate.TreeState(commit),
            "ok",
            source_sha256=source_hash(stored),
            modules=notebook_modules(stored, pkg, "fakepkg"),
        )

    def stale() -> dict[str, str]:
        found = find_stale([one, two, three], records, lambda p: p.name, pkg, "fakepkg")
        return {s.notebook: str(s) for s in found}

    records = {"one.ipynb": row(one), "two.ipynb": row(two)}
    assert list(stale()) == ["three.ipynb"] and "no provenance row" in stale()["three.ipynb"]

    (pkg / "b.py").write_text("from . import c\nz = 2\n")  # only two imports b
    assert sorted(stale()) == ["three.ipynb", "two.ipynb"]
    assert f"fakepkg changed since {head}: fakepkg/b.py" in stale()["two.ipynb"]

    commit_all(tmp_path)
    write_notebook(one, "import fakepkg.c\nprint('more')")
    assert "code cells changed" in stale()["one.ipynb"]

    records["three.ipynb"] = row(three, "0123456789abcdef")  # e.g. a shallow clone
    records["three.ipynb"]["modules"] = ["fakepkg.c"]
    assert "not in this clone's history" in stale()["three.ipynb"]


def test_only_stale_executes_exactly_the_stale_notebooks(tmp_path, env, fake_execute, capsys):
    book = make_repo(tmp_path, {"fresh.ipynb": "print(1)", "missing.ipynb": "print(2)"})
    head = git(tmp_path, "rev-parse", "--short", "HEAD").strip()
    fresh = nbformat.read(book / "fresh.ipynb", 4)
    save_records(
        book,
        {
            "fresh.ipynb": record(
                "fresh.ipynb", "full", 0, "cpu", 1.0, head, "ok", source_sha256=source_hash(fresh)
            )
        },
    )
    commit_all(tmp_path)
    assert main(book, "--stale") == 0
    out = capsys.readouterr().out
    assert "1 of 2 notebook(s) stale" in out and "missing.ipynb: no provenance row" in out
    assert main(book, "--only-stale", "--profile", "full") == 0
    assert [call[0].name for call in fake_execute] == ["missing.ipynb"]
