"""The paper's aggregation (§6.1): across seeds at every epoch, then averaged over the last epochs.

At each epoch the mean and the sample standard deviation (ddof = 1) across seeds are taken;
both are then averaged over the last 20 epochs, or over the last third of the epochs (rounded
up) when fewer than 60 were run. MSE metrics are reported x 100, as in the paper; the
held-out log-likelihood (nats per observation) is not scaled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

MSE_METRICS = ("rec", "trans", "u_pred", "v_pred")
METRICS = (*MSE_METRICS, "heldout_ll")
PROTOCOLS = ("sample", "means")
# The log-likelihood is an IWAE bound whatever the protocol: both tables report the same column.
_COLUMN = {
    "sample": {m: m for m in METRICS},
    "means": {**{m: f"{m}_mean" for m in MSE_METRICS}, "heldout_ll": "heldout_ll"},
}
# Fewer epochs than this and the window is the last third instead of the last 20.
_FULL_WINDOW_FROM = 60


def window(epochs: int) -> tuple[int, str]:
    """How many final epochs are averaged, and a sentence saying which."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if epochs >= _FULL_WINDOW_FROM:
        n, why = 20, "the last 20 epochs"
    else:
        n, why = math.ceil(epochs / 3), f"the last third (fewer than {_FULL_WINDOW_FROM} epochs run)"
    return n, f"epochs {epochs - n + 1}-{epochs} of {epochs}, {why}"


def scale(metric: str) -> float:
    """Reporting factor of a metric: 100 for MSE, 1 for the log-likelihood."""
    return 100.0 if metric in MSE_METRICS else 1.0


def load_history(folder: Path) -> pd.DataFrame:
    """A run's ``metrics.csv``, indexed by epoch."""
    return pd.read_csv(Path(folder) / "metrics.csv").set_index("epoch")


def per_epoch(histories: Sequence[pd.DataFrame], metric: str, protocol: str = "sample") -> pd.DataFrame:
    """One metric of every seed, scaled, as an ``epoch x seed`` frame (epochs all seeds reached)."""
    if not histories:
        raise ValueError("no runs to aggregate")
    column = _COLUMN[protocol][metric]
    frame = pd.concat([h[column] for h in histories], axis=1, join="inner") * scale(metric)
    frame.columns = range(len(histories))
    return frame


def aggregate(histories: Sequence[pd.DataFrame], epochs: int, protocol: str = "sample") -> dict[str, float]:
    """Window-averaged per-epoch mean and std across seeds of every metric: ``{m: ..., m_std: ...}``.

    Raises ``ValueError`` unless every history has all of epochs ``1..epochs``.
    """
    for h in histories:
        if not set(range(1, epochs + 1)) <= set(h.index):
            raise ValueError(f"a run has epochs {sorted(h.index)[:3]}...; expected 1..{epochs}")
    n, _ = window(epochs)
    row: dict[str, float] = {}
    for metric in METRICS:
        frame = per_epoch(histories, metric, protocol).loc[epochs - n + 1 : epochs]
        row[metric] = float(frame.mean(axis=1).mean())
        row[f"{metric}_std"] = float(frame.std(axis=1, ddof=1).mean()) if len(histories) > 1 else math.nan
    return row
