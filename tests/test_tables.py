import numpy as np
import pandas as pd
import pytest
import torch

from gvae_fast.data import Standardizer, TableError, load_table
from gvae_fast.data.sources import prepare_data


def _frame():
    return pd.DataFrame({"g": ["b", "a", "b", "c", "a", "b"], "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "z": range(6)})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_reads_csv_and_parquet_grouped_in_sorted_order(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    (_frame().to_csv if suffix == ".csv" else _frame().to_parquet)(path, index=False)
    data, group_col, value_cols = load_table(str(path), "g", ["y", "z"])
    assert (group_col, value_cols) == ("g", ("y", "z"))
    assert data.sizes.tolist() == [2, 3, 1]  # a, b, c
    assert data.values[:, 0].tolist() == [2.0, 5.0, 1.0, 3.0, 6.0, 4.0]


@pytest.mark.parametrize(
    "frame, cols, match",
    [
        (_frame(), ("g", ["missing"]), r"\['missing'\] not in the table"),
        (_frame().assign(y=["x"] * 6), ("g", ["y"]), "'y' is not numeric"),
        (_frame().assign(y=[1.0, np.nan, 3, 4, 5, 6]), ("g", ["y"]), "'y' has 1 missing"),
        (_frame().iloc[:0], ("g", ["y"]), "empty"),
        (_frame().assign(g=[None, "a", "b", "c", "a", "b"]), ("g", ["y"]), "group column 'g' has missing"),
        (_frame(), ("g", ["g"]), "both the group column and a value column"),
    ],
)
def test_bad_tables_name_the_problem(tmp_path, frame, cols, match):
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(TableError, match=match):
        load_table(str(path), *cols)


def test_unknown_source_and_format(tmp_path):
    with pytest.raises(TableError, match="neither a built-in"):
        load_table("no-such-file.csv", "g", ["y"])
    (tmp_path / "t.txt").write_text("g,y\n")
    with pytest.raises(TableError, match="unsupported table format"):
        load_table(str(tmp_path / "t.txt"), "g", ["y"])


def test_single_group_cannot_be_held_out(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"g": [1, 1, 1], "y": [1.0, 2.0, 3.0]}).to_csv(path, index=False)
    with pytest.raises(TableError, match="at least 2 are needed"):
        prepare_data(str(path), group_col="g", value_cols=["y"])


def test_prepared_table_is_standardised_with_training_statistics(tmp_path):
    path = tmp_path / "t.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"g": np.repeat(np.arange(20), 5), "y": rng.normal(3, 2, 100)}).to_csv(path, index=False)
    prep = prepare_data(str(path), group_col="g", value_cols=["y"], seed=0)
    assert prep.train.num_groups == 16 and prep.test.num_groups == 4
    assert abs(prep.train.values.mean().item()) < 1e-5
    assert abs(prep.train.values.std(unbiased=False).item() - 1) < 1e-4
    assert prep.description["standardizer"]["mean"][0] == pytest.approx(prep.standardizer.mean[0])
    raw = prep.standardizer.invert(prep.test.values)
    assert torch.allclose(prep.standardizer.apply(raw), prep.test.values, atol=1e-6)


def test_standardizer_keeps_constant_column():
    s = Standardizer.fit(torch.tensor([[1.0, 5.0], [3.0, 5.0]]))
    assert s.std == [1.0, 1.0]


def test_mlmrev_exam_builtin():
    data, group_col, value_cols = load_table("mlmrev-exam")
    assert (data.num_groups, data.num_rows, group_col, value_cols) == (65, 4059, "school", ("normexam",))
