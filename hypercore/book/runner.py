"""Execute the book's notebooks with papermill and record their provenance.

Usage (from the repository root)::

    python -m hypercore.book.runner                       # every notebook, full profile
    python -m hypercore.book.runner book/foundations/first-hypernetwork.ipynb \\
        --profile full --device cuda --seed 1
    python -m hypercore.book.runner --jobs 4              # several kernels at once (GPU box)
    python -m hypercore.book.runner --stale               # which stored outputs are stale
    python -m hypercore.book.runner --only-stale --jobs 4 # re-execute exactly those
    python -m hypercore.book.runner NB.ipynb --profile smoke --output-dir /tmp/out

Each notebook is executed into a temporary file with the parameters
``profile``, ``device`` and ``seed`` injected; only a successful run is kept.
In place (the default) it replaces the stored notebook and adds a row to
``book/provenance.json`` (and the generated page ``book/provenance.md``); with
``--output-dir`` it goes under that directory instead, with its own
``provenance.json``, and the book is left untouched. A failing notebook keeps
its stored version, its failed copy goes to ``_build/failed/``, and the runner
exits 1 naming it.

Guards (exit status 2, before anything runs):

* a run into the book needs a clean tree: no uncommitted change outside the
  notebooks being executed and the generated pages. ``--allow-dirty`` runs
  anyway and marks the rows not publishable (commit ``...+dirty``).
* a profile other than ``full`` into the book does not replace a notebook whose
  stored run is ``full``, unless ``--overwrite-full``.
* ``HYPERCORE_PROFILE`` / ``HYPERCORE_DEVICE``, when set, are the defaults of
  ``--profile`` / ``--device``; an option that contradicts them is an error.
  The kernels run with the runner's profile and device, whatever the notebook's
  parameters cell or the environment say.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import nbformat

from hypercore.book.gitstate import MANIFEST, TreeState, git_toplevel, tree_state, write_manifest
from hypercore.book.imports import INJECTED_TAG, notebook_modules, package_dir, source_hash
from hypercore.book.provenance import GENERATED, load_records, record, save_records
from hypercore.book.setup import DEVICE_ENV, PROFILE_ENV, PROFILES
from hypercore.book.staleness import Stale, find_stale

BOOK = Path("book")  # relative to the working directory: run from the repository root
FULL = "full"


class UsageError(Exception):
    """A request the runner refuses before executing anything (exit status 2)."""


def find_notebooks(book: Path) -> list[Path]:
    """Every ``.ipynb`` under ``book`` except build output and checkpoints."""
    return sorted(
        p
        for p in book.rglob("*.ipynb")
        if "_build" not in p.parts and ".ipynb_checkpoints" not in p.parts
    )


def option_or_env(option: str | None, env: str, default: str, flag: str) -> str:
    """The value of ``flag``: the option, else ``$env``, else ``default``; an option that
    contradicts a set environment variable is a :class:`UsageError`."""
    value = os.environ.get(env, "")
    if option and value and option != value:
        raise UsageError(f"{env}={value} contradicts {flag} {option}: unset one of them")
    return option or value or default


def kernel_environment(root: Path, jobs: int, profile: str, device: str) -> None:
    """Environment the kernels inherit: the runner's profile and device (which the setup
    call reads), no progress bars, importable hypercore, fair threads."""
    os.environ.update({"TQDM_DISABLE": "1", PROFILE_ENV: profile, DEVICE_ENV: device})
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p
    )
    if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))


def hide_injected_parameters(path: Path) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell``: the rendered page shows
    the chapter, not the runner's bookkeeping (the cell stays in the notebook, for nbval)."""
    nb = json.loads(path.read_text())
    changed = False
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if INJECTED_TAG in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
            changed = True
    if changed:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def execute(
    notebook: Path, destination: Path, params: dict, timeout: int, root: Path
) -> tuple[bool, float, str]:
    """Run one notebook; write ``destination`` only on success. Returns (ok, seconds, message)."""
    import papermill

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / notebook.name
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(notebook),
                str(out),
                parameters=params,
                kernel_name="python3",
                cwd=str(notebook.parent),
                progress_bar=False,
                execution_timeout=timeout,
            )
        except Exception as err:  # papermill raises PapermillExecutionError and others
            failed = root / "_build" / "failed"
            failed.mkdir(parents=True, exist_ok=True)
            if out.exists():
                shutil.copy(out, failed / notebook.name)
            message = str(err).strip().splitlines()
            return False, time.perf_counter() - start, message[-1] if message else repr(err)
        seconds = time.perf_counter() - start
        hide_injected_parameters(out)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, destination)
    return True, seconds, "ok"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 ok, 1 a notebook failed, 2 refused before running.",
    )
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        help="notebooks to run (default: every notebook under the book folder)",
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        help=f"full (published) or smoke (CI); default ${PROFILE_ENV}, else full",
    )
    parser.add_argument(
        "--device", help=f"auto, cpu, cuda, cuda:0, ...; default ${DEVICE_ENV}, else auto"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at once")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--book", type=Path, default=BOOK, help="the book folder")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="write the executed notebooks (at their paths relative to the book) and a "
        "provenance.json here; the stored notebooks and the book's provenance are left as "
        "they are",
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="run into the book despite uncommitted changes; the rows are marked not "
        "publishable (commit ...+dirty)",
    )
    parser.add_argument(
        "--overwrite-full",
        action="store_true",
        help="let a profile other than full replace notebooks whose stored run is full",
    )
    parser.add_argument(
        "--stale",
        action="store_true",
        help="list the notebooks whose stored outputs are stale, with the reasons, and exit",
    )
    parser.add_argument(
        "--only-stale", action="store_true", help="execute only the stale notebooks"
    )
    parser.add_argument(
        "--write-manifest",
        action="store_true",
        help=f"write {MANIFEST} (HEAD's commit and file hashes) at the repository root, for "
        "a copy of the tree without .git (e.g. a GPU machine), and exit",
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Job:
    """One invocation: which notebooks, with which parameters, and where results go."""

    book: Path
    notebooks: tuple[Path, ...]
    profile: str
    device: str  # as given: auto, cpu, cuda:1...
    seed: int
    output_dir: Path | None  # None: in place, into the book
    pkg_dir: Path  # the hypercore package the notebooks import

    @property
    def root(self) -> Path:
        """The repository root (the book's parent): the kernels' import path."""
        return self.book.parent

    def name(self, nb: Path) -> str:
        """A notebook's key in the provenance records: its path relative to the book."""
        return nb.relative_to(self.book).as_posix() if nb.is_relative_to(self.book) else str(nb)

    def destination(self, nb: Path) -> Path:
        """Where the executed notebook goes: in place, or mirrored under ``output_dir``."""
        if self.output_dir is None:
            return nb
        rel = nb.relative_to(self.book) if nb.is_relative_to(self.book) else Path(nb.name)
        return self.output_dir / rel


def stored_profile(nb: Path, row: dict | None) -> str | None:
    """The profile of the stored outputs: the provenance row's, else papermill's metadata."""
    if row is not None:
        return row.get("profile")
    meta = nbformat.read(nb, as_version=4).metadata.get("papermill", {})
    return meta.get("parameters", {}).get("profile")


def check_overwrite_full(job: Job, records: dict) -> None:
    """Refuse a non-full run that would replace full-profile outputs in the book."""
    if job.profile == FULL:
        return
    full = [
        job.name(nb)
        for nb in job.notebooks
        if stored_profile(nb, records.get(job.name(nb))) == FULL
    ]
    if full:
        raise UsageError(
            f"a {job.profile} run would replace the full-profile outputs of {len(full)} "
            f"notebook(s): {', '.join(full)}. Use --output-dir DIR to keep them, or "
            "--overwrite-full to replace them"
        )


def check_tree(tree: TreeState, allow_dirty: bool) -> None:
    """Refuse a run into the book from a tree that is not its commit, unless allowed."""
    if tree.clean:
        return
    if not allow_dirty:
        raise UsageError(
            f"refusing to record a run from a tree that is not a clean commit: {tree.problem()}\n"
            "Commit or stash these changes, or pass --allow-dirty to run anyway (the rows "
            "are then marked not publishable)"
        )
    print(
        f"runner: --allow-dirty: rows will be marked not publishable ({tree.problem(5)})",
        file=sys.stderr,
    )


def modules_of(notebook: Path, pkg_dir: Path) -> list[str] | None:
    """The hypercore modules an executed notebook imports (``None``, with a warning, if its
    code cannot be parsed)."""
    try:
        return notebook_modules(notebook, pkg_dir)
    except ValueError as err:
        print(f"runner: not recording the modules of {notebook}: {err}", file=sys.stderr)
        return None


def list_stale(stale: list[Stale], checked: int) -> None:
    """Print the stale notebooks, each with its reasons (stdout: it is the answer)."""
    if not stale:
        print(f"runner: no stale notebook ({checked} checked)")
        return
    print(f"runner: {len(stale)} of {checked} notebook(s) stale:")
    for item in stale:
        print(f"  {item}")


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 ok, 1 a notebook failed, 2 refused (the reason on stderr)."""
    args = parse_args(argv)
    try:
        return run(args)
    except UsageError as err:
        print(f"runner: {err}", file=sys.stderr)
        return 2


def hypercore_dir(root: Path) -> Path:
    """The hypercore package the notebooks import: the repository's, else the installed one."""
    local = root / "hypercore"
    return local if (local / "__init__.py").is_file() else package_dir()


def make_job(args: argparse.Namespace) -> Job:
    """Resolve the options (and ``HYPERCORE_PROFILE`` / ``HYPERCORE_DEVICE``) into a job."""
    profile = option_or_env(args.profile, PROFILE_ENV, FULL, "--profile")
    if profile not in PROFILES:
        raise UsageError(f"{PROFILE_ENV}={profile}: expected one of {list(PROFILES)}")
    device = option_or_env(args.device, DEVICE_ENV, "auto", "--device")
    book = args.book.resolve()
    notebooks = [p.resolve() for p in args.notebooks or find_notebooks(book)]
    missing = [str(p) for p in notebooks if not p.is_file()]
    if missing or not notebooks:
        raise UsageError(f"no such notebook(s): {missing or 'none found'}")
    return Job(
        book=book,
        notebooks=tuple(notebooks),
        profile=profile,
        device=device,
        seed=args.seed,
        output_dir=args.output_dir.resolve() if args.output_dir else None,
        pkg_dir=hypercore_dir(book.parent),
    )


def stale_only(job: Job, records: dict) -> Job:
    """The job restricted to its stale notebooks (listed on the way)."""
    stale = find_stale(list(job.notebooks), records, job.name, job.pkg_dir)
    list_stale(stale, len(job.notebooks))
    wanted = {s.notebook for s in stale}
    return replace(job, notebooks=tuple(nb for nb in job.notebooks if job.name(nb) in wanted))


def execute_all(job: Job, jobs: int, timeout: int) -> list[tuple[Path, bool, float]]:
    """Execute the job's notebooks, ``jobs`` at a time; (notebook, ok, seconds) for each."""
    params = {"profile": job.profile, "device": job.device, "seed": job.seed}

    def one(nb: Path) -> tuple[Path, bool, float]:
        ok, seconds, message = execute(nb, job.destination(nb), params, timeout, job.root)
        print(
            f"  {'ok  ' if ok else 'FAIL'} {job.name(nb)} ({seconds:.0f} s)"
            + ("" if ok else f": {message}"),
            flush=True,
        )
        return nb, ok, seconds

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, job.notebooks))


