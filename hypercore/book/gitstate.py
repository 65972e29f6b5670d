"""Which commit a run comes from, and whether the tree it ran from was that commit.

A published run must come from a clean tree: every file the notebooks can
read or import is the committed one. Three ways to know, tried in order:

1. **git** (a checkout): ``git rev-parse HEAD`` and ``git status --porcelain``.
2. **a manifest** (a copy of the tree without ``.git``, e.g. the lent GPU
   machine): ``python -m hypercore.book.runner --write-manifest`` records, in
   a checkout, the commit and the git blob hash of every file at ``HEAD``
   (:data:`MANIFEST`, git-ignored; carry it with the copy). The copy is clean
   when its files hash to the same blobs.
3. **the environment**: ``HYPERCORE_COMMIT`` names the commit and
   ``HYPERCORE_CLEAN=1`` asserts, on the word of whoever set it, that the copy
   is that commit unchanged.

Paths the runner itself writes (the notebooks being executed, the provenance
and scoreboard pages) are exempt: they are the run's output.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

COMMIT_ENV = "HYPERCORE_COMMIT"
CLEAN_ENV = "HYPERCORE_CLEAN"
MANIFEST = ".tree-manifest.json"
DIRTY = "+dirty"


class GitError(RuntimeError):
    """A git command failed (its stderr is the message)."""


def git(root: Path, *args: str) -> str:
    """Run ``git args`` in ``root`` and return its stdout; :class:`GitError` on failure."""
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    except OSError as err:  # no git executable
        raise GitError(f"git {' '.join(args)}: {err}") from err
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def git_toplevel(path: Path) -> Path | None:
    """The root of the git checkout holding ``path``, or ``None`` outside one."""
    try:
        return Path(git(path, "rev-parse", "--show-toplevel").strip())
    except GitError:
        return None


def resolve_commit(top: Path, commit: str) -> str | None:
    """The full hash of ``commit`` (``+dirty`` stripped) if this clone has it, else ``None``
    (an unknown commit, or one outside a shallow clone's history)."""
    name = commit.removesuffix(DIRTY)
    if not name or name == "unknown":
        return None
    try:
        return git(top, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}").strip()
    except GitError:
        return None


@dataclass(frozen=True)
class TreeState:
    """The commit of a run and what, if anything, differs from it.

    ``dirty`` lists the changed paths; ``unknown`` says why cleanliness could
    not be checked at all (empty when it was).
    """

    commit: str
    dirty: tuple[str, ...] = ()
    unknown: str = ""
    how: str = "git"

    @property
    def clean(self) -> bool:
        return not self.dirty and not self.unknown

    @property
    def recorded_commit(self) -> str:
        """The commit as written in a provenance row: ``+dirty`` unless clean."""
        return self.commit if self.clean else self.commit + DIRTY

    def problem(self, limit: int = 20) -> str:
        """What is wrong, for an error message (empty when clean)."""
        if self.unknown:
            return self.unknown
        if not self.dirty:
            return ""
        shown = [f"  {p}" for p in self.dirty[:limit]]
        if len(self.dirty) > limit:
            shown.append(f"  ... and {len(self.dirty) - limit} more")
        return f"uncommitted changes relative to {self.commit}:\n" + "\n".join(shown)


def _relative(paths: Iterable[Path], top: Path) -> set[str]:
    out = set()
    for p in paths:
        try:
            out.add(Path(p).resolve().relative_to(top.resolve()).as_posix())
        except ValueError:  # outside the tree: nothing to exempt
            continue
    return out


def porcelain_paths(output: str) -> list[str]:
    """Paths from ``git status --porcelain -z`` output (both sides of a rename)."""
    fields = output.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":  # a rename or copy: the next field is the original path
            paths.append(fields[i])
            i += 1
    return paths


def git_state(top: Path, exempt: set[str]) -> TreeState:
    """The state of a git checkout: HEAD and its uncommitted changes, untracked files
    included, except the ``exempt`` paths (relative to ``top``)."""
    commit = git(top, "rev-parse", "--short", "HEAD").strip()
    status = git(top, "status", "--porcelain", "-z", "--untracked-files=all")
    dirty = sorted({p for p in porcelain_paths(status) if p not in exempt})
    env_commit = os.environ.get(COMMIT_ENV, "")
    if env_commit and not (commit.startswith(env_commit) or env_commit.startswith(commit)):
        print(
            f"runner: ignoring {COMMIT_ENV}={env_commit}: this is a git checkout at {commit}",
            file=sys.stderr,
        )
    return TreeState(commit=commit, dirty=tuple(dirty), how="git")


def blob_hash(path: Path) -> str:
    """The git blob hash of a file (or of a symlink's target path), as ``git hash-object``."""
    data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_manifest(top: Path) -> Path:
    """Write :data:`MANIFEST` at the checkout's root: HEAD's commit and the blob hash of
    each of its files, so a copy of the tree without ``.git`` can be checked."""
    commit = git(top, "rev-parse", "--short", "HEAD").strip()
    files: dict[str, str] = {}
    for entry in git(top, "ls-tree", "-r", "-z", "--full-tree", "HEAD").split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        _mode, kind, sha = meta.split()
        if kind == "blob":  # submodules (kind "commit") are not part of the copy
            files[path] = sha
    out = top / MANIFEST
    out.write_text(json.dumps({"commit": commit, "files": files}, indent=0) + "\n")
    return out


def manifest_state(root: Path, exempt: set[str]) -> TreeState:
    """The state of a copy of the tree, checked against its :data:`MANIFEST`: files
    changed or missing since the manifest's commit (new files are not looked for)."""
    manifest = json.loads((root / MANIFEST).read_text())
    dirty = []
    for path, sha in sorted(manifest["files"].items()):
        if path in exempt:
            continue
        local = root / path
        if not (local.is_file() or local.is_symlink()):
            dirty.append(f"{path} (missing)")
        elif blob_hash(local) != sha:
            dirty.append(path)
    return TreeState(commit=manifest["commit"], dirty=tuple(dirty), how="manifest")


def environment_state() -> TreeState:
    """The state as the environment asserts it (no git, no manifest)."""
    commit = os.environ.get(COMMIT_ENV, "") or "unknown"
    if os.environ.get(CLEAN_ENV) == "1" and commit != "unknown":
        return TreeState(commit=commit, how="environment")
    return TreeState(
        commit=commit,
        unknown=(
            "not a git checkout and no "
            f"{MANIFEST} (write one with `python -m hypercore.book.runner --write-manifest` "
            f"in the checkout and copy it along), nor {COMMIT_ENV}=<commit> with "
            f"{CLEAN_ENV}=1: cannot tell whether this tree is a commit unchanged"
        ),
        how="environment",
    )


def tree_state(root: Path, exempt_paths: Iterable[Path] = ()) -> TreeState:
    """The commit ``root`` is at and whether it is clean, ignoring ``exempt_paths``."""
    top = git_toplevel(root)
    if top is not None:
        return git_state(top, _relative(exempt_paths, top))
    if (root / MANIFEST).is_file():
        return manifest_state(root, _relative(exempt_paths, root))
    return environment_state()


def changed_since(top: Path, commit: str, paths: Iterable[str]) -> list[str]:
    """Which of ``paths`` (relative to ``top``) differ between ``commit`` and the working
    tree, untracked files included. ``commit`` must exist (see :func:`resolve_commit`)."""
    paths = list(paths)
    if not paths:
        return []
    changed = git(top, "diff", "--name-only", "-z", commit, "--", *paths).split("\0")
    new = git(top, "ls-files", "--others", "--exclude-standard", "-z", "--", *paths)
    return sorted({p for p in [*changed, *new.split("\0")] if p})
