"""The reproduction scoreboard: what the literature claims and what we measured.

Generated from the stored, executed notebooks (read as JSON, never executed):
one table row per claim recorded by a chapter's claim cell
(:class:`hypercore.book.claims.ClaimBook`), with the device and commit of the
run from ``book/provenance.json`` (written by the runner).

Usage (from the repository root)::

    python -m hypercore.book.scoreboard            # write book/scoreboard.md (and the
                                                   # applications landing page)
    python -m hypercore.book.scoreboard --check    # only check, write nothing

A notebook *has a claim cell* when one of its code cells constructs a
``ClaimBook(`` (:data:`CLAIM_CELL`). Both commands exit 1 naming every such
notebook without stored claim records (its claim cell was never executed, or
failed), so a chapter with a claim cell cannot be missing from the page;
``scripts/build-book`` regenerates the page before every build.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hypercore.book import landing
from hypercore.book.claims import CLAIM_KEY_PREFIX, CLAIM_MIME, GLUE_PREFIX, VERDICTS, Claim
from hypercore.book.toc import toc_order

PAGE = "scoreboard.md"
#: Written by the runner (``hypercore.book.provenance.RECORDS``; not imported: it needs torch).
PROVENANCE = "provenance.json"
#: A code cell matching this is a claim cell.
CLAIM_CELL = re.compile(r"\bClaimBook\s*\(")
BOOK = Path("book")  # relative to the working directory: run from the repository root


@dataclass
class Chapter:
    """One notebook: where it is (relative to the book folder), its title, its claims."""

    path: str
    title: str
    has_claim_cell: bool
    claims: list[Claim] = field(default_factory=list)


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def stored_claims(notebook: dict) -> list[Claim]:
    """The claim records stored in a notebook's outputs, in order (the last of a repeated id)."""
    found: dict[str, Claim] = {}
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name", "")
            data = output.get("data", {})
            record = data.get(GLUE_PREFIX + CLAIM_MIME, data.get(CLAIM_MIME))
            if not name.startswith(CLAIM_KEY_PREFIX) or record is None:
                continue
            if isinstance(record, str | list):  # a JSON string, possibly split into lines
                record = json.loads("".join(record))
            claim = Claim.from_dict(record)
            found.pop(claim.id, None)
            found[claim.id] = claim
    return list(found.values())


def has_claim_cell(notebook: dict) -> bool:
    """Whether a code cell of the notebook constructs a ``ClaimBook``."""
    return any(
        cell.get("cell_type") == "code" and CLAIM_CELL.search(_source(cell))
        for cell in notebook.get("cells", [])
    )


