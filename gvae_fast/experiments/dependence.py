"""Residual group information in the instance codes of a table's finished runs.

Explains the regulariser rows of Table 2: for every run, a fresh set critic is fitted to the
final model's sampled codes (:func:`gvae_fast.metrics.residual_dependence`) and the held-out
bound on ``I(x_{-k}; v_k)`` is reported beside the in-training bound of the last epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from gvae_fast.experiments.aggregate import load_history
from gvae_fast.experiments.sweep import TABLES, SweepSettings, finished_folders, load_model, run_args, run_config
from gvae_fast.metrics import residual_dependence

# The fresh critic's settings; the report states them.
CRITIC = {"batch_groups": 256, "hidden": 64, "lr": 1e-3}


def dependence_rows(
    table: str, names: Sequence[str], settings: SweepSettings, out: Path, critic_epochs: int = 3
) -> list[dict[str, float | str]]:
    """Per model: mean and std across seeds of the post-hoc bound and of the last epoch's ``mi`` (nats)."""
    folders = finished_folders(table, names, settings, out)
    d = run_config(run_args(TABLES[table][names[0]], settings, 0)).data
    data = d.prepare()
    rows: list[dict[str, float | str]] = []
    for name in names:
        posthoc, training = [], []
        for seed, folder in enumerate(folders[name]):
            model = load_model(folder)

            def codes(batch, model=model):
                return model.encode(batch.values, batch.offsets, sample=True).v

            posthoc.append(residual_dependence(codes, data.train, data.test, critic_epochs, seed=seed, **CRITIC))
            training.append(float(load_history(folder)["mi"].iloc[-1]))
        p, t = torch.tensor(posthoc, dtype=torch.float64), torch.tensor(training, dtype=torch.float64)
        rows.append(
            {
                "model": name,
                "posthoc": p.mean().item(),
                "posthoc_std": p.std().item() if len(posthoc) > 1 else float("nan"),
                "training": t.nanmean().item(),
            }
        )
    return rows


def dependence_markdown(rows: Sequence[dict[str, float | str]], table: str, command: str, critic_epochs: int) -> str:
    """The rows as Markdown, with how they were made."""
    labels = {name: spec.label for name, spec in TABLES[table].items()}
    lines = [
        f"# Residual dependence of the instance codes ({table})",
        "",
        f"- Command: `{command}`",
        f"- A fresh set critic (width {CRITIC['hidden']}, Adam {CRITIC['lr']:g}, batches of "
        f"{CRITIC['batch_groups']} groups, {critic_epochs} epochs over the "
        "training groups) is fitted to each final model's sampled codes; the column is its Donsker-Varadhan "
        "lower bound on I(x_{-k}; v_k) over the held-out groups, mean ± std across seeds, in nats.",
        "- In training: the regulariser's own bound in the last epoch (blank without a critic).",
        "",
        "| model | post-hoc bound (nats) | in training (nats) |",
        "| --- | ---: | ---: |",
    ]
    for r in rows:
        training = "" if r["training"] != r["training"] else f"{r['training']:.4f}"
        spread = "" if r["posthoc_std"] != r["posthoc_std"] else f" ± {r['posthoc_std']:.4f}"
        lines.append(f"| {labels[r['model']]} | {r['posthoc']:.4f}{spread} | {training} |")
    return "\n".join(lines) + "\n"
