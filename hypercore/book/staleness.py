"""Which stored notebooks no longer show what their code would produce.

A notebook's stored outputs are stale when any of these holds:

* it has no provenance row (never executed by the runner);
* its row is not publishable (run from a tree with uncommitted changes);
* its code cells changed since the run (the recorded source hash differs);
* a hypercore module it imports (directly or not) changed between the row's
  commit and the working tree.

When a check cannot be made (a row from before the runner hashed sources, a
commit this clone does not have, no git), the notebook is listed too, with the
reason: it cannot be shown fresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from hypercore.book.gitstate import changed_since, git_toplevel, resolve_commit
from hypercore.book.imports import PACKAGE, module_paths, notebook_modules, source_hash
from hypercore.book.provenance import is_published


@dataclass(frozen=True)
class Stale:
    """A notebook whose stored outputs may not match its code, and why."""

    notebook: str
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.notebook}: " + "; ".join(self.reasons)


def _listed(paths: list[str], limit: int = 5) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def module_reasons(
    row: dict, modules: list[str], pkg_dir: Path, package: str = PACKAGE
) -> list[str]:
    """Why the row's imported modules may have changed since its commit (empty if not)."""
    if not modules:
        return []
    top = git_toplevel(pkg_dir)
    if top is None:
        return ["not a git checkout: cannot compare the modules it imports with its commit"]
    commit = str(row.get("commit", "unknown"))
    full = resolve_commit(top, commit)
    if full is None:
        return [
            f"commit {commit} is not in this clone's history (a shallow clone?): "
            "cannot compare the modules it imports"
        ]
    prefix = pkg_dir.resolve().parent.relative_to(top.resolve())
    paths = [(prefix / p).as_posix() for p in module_paths(modules, package)]
    changed = changed_since(top, full, paths)
    if not changed:
        return []
    return [f"{package} changed since {commit}: {_listed(changed)}"]


def stale_reasons(
    notebook: Path, row: dict | None, pkg_dir: Path, package: str = PACKAGE
) -> list[str]:
    """Every reason the notebook's stored outputs may be stale (empty when fresh)."""
    if row is None:
        return ["no provenance row (never executed by the runner)"]
    reasons = []
    if not is_published(row):
        reasons.append(f"run from a tree with uncommitted changes ({row.get('commit')})")
    nb = nbformat.read(notebook, as_version=4)
    recorded = row.get("source_sha256")
    if recorded is None:
        reasons.append("recorded without a source hash: cannot tell whether its code changed")
    elif recorded != source_hash(nb):
        reasons.append("code cells changed since the run")
    try:
        current = notebook_modules(nb, pkg_dir, package)
    except ValueError as err:
        return [*reasons, str(err)]
    modules = sorted(set(current) | set(row.get("modules", [])))
    return reasons + module_reasons(row, modules, pkg_dir, package)


def find_stale(
    notebooks: list[Path],
    records: dict[str, dict],
    label: Callable[[Path], str],
    pkg_dir: Path,
    package: str = PACKAGE,
) -> list[Stale]:
    """The stale ones among ``notebooks``; ``label(path)`` is a notebook's key in ``records``."""
    out = []
    for nb in notebooks:
        name = label(nb)
        reasons = stale_reasons(nb, records.get(name), pkg_dir, package)
        if reasons:
            out.append(Stale(name, tuple(reasons)))
    return out
