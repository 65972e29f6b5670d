"""Per-seed results as readable tables: one row per method, ``mean ± std`` over seeds.

The chapters keep one row per (method, seed) in a pandas DataFrame; :func:`mean_std`
summarises it for the page (print it with ``.to_string(index=False)``: no index, no NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def _cell(values: pd.Series, fmt: str) -> str:
    values = values.dropna()
    if values.empty:
        return "-"
    mean = format(float(values.mean()), fmt)
    if len(values) < 2:
        return mean
    return f"{mean} ± {format(float(values.std(ddof=1)), fmt)}"


def mean_std(
    frame: pd.DataFrame,
    by: str | Sequence[str],
    values: Sequence[str],
    *,
    fmt: str | dict[str, str] = ".3f",
    seeds: bool = True,
) -> pd.DataFrame:
    """One row per group of ``by`` (in order of first appearance): each column of
    ``values`` as ``"mean ± std"`` (sample std, ``ddof=1``; the mean alone with one
    row; ``"-"`` when the group has no value), and ``seeds``, the rows per group.

    Args:
        frame: one row per (group, seed).
        by: the grouping column(s), kept as the first columns.
        values: the numeric columns to summarise.
        fmt: a format spec for all columns, or one per column (default ``.3f``).
        seeds: add the ``seeds`` column.
    """
    import pandas as pd

    keys = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*keys, *values] if c not in frame.columns]
    if missing:
        raise KeyError(f"mean_std: no column(s) {missing}; the frame has {list(frame.columns)}")
    rows = []
    for key, group in frame.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key, strict=True))
        for column in values:
            spec = fmt.get(column, ".3f") if isinstance(fmt, dict) else fmt
            row[column] = _cell(group[column], spec)
        if seeds:
            row["seeds"] = len(group)
        rows.append(row)
    return pd.DataFrame(rows)