def save_results(
    job: Job, results: list[tuple[Path, bool, float]], tree: TreeState, device: str
) -> None:
    """Add a provenance row for each successful notebook, in the book or the output dir."""
    target = job.output_dir or job.book
    target.mkdir(parents=True, exist_ok=True)
    records = load_records(target)
    for nb, ok, seconds in results:
        if not ok:
            continue
        executed = job.destination(nb)
        records[job.name(nb)] = record(
            job.name(nb),
            job.profile,
            job.seed,
            device,
            seconds,
            tree,
            "ok",
            source_sha256=source_hash(nbformat.read(executed, as_version=4)),
            modules=modules_of(executed, job.pkg_dir),
        )
    save_records(target, records)


def run(args: argparse.Namespace) -> int:
    """Everything :func:`main` does, raising :class:`UsageError` for a refusal."""
    if args.write_manifest:
        top = git_toplevel(args.book.resolve().parent)
        if top is None:
            raise UsageError(f"--write-manifest needs a git checkout; {args.book} is not in one")
        print(f"runner: wrote {write_manifest(top)}")
        return 0
    job = make_job(args)
    records = load_records(job.book)
    if args.stale:
        list_stale(
            find_stale(list(job.notebooks), records, job.name, job.pkg_dir), len(job.notebooks)
        )
        return 0
    if args.only_stale:
        job = stale_only(job, records)
        if not job.notebooks:
            return 0

    tree = tree_state(job.root, [*job.notebooks, *(job.book / g for g in GENERATED)])
    if job.output_dir is None:
        if not args.overwrite_full:
            check_overwrite_full(job, records)
        check_tree(tree, args.allow_dirty)

    from hypercore.book.setup import device_name, resolve_device

    device = device_name(resolve_device(job.device))
    kernel_environment(job.root, args.jobs, job.profile, job.device)
    print(
        f"runner: {len(job.notebooks)} notebook(s), profile={job.profile}, device={device}, "
        f"seed={job.seed}, jobs={args.jobs}, commit={tree.recorded_commit}"
        + (f", into {job.output_dir}" if job.output_dir else ""),
        flush=True,
    )
    results = execute_all(job, args.jobs, args.timeout)
    save_results(job, results, tree, device)
    failed = [job.name(nb) for nb, ok, _ in results if not ok]
    if failed:
        print(
            f"runner: {len(failed)} notebook(s) failed: {', '.join(failed)} "
            f"(failed copies in {job.root / '_build' / 'failed'})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
