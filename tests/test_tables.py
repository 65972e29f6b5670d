"""hypercore.book.tables: per-seed rows summarised as mean ± std."""

import pandas as pd
import pytest

from hypercore.book.tables import mean_std


def test_mean_std_rows_in_order():
    frame = pd.DataFrame(
        {
            "model": ["b", "a", "b", "a"],
            "seed": [0, 0, 1, 1],
            "accuracy": [0.9, 0.5, 0.8, 0.7],
            "loss": [1.0, 2.0, None, 4.0],
        }
    )
    table = mean_std(frame, "model", ["accuracy", "loss"], fmt={"loss": ".1f"})
    assert list(table["model"]) == ["b", "a"]
    assert table.loc[0, "accuracy"] == "0.850 ± 0.071"
    assert table.loc[0, "loss"] == "1.0"  # one value: the mean alone
    assert table.loc[1, "loss"] == "3.0 ± 1.4"
    assert list(table["seeds"]) == [2, 2]
    assert not table.isna().any().any()


def test_mean_std_groups_by_several_columns_and_reports_missing():
    frame = pd.DataFrame({"w": [8, 8], "method": ["x", "x"], "acc": [float("nan")] * 2})
    table = mean_std(frame, ["w", "method"], ["acc"], seeds=False)
    assert table.to_dict("records") == [{"w": 8, "method": "x", "acc": "-"}]
    with pytest.raises(KeyError, match="nope"):
        mean_std(frame, "w", ["nope"])
