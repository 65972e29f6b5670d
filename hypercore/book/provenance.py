"""Where every number in the book came from: execution records and the page that shows them."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

from hypercore.book.gitstate import DIRTY, TreeState, tree_state
from hypercore.book.toc import in_reading_order

RECORDS = "provenance.json"
PAGE = "provenance.md"
# Pages the runner or the book build write in the book folder: outputs, never inputs, of a run.
GENERATED = (RECORDS, PAGE, "scoreboard.md", "applications/index.md")


def git_commit(root: Path) -> str:
    """The commit being run, with ``+dirty`` unless the tree is clean (see
    :func:`hypercore.book.gitstate.tree_state`; nothing is exempt here)."""
    return tree_state(root).recorded_commit


def is_published(row: dict) -> bool:
    """Whether a provenance row is a publishable run: from a clean tree at a known commit.
    Rows written before the runner checked the tree count as published unless ``+dirty``."""
    if "published" in row:
        return bool(row["published"])
    commit = str(row.get("commit", "unknown"))
    return not commit.endswith(DIRTY) and commit != "unknown"


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
    notebook: str,
    profile: str,
    seed: int,
    device: str,
    seconds: float,
    tree: TreeState | str,
    status: str,
    *,
    source_sha256: str | None = None,
    modules: list[str] | None = None,
) -> dict:
    """One execution record.

    Args:
        notebook: the notebook's path relative to the book.
        tree: the state of the tree it ran from (or just a commit string, recorded
            as given and published unless it ends in ``+dirty``).
        source_sha256: :func:`hypercore.book.imports.source_hash` of what ran.
        modules: the hypercore modules it imports (:func:`~hypercore.book.imports.
            notebook_modules`), so a later change to one of them makes it stale.
    """
    if isinstance(tree, str):
        commit, published, dirty = tree, not tree.endswith(DIRTY), []
    else:
        commit, published, dirty = tree.recorded_commit, tree.clean, list(tree.dirty[:20])
    row = {
        "notebook": notebook,
        "status": status,
        "profile": profile,
        "seed": seed,
        "device": device,
        "duration_s": round(seconds, 1),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "published": published,
        **environment(),
    }
    if dirty:
        row["dirty"] = dirty
    if source_sha256 is not None:
        row["source_sha256"] = source_sha256
    if modules is not None:
        row["modules"] = modules
    return row


def load_records(book: Path) -> dict[str, dict]:
    path = book / RECORDS
    return json.loads(path.read_text()) if path.exists() else {}


def save_records(book: Path, records: dict[str, dict]) -> None:
    (book / RECORDS).write_text(json.dumps(dict(sorted(records.items())), indent=2) + "\n")
    write_page(book, records)


def commit_cell(row: dict) -> str:
    """The commit as the page shows it, marked when the run is not publishable."""
    cell = f"`{row['commit']}`"
    return cell if is_published(row) else cell + " (not publishable)"


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
    for name in in_reading_order(book, list(records)):
        r = records[name]
        lines.append(
            f"| [{Path(name).stem}]({name}) | {r['profile']} (seed {r['seed']}) | {r['device']} "
            f"| {r['duration_s']:.0f} s | {r['date']} | {commit_cell(r)} | {r['python']} "
            f"| {r['torch']} |"
        )
    lines += [
        "",
        "The runner refuses to record a run from a working tree with uncommitted changes "
        "(other than the notebooks it executes and the pages it writes), so a row's "
        "commit holds every line of code its notebook ran. A commit marked `+dirty` "
        "(not publishable) was run anyway, with `--allow-dirty`, or by an earlier "
        "runner that did not check: its numbers are provisional until it is re-executed "
        "from a clean tree. To reproduce a row, check out the commit and run "
        "`python -m hypercore.book.runner book/NOTEBOOK.ipynb --profile PROFILE "
        "--seed SEED --output-dir OUT` (which leaves the stored notebook as it is).",
        "",
    ]
    (book / PAGE).write_text("\n".join(lines))
