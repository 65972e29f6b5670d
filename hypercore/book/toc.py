"""The book's reading order, from the Jupyter Book table of contents (``_toc.yml``)."""

from __future__ import annotations

import re
from pathlib import Path


def toc_order(book: Path) -> list[str]:
    """Notebook paths relative to ``book``, in the order of ``_toc.yml`` (next to ``book``)."""
    toc = book.parent / "_toc.yml"
    if not toc.exists():
        return []
    prefix = book.name + "/"
    order = []
    for match in re.finditer(r"^\s*-?\s*(?:file|root):\s*(\S+)\s*$", toc.read_text(), re.M):
        entry = match.group(1).strip("'\"")
        if entry.startswith(prefix):
            order.append(entry[len(prefix) :].removesuffix(".ipynb") + ".ipynb")
    return order


def in_reading_order(book: Path, names: list[str]) -> list[str]:
    """``names`` (notebook paths relative to ``book``) in table-of-contents order; the
    ones the table does not list come last, by path."""
    order = {name: i for i, name in enumerate(toc_order(book))}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))
