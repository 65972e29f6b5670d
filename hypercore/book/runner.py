"""Execute the book's notebooks with papermill, in place, and record their provenance.

Usage::

    python -m hypercore.book.runner                       # every notebook, full profile
    python -m hypercore.book.runner book/foundations/first-hypernetwork.ipynb \\
        --profile smoke --device cpu --seed 1
    python -m hypercore.book.runner --jobs 4              # several kernels at once (GPU box)

Each notebook is executed into a temporary file with the parameters
``profile``, ``device`` and ``seed`` injected; only a successful run replaces
the stored notebook and adds a row to ``book/provenance.json`` (and the
generated page ``book/provenance.md``). A failing notebook keeps its stored
version, its failed copy goes to ``_build/failed/``, and the runner exits 1
naming it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hypercore.book.provenance import git_commit, load_records, record, save_records
from hypercore.book.setup import PROFILE_ENV, PROFILES

BOOK = Path("book")  # relative to the working directory: run from the repository root


def find_notebooks(book: Path) -> list[Path]:
    """Every ``.ipynb`` under ``book`` except build output and checkpoints."""
    return sorted(
        p
        for p in book.rglob("*.ipynb")
        if "_build" not in p.parts and ".ipynb_checkpoints" not in p.parts
    )


def kernel_environment(root: Path, jobs: int) -> None:
    """Environment the kernels inherit: no progress bars, importable hypercore, fair threads."""
    os.environ["TQDM_DISABLE"] = "1"
    if os.environ.pop(PROFILE_ENV, None):
        print(f"runner: ignoring {PROFILE_ENV} (the --profile option decides)", file=sys.stderr)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p
    )
    if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))


def execute(notebook: Path, params: dict, timeout: int, root: Path) -> tuple[bool, float, str]:
    """Run one notebook; replace it only on success. Returns (ok, seconds, message)."""
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
        shutil.copy(out, notebook)
    return True, seconds, "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        help="notebooks to run (default: every notebook under book/)",
    )
    parser.add_argument("--profile", default="full", choices=PROFILES)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:0, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at once")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--book", type=Path, default=BOOK, help="the book folder")
    args = parser.parse_args(argv)

    from hypercore.book.setup import device_name, resolve_device

    book = args.book.resolve()
    notebooks = [p.resolve() for p in args.notebooks or find_notebooks(book)]
    missing = [str(p) for p in notebooks if not p.is_file()]
    if missing or not notebooks:
        print(f"runner: no such notebook(s): {missing or 'none found'}", file=sys.stderr)
        return 2
    root = book.parent
    device = device_name(resolve_device(args.device))
    commit = git_commit(root)
    kernel_environment(root, args.jobs)
    params = {"profile": args.profile, "device": args.device, "seed": args.seed}
    print(
        f"runner: {len(notebooks)} notebook(s), profile={args.profile}, device={device}, "
        f"seed={args.seed}, jobs={args.jobs}, commit={commit}",
        flush=True,
    )

    def label(nb: Path) -> str:
        return nb.relative_to(book).as_posix() if nb.is_relative_to(book) else str(nb)

    def run(nb: Path):
        ok, seconds, message = execute(nb, params, args.timeout, root)
        print(
            f"  {'ok  ' if ok else 'FAIL'} {label(nb)} ({seconds:.0f} s)"
            + ("" if ok else f": {message}"),
            flush=True,
        )
        return nb, ok, seconds

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(run, notebooks))

    records = load_records(book)
    for nb, ok, seconds in results:
        if ok:
            name = label(nb)
            records[name] = record(name, args.profile, args.seed, device, seconds, commit, "ok")
    save_records(book, records)
    failed = [label(nb) for nb, ok, _ in results if not ok]
    if failed:
        print(
            f"runner: {len(failed)} notebook(s) failed: {', '.join(failed)} "
            f"(failed copies in _build/failed/)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
