import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch

from gvae_fast.train import main
from gvae_fast.training.checkpoint import load_checkpoint, save_atomic
from gvae_fast.training.trainer import Trainer

TINY = ["--groups", "96", "--heldout-groups", "32", "--batch-groups", "32", "--iwae-samples", "2", "--quiet"]


def _rows(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_cli_writes_every_file_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--model", "cxvae", "--epochs", "1", "--out", str(out), *TINY]) == 0
    for name in ("config.json", "metrics.csv", "summary.json", "checkpoint.pt"):
        assert (out / name).exists(), name
    rows = _rows(out)
    assert len(rows) == 1
    for col in ("epoch", "loss", "rec", "trans", "u_pred", "v_pred", "heldout_ll", "groups_per_s", "seconds"):
        assert col in rows[0] and rows[0][col] != ""
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["group_encoder"] == "deepsets" and config["epochs"] == 1
    printed = capsys.readouterr().out
    assert "epoch 1" in printed and "groups/s" in printed

    # Same folder without --resume: refused, nothing overwritten.
    before = (out / "checkpoint.pt").read_bytes()
    assert main(["--model", "cxvae", "--epochs", "1", "--out", str(out), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == before

    # Resuming with a changed configuration is refused too.
    assert main(["--model", "cxvae", "--epochs", "2", "--lr", "0.01", "--out", str(out), "--resume", *TINY]) == 2
    assert "different configuration" in capsys.readouterr().err


@pytest.mark.parametrize(
    "model_args",
    [
        ["--model", "nemeth"],
        # A learning-rate schedule and a second pooling round must resume exactly too.
        ["--model", "cxvae", "--lr-schedule", "cosine", "--set-layers", "2"],
    ],
)
def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, model_args):
    a, b = tmp_path / "a", tmp_path / "b"
    args = [*model_args, "--no-eval-means", "--epochs", "2", *TINY]
    assert main([*args, "--out", str(a)]) == 0
    train_epoch = Trainer.train_epoch
    calls = []

    def interrupted(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train_epoch(self, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "train_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            main([*args, "--out", str(b)])
    assert len(_rows(b)) == 1
    assert main([*args, "--out", str(b), "--resume"]) == 0
    ra, rb = _rows(a), _rows(b)
    assert len(rb) == 2
    for col in ("loss", "rec", "heldout_ll"):
        assert float(ra[1][col]) == pytest.approx(float(rb[1][col]), rel=1e-5), col
    sa, sb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    for k, v in sa["trainer"]["model"].items():
        assert torch.allclose(v, sb["trainer"]["model"][k]), k


def test_cli_trains_on_a_csv_table(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "scores.csv"
    pd.DataFrame(
        {"school": np.repeat(np.arange(30), 6), "score": rng.normal(size=180), "iq": rng.normal(size=180)}
    ).to_csv(path, index=False)
    out = tmp_path / "table"
    argv = ["--model", "gvae", "--data", str(path), "--group-col", "school", "--value-cols", "score", "iq"]
    assert main([*argv, "--epochs", "1", "--out", str(out), "--quiet", "--iwae-samples", "2"]) == 0
    row = _rows(out)[0]
    assert row["trans"] == "" and row["u_pred"] == "" and row["heldout_ll"] != ""
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["decoder"] == "mlp" and config["model"]["x_dim"] == 2
    assert len(config["data_description"]["standardizer"]["mean"]) == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "nowhere.csv", "--group-col", "g", "--value-cols", "y"], "neither a built-in"),
        (["--model", "cxvae", "--decoder", "exam", "--data", "mlmrev-exam", "--u-dim", "3"], "exam"),
        (["--batch-groups", "0"], "batch_groups"),
    ],
)
def test_cli_reports_bad_input(tmp_path, capsys, argv, message):
    assert main([*argv, "--epochs", "1", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err


def test_cli_on_mlmrev_exam(tmp_path):
    out = tmp_path / "mlm"
    assert main(["--model", "cxvae", "--data", "mlmrev-exam", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["heldout_ll"] is not None and summary["rec"] > 0


def test_zero_epochs_writes_only_the_configuration_and_says_so(tmp_path, capsys):
    out = tmp_path / "none"
    assert main(["--model", "cxvae", "--lr-schedule", "cosine", "--epochs", "0", "--out", str(out), *TINY]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    assert capsys.readouterr().out.strip().endswith(f"wrote {out}/config.json")


def test_runs_saved_before_newer_options_still_resume(tmp_path):
    out = tmp_path / "old"
    args = ["--model", "nemeth", "--no-eval-means", "--epochs", "1", "--out", str(out), *TINY]
    assert main(args) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    # As saved before --set-layers and --lr-schedule existed.
    del state["config"]["model"]["set_layers"], state["config"]["train"]["lr_schedule"]
    save_atomic(state, out / "checkpoint.pt")
    assert main([*args, "--resume"]) == 0
    # A real difference is still refused.
    assert main([*args, "--resume", "--lr-schedule", "cosine"]) == 2
