"""Where every number in the book came from: execution records and the page that shows them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

RECORDS = "provenance.json"
PAGE = "provenance.md"
COMMIT_ENV = "HYPERCORE_COMMIT"


def git_commit(root: Path) -> str:
    """The commit being run: ``$HYPERCORE_COMMIT`` when set (machines without git), else
    ``git rev-parse --short HEAD``, with ``+dirty`` when the tree has uncommitted changes."""
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def environment() -> dict[str, str]:
    """Versions that matter for reproducing a run."""
    from hypercore import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "hypercore": __version__,
        "platform": f"{platform.system()} {platform.machine()}",
    }


def record(
    notebook: str, profile: str, seed: int, device: str, seconds: float, commit: str, status: str
) -> dict:
    """One execution record."""
    return {
        "notebook": notebook,
        "status": status,
        "profile": profile,
        "seed": seed,
        "device": device,
        "duration_s": round(seconds, 1),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        **environment(),
    }


def load_records(book: Path) -> dict[str, dict]:
    path = book / RECORDS
    return json.loads(path.read_text()) if path.exists() else {}


def save_records(book: Path, records: dict[str, dict]) -> None:
    (book / RECORDS).write_text(json.dumps(dict(sorted(records.items())), indent=2) + "\n")
    write_page(book, records)


def write_page(book: Path, records: dict[str, dict]) -> None:
    """Regenerate ``provenance.md`` from the records."""
    lines = [
        "# Execution provenance",
        "",
        "Every notebook in this book was executed by the runner "
        "(`python -m hypercore.book.runner`), never edited by hand. This table is "
        f"generated from `book/{RECORDS}`, which the runner writes after each successful "
        "execution: the profile, the device, how long it took, when, at which commit "
        "and with which versions.",
        "",
        "| notebook | profile | device | duration | date | commit | python | torch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in sorted(records.items()):
        lines.append(
            f"| [{Path(name).stem}]({name}) | {r['profile']} (seed {r['seed']}) | {r['device']} "
            f"| {r['duration_s']:.0f} s | {r['date']} | `{r['commit']}` | {r['python']} "
            f"| {r['torch']} |"
        )
    lines += [
        "",
        "A commit marked `+dirty` was run with uncommitted changes in the working tree "
        "(typically the notebooks being executed). To reproduce a row, check out the "
        "commit and run `python -m hypercore.book.runner book/NOTEBOOK.ipynb "
        "--profile PROFILE --seed SEED`.",
        "",
    ]
    (book / PAGE).write_text("\n".join(lines))
