"""Tests of the experiment sweeps, their aggregation, the oracle row, tables and figures."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator

import pandas as pd
import pytest
import torch

from gvae_fast.experiments.__main__ import main
from gvae_fast.experiments.aggregate import aggregate, window
from gvae_fast.experiments.sweep import TABLES, SweepSettings, run_args, run_config, run_folder, run_sweep
from gvae_fast.experiments.tables import CSV_COLUMNS

TINY = ["--seeds", "2", "--epochs", "2", "--groups", "32", "--heldout-groups", "32", "--models", "cxvae", "mlvae"]
TRAIN_FLAGS = ["--iwae-samples", "2", "--batch-groups", "32", "--hidden", "16"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # The sweep sets this process's thread count; restore it for the other test modules.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_window_is_last_20_epochs_or_last_third():
    assert window(64)[0] == 20 and "45-64" in window(64)[1]
    assert window(60)[0] == 20
    assert window(59)[0] == 20 and "last third" in window(59)[1]
    assert window(6)[0] == 2 and window(2)[0] == 1 and window(1)[0] == 1
    with pytest.raises(ValueError):
        window(0)


def _history(**columns: list[float]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({"epoch": range(1, n + 1), **columns}).set_index("epoch")


def test_aggregate_means_and_stds_across_seeds_per_epoch_then_over_the_window():
    # 6 epochs: the window is epochs 5-6; values before it must not count.
    a = _history(
        rec=[9.0, 9, 9, 9, 0.1, 0.3], trans=[1.0] * 6, u_pred=[0.5] * 6, v_pred=[0.2] * 6,
        heldout_ll=[0.0, 0, 0, 0, -2.0, -3.0], rec_mean=[0.0] * 6, trans_mean=[0.0] * 6,
        u_pred_mean=[0.0] * 6, v_pred_mean=[0.0, 0, 0, 0, 0.1, 0.3],
    )  # fmt: skip
    b = a.copy()
    b["rec"] = [9.0, 9, 9, 9, 0.3, 0.5]
    b["heldout_ll"] = [0.0, 0, 0, 0, -4.0, -3.0]
    b["v_pred_mean"] = [0.0, 0, 0, 0, 0.3, 0.7]
    row = aggregate([a, b], epochs=6)
    # Epoch means 0.2 and 0.4, stds sqrt(0.02) both; x 100.
    assert row["rec"] == pytest.approx(30.0)
    assert row["rec_std"] == pytest.approx(100 * math.sqrt(0.02))
    assert row["trans"] == pytest.approx(100.0) and row["trans_std"] == pytest.approx(0.0)
    # The log-likelihood is not scaled: epoch means -3, -3; stds sqrt(2), 0.
    assert row["heldout_ll"] == pytest.approx(-3.0)
    assert row["heldout_ll_std"] == pytest.approx(math.sqrt(2) / 2)
    means = aggregate([a, b], epochs=6, protocol="means")
    # Epoch means 0.2, 0.5; stds sqrt(0.02), sqrt(0.08).
    assert means["v_pred"] == pytest.approx(35.0)
    assert means["v_pred_std"] == pytest.approx(100 * (math.sqrt(0.02) + math.sqrt(0.08)) / 2)
    assert means["heldout_ll"] == row["heldout_ll"]
    assert math.isnan(aggregate([a], epochs=6)["rec_std"])
    with pytest.raises(ValueError, match="expected 1..7"):
        aggregate([a, b], epochs=7)


def test_passed_through_flags_reach_the_config_but_cannot_override_the_sweep():
    settings = SweepSettings(2, 3, 100, 50, ("--batch-groups", "64", "--lr=0.01"))
    config = run_config(run_args(TABLES["table2"]["cxvae-none"], settings, seed=1))
    assert config.train.batch_groups == 64 and config.train.lr == 0.01
    assert (config.epochs, config.seed, config.data.groups, config.data.heldout_groups) == (3, 1, 100, 50)
    assert config.model.regularizer == "none" and config.model.group_encoder == "deepsets"
    for flag in (("--epochs", "5"), ("--seed=3",), ("--model", "gvae")):
        with pytest.raises(ValueError, match="set by the experiment"):
            SweepSettings(2, 3, 100, 50, flag)
    # A row's own flags cannot be overridden either: the table would still show the row's.
    tuned = TABLES["table1"]["cxvae-tuned"]
    for extra in (("--lr=0.01",), ("--set-layers", "1"), ("--lr-schedule", "constant")):
        with pytest.raises(ValueError, match="defines the row"):
            run_args(tuned, SweepSettings(2, 3, 100, 50, extra), seed=0)


def test_table_end_to_end_then_reused(tmp_path, capsys):
    out = tmp_path / "results"
    args = ["table1", *TINY, "--jobs", "1", "--threads", "1", "--out", str(out), "--", *TRAIN_FLAGS]
    assert main(args) == 0
    assert "4 run(s) to train, 0 reused" in capsys.readouterr().out

    for suffix in ("", "_means"):
        with open(out / f"table1{suffix}.csv") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
        assert reader.fieldnames == CSV_COLUMNS
        assert [r["model"] for r in rows] == ["cxvae", "mlvae", "oracle"]
        oracle = {k: float(v) for k, v in rows[-1].items() if k != "model"}
        assert all(math.isfinite(v) for v in oracle.values()), oracle
        for r in rows[:-1]:
            assert all(math.isfinite(float(r[c])) for c in CSV_COLUMNS[1:]), r
            # An IWAE bound never beats the exact log-likelihood by much on the same groups.
            assert float(r["heldout_ll"]) < oracle["heldout_ll"] + 0.5
    md = (out / "table1.md").read_text()
    assert "52.1 ± 0.6" in md and "Bayes-optimal oracle" in md and "--batch-groups 32" in md
    assert "ML-VAE (Bouchacourt 2018): `--model mlvae`" in md
    for name in ("table1_epochs", "table1_epochs_means", "table1_loglik", "table1_translation", "data"):
        assert (out / f"{name}.png").stat().st_size > 10_000, name

    # A second sweep trains nothing and leaves every checkpoint untouched.
    settings = SweepSettings(2, 2, 32, 32, tuple(TRAIN_FLAGS))
    ckpts = [run_folder(out, m, k) / "checkpoint.pt" for m in ("cxvae", "mlvae") for k in range(2)]
    stamps = [p.stat().st_mtime_ns for p in ckpts]
    result = run_sweep("table1", ["cxvae", "mlvae"], settings, out, threads=1)
    assert (result.trained, result.reused) == (0, 4)
    assert [p.stat().st_mtime_ns for p in ckpts] == stamps

    # Changed training settings must not be mixed with the finished runs.
    changed = SweepSettings(2, 2, 32, 32, (*TRAIN_FLAGS, "--lr", "0.01"))
    with pytest.raises(ValueError, match="different configuration"):
        run_sweep("table1", ["cxvae"], changed, out, threads=1)

    # The post-hoc dependence check reads the same finished runs.
    dep = ["dependence", "table1", *TINY, "--critic-epochs", "1", "--out", str(out), "--", *TRAIN_FLAGS]
    assert main(dep) == 0
    report = (out / "table1_dependence.md").read_text()
    assert "| CxVAE (ours) |" in report and "| ML-VAE (Bouchacourt 2018) |" in report and "--critic-epochs 1" in report
    assert main([*dep[:2], "--seeds", "3", *dep[4:]]) == 2
    with pytest.raises(SystemExit):
        main([*dep[: -len(TRAIN_FLAGS) - 1], "--critic-epochs", "0", "--", *TRAIN_FLAGS])
    assert "--critic-epochs must be >= 1" in capsys.readouterr().err
    # Reading runs never creates the folder it reads from.
    missing = tmp_path / "nowhere"
    assert main(["dependence", "table1", *TINY, "--out", str(missing), "--", *TRAIN_FLAGS]) == 2
    assert not missing.exists()