def title(notebook: dict, fallback: str) -> str:
    """The first markdown heading of the notebook."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in _source(cell).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def find_notebooks(book: Path) -> list[Path]:
    """Every ``.ipynb`` under ``book`` except build output and checkpoints (as the runner)."""
    return sorted(
        p
        for p in book.rglob("*.ipynb")
        if "_build" not in p.parts and ".ipynb_checkpoints" not in p.parts
    )


def collect(book: Path) -> list[Chapter]:
    """Every notebook under ``book``, in table-of-contents order (others after, by path)."""
    chapters = []
    for path in find_notebooks(book):
        rel = path.relative_to(book).as_posix()
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{rel}: cannot read the notebook ({err})") from err
        chapters.append(
            Chapter(
                path=rel,
                title=title(notebook, path.stem),
                has_claim_cell=has_claim_cell(notebook),
                claims=stored_claims(notebook),
            )
        )
    order = {name: i for i, name in enumerate(toc_order(book))}
    return sorted(chapters, key=lambda c: (order.get(c.path, len(order)), c.path))


def missing_records(chapters: list[Chapter]) -> list[str]:
    """Notebooks with a claim cell but no stored claim record."""
    return [c.path for c in chapters if c.has_claim_cell and not c.claims]


def _cell(text: object) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|") or "-"


def _seeds(seeds: list[int] | None) -> str:
    if not seeds:
        return ""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _run(chapter: Chapter, claim: Claim, provenance: dict[str, dict]) -> tuple[str, str | None]:
    """The device (with profile) and commit of the run that measured ``claim``."""
    run = provenance.get(chapter.path)
    if run:
        return f"{run.get('device', '?')} ({run.get('profile', '?')})", run.get("commit")
    return f"{claim.device} ({claim.profile}; no provenance record)", None


def _verdict(claim: Claim) -> str:
    verdict = f"**{claim.verdict}**"
    if claim.profile != "full":
        verdict += f" ({claim.profile} run: not asserted)"
    if claim.expected and claim.expected != claim.verdict:
        verdict += f" (the text says: {claim.expected})"
    return verdict


def _row(chapter: Chapter, claim: Claim) -> str:
    """One line of the summary table: chapter and claim, verdict, our interval, paper."""
    ours = claim.interval or claim.result
    if claim.seeds:
        ours += f"; {_seeds(claim.seeds)}"
    short = Path(chapter.path).stem  # the full title heads the chapter's details below
    cells = [
        f"[{short}]({chapter.path}): `{claim.id.removeprefix(short + '-')}`",
        _verdict(claim),
        _cell(ours),
        _cell(claim.paper),
    ]
    return "| " + " | ".join(cells) + " |"


def _details(chapter: Chapter, provenance: dict[str, dict]) -> list[str]:
    """The chapter's claims in full: the paper's claim, our setting, result and run."""
    lines = [f"### [{_cell(chapter.title)}]({chapter.path})", ""]
    for claim in chapter.claims:
        device, commit = _run(chapter, claim, provenance)
        result = claim.result + (f"; {_seeds(claim.seeds)}" if claim.seeds else "")
        lines += [
            f"`{claim.id}`",
            f":   {_verdict(claim)}. Declared claim: {_cell(claim.claim)}.",
            "",
            f"    - **Paper**: {_cell(claim.paper)}: {_cell(claim.paper_claim)}",
            f"    - **Our setting**: {_cell(claim.setting)}",
            f"    - **Our result**: {_cell(result)}",
            f"    - **Run**: {_cell(device)}, commit " + (f"`{commit}`" if commit else "unknown"),
            "",
        ]
    return lines


def render(chapters: list[Chapter], provenance: dict[str, dict]) -> str:
    """The page (MyST markdown): a summary table, then every claim in full."""
    claims = [(c, claim) for c in chapters for claim in c.claims]
    lines = [
        "# Reproduction scoreboard",
        "",
        "What the literature claims, and what we measured: one row per claim of every "
        "chapter. Each chapter's claim cell records its claims; this page is generated from "
        "the stored, executed notebooks by `python -m hypercore.book.scoreboard` (the book "
        f"build runs it), with the device and commit of each run from `book/{PROVENANCE}` "
        "(see [execution provenance](provenance.md)).",
        "",
        "Our result is the paired difference between the two methods (or between a "
        "method and a stated number) with its 95% confidence interval (Student's t on the "
        "per-seed differences, n - 1 degrees of freedom); the details below give the "
        "per-method mean ± standard deviation. The direction of each claim and, for "
        "*matches*, its margin were declared before the run. The verdict is **held** when "
        "the interval lies on the claimed side (for *matches*, inside the margin), "
        "**did not hold** when it lies on the other side, and **inconclusive** otherwise. "
        "In the full profile a chapter's run fails when a verdict differs from the one "
        "its text states, so every verdict below is the one its chapter states.",
        "",
    ]
    if not claims:
        lines += [
            "No chapter has stored a claim record yet: no notebook has an executed claim "
            "cell, so the table below is empty. It fills in as the chapters' claim cells are "
            "executed by the runner.",
            "",
        ]
    counts = {v: sum(claim.verdict == v for _, claim in claims) for v in VERDICTS}
    if claims:
        lines += [
            f"{len(claims)} claim(s) from "
            f"{len({c.path for c, _ in claims})} chapter(s): "
            + ", ".join(f"{n} {v}" for v, n in counts.items())
            + ".",
            "",
        ]
    lines += [
        "## Summary",
        "",
        "| chapter (claim) | verdict | our result | paper |",
        "| --- | --- | --- | --- |",
    ]
    lines += [_row(chapter, claim) for chapter, claim in claims]
    lines.append("")
    if claims:
        lines += ["## Every claim in full", ""]
        for chapter in chapters:
            if chapter.claims:
                lines += _details(chapter, provenance)
    without = [c for c in chapters if not c.has_claim_cell and not c.claims]
    if without:
        lines += [
            "Chapters without a claim cell: "
            + ", ".join(f"[{_cell(c.title)}]({c.path})" for c in without)
            + ".",
            "",
        ]
    return "\n".join(lines)


def load_provenance(book: Path) -> dict[str, dict]:
    path = book / PROVENANCE
    return json.loads(path.read_text()) if path.exists() else {}


def write_page(book: Path) -> tuple[Path, list[Chapter]]:
    """Regenerate ``book/scoreboard.md`` and the applications landing page
    (:mod:`hypercore.book.landing`); returns the scoreboard's path and the chapters read."""
    chapters = collect(book)
    page = book / PAGE
    page.write_text(render(chapters, load_provenance(book)), encoding="utf-8")
    landing.write_page(book, chapters)
    return page, chapters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", type=Path, default=BOOK, help="the book folder")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a notebook has a claim cell but no stored records",
    )
    args = parser.parse_args(argv)
    book = args.book
    if not book.is_dir():
        print(f"scoreboard: --book {book}: no such folder", file=sys.stderr)
        return 2
    if args.check:
        chapters = collect(book)
    else:
        page, chapters = write_page(book)
    n = sum(len(c.claims) for c in chapters)
    missing = missing_records(chapters)
    if not args.check:
        print(f"scoreboard: {n} claim(s) from {len(chapters)} notebook(s) -> {page}")
    if missing:
        print(
            f"scoreboard: {len(missing)} notebook(s) have a claim cell but no stored claim "
            f"records (execute them with the runner): {', '.join(missing)}",
            file=sys.stderr,
        )
        return 1
    if args.check:
        print(f"scoreboard: ok ({n} claim(s); every notebook with a claim cell has records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
