"""What a notebook's outputs depend on: its code cells and the hypercore modules they import.

Both are computed statically, without running anything, so the runner can
record them with every execution and ``--stale`` can recompute them later:

* :func:`source_hash` hashes the notebook's code cells (not their outputs, not
  the markdown, not the papermill-injected parameters cell);
* :func:`notebook_modules` parses those cells with :mod:`ast`, keeps the
  ``import hypercore...`` / ``from hypercore... import ...`` statements, and
  follows the package's own imports to their closure (importing
  ``hypercore.a.b`` also runs ``hypercore/__init__.py`` and
  ``hypercore/a/__init__.py``, so those count too).

The closure over-approximates on purpose: an import inside a function or
under ``if TYPE_CHECKING`` counts as if it ran, which can only make a
notebook look stale, never hide a change.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

import nbformat

PACKAGE = "hypercore"
INJECTED_TAG = "injected-parameters"  # papermill's tag for the cell it adds


def package_dir() -> Path:
    """The directory of the installed (or checked-out) ``hypercore`` package."""
    import hypercore

    return Path(hypercore.__file__).resolve().parent


def code_cells(nb: nbformat.NotebookNode) -> list[str]:
    """The sources of the code cells, without the papermill-injected parameters cell."""
    return [
        cell.source
        for cell in nb.cells
        if cell.cell_type == "code" and INJECTED_TAG not in cell.metadata.get("tags", [])
    ]


def source_hash(nb: nbformat.NotebookNode) -> str:
    """SHA-256 of the code cells' sources (outputs, markdown and injected cell excluded).

    Markdown is left out because it produces no output: fixing a typo in the
    text must not make the stored outputs look stale (and cost a GPU rerun).
    """
    payload = json.dumps(code_cells(nb), ensure_ascii=False).encode()
    return hashlib.sha256(payload).hexdigest()


def _as_python(source: str) -> str:
    """Turn a cell's IPython syntax (``%magic``, ``!shell``) into plain Python."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # without IPython, blank the magic lines
        return re.sub(r"(?m)^\s*[%!].*$", "", source)
    return TransformerManager().transform_cell(source)


def _parse(source: str, where: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as err:
        raise ValueError(
            f"{where}: cannot parse its imports ({err.msg}, line {err.lineno})"
        ) from err


def imported_names(tree: ast.Module, module: str = "", is_package: bool = False) -> set[str]:
    """Absolute names of everything ``tree`` imports: modules, and ``module.name`` for
    each ``from module import name`` (a name that may be a submodule).

    ``module`` and ``is_package`` describe the file being parsed, to resolve
    relative imports (``from . import x``, ``from ..heads import y``).
    """
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(node, module, is_package)
            if base is None:
                continue
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _resolve_from(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    """The absolute module of a ``from ... import`` (``None`` when it leaves the package)."""
    if node.level == 0:
        return node.module
    parts = module.split(".") if module else []
    if not is_package:
        parts = parts[:-1]
    drop = node.level - 1
    if drop >= len(parts):
        return None
    parts = parts[: len(parts) - drop]
    return ".".join(parts + ([node.module] if node.module else []))


def module_file(name: str, pkg_dir: Path, package: str = PACKAGE) -> Path | None:
    """The source file of module ``name`` of ``package`` (rooted at ``pkg_dir``), if any."""
    if name != package and not name.startswith(package + "."):
        return None
    rel = name.split(".")[1:]
    as_package = pkg_dir.joinpath(*rel, "__init__.py")
    if as_package.is_file():
        return as_package
    as_module = pkg_dir.joinpath(*rel[:-1], rel[-1] + ".py") if rel else None
    return as_module if as_module is not None and as_module.is_file() else None


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b", "a.b.c"]``: importing a module runs its parents first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def module_closure(roots: Iterable[str], pkg_dir: Path, package: str = PACKAGE) -> set[str]:
    """Every module of ``package`` that importing ``roots`` can execute, following the
    package's own imports. Names that are not modules (``hypercore.fit``) are dropped."""
    seen: set[str] = set()
    todo = [p for name in roots for p in _with_parents(name)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name, pkg_dir, package)
        if path is None:
            continue
        seen.add(name)
        tree = _parse(path.read_text(), str(path))
        imports = imported_names(tree, name, is_package=path.name == "__init__.py")
        todo += [p for dep in imports for p in _with_parents(dep) if p not in seen]
    return seen


def notebook_roots(nb: nbformat.NotebookNode, where: str, package: str = PACKAGE) -> set[str]:
    """The ``package`` names the notebook's code cells import directly."""
    names: set[str] = set()
    for i, source in enumerate(code_cells(nb)):
        tree = _parse(_as_python(source), f"{where}, code cell {i + 1}")
        names |= imported_names(tree)
    return {n for n in names if n == package or n.startswith(package + ".")}


def notebook_modules(
    notebook: Path | nbformat.NotebookNode,
    pkg_dir: Path | None = None,
    package: str = PACKAGE,
) -> list[str]:
    """Sorted names of the ``package`` modules a notebook imports, directly or not."""
    nb = nbformat.read(notebook, as_version=4) if isinstance(notebook, Path) else notebook
    where = str(notebook) if isinstance(notebook, Path) else "notebook"
    roots = notebook_roots(nb, where, package)
    return sorted(module_closure(roots, pkg_dir or package_dir(), package))


def module_paths(modules: Iterable[str], package: str = PACKAGE) -> list[str]:
    """Where each module may live, relative to the directory holding the package:
    ``hypercore.a`` -> ``hypercore/a.py`` and ``hypercore/a/__init__.py`` (either may
    be the one that exists at a given commit)."""
    paths: set[str] = set()
    for name in modules:
        rel = name.split(".")
        paths.add("/".join([*rel, "__init__.py"]))
        if len(rel) > 1:
            paths.add("/".join(rel) + ".py")
    return sorted(paths)
