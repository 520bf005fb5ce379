"""The figures (PNG): the data (paper Fig. 2), translation (Fig. 3), errors by epoch (Fig. 4), log-likelihood."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on the machines that run sweeps
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from gvae_fast.data.ragged import GroupedData  # noqa: E402
from gvae_fast.data.sources import PreparedData  # noqa: E402
from gvae_fast.experiments.aggregate import MSE_METRICS, per_epoch  # noqa: E402
from gvae_fast.experiments.oracle import ExamPosterior  # noqa: E402
from gvae_fast.experiments.sweep import load_model  # noqa: E402
from gvae_fast.models import GVAE  # noqa: E402

SOURCE, TARGET, TRANSLATED, LINE = "#e6b800", "#e8772e", "#c0392b", "#9e9e9e"
_TITLES = {"rec": "reconstruction", "trans": "translation", "u_pred": "U-pred", "v_pred": "V-pred"}


def _save(fig: plt.Figure, path: Path) -> None:
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _group(data: GroupedData, i: int) -> torch.Tensor:
    return data.values[data.offsets[i] : data.offsets[i + 1], 0]


def data_figure(test: GroupedData, path: Path, groups: int = 6) -> None:
    """Scores of a few held-out groups, one row each, with their true ``(mu, sigma)`` (paper Fig. 2).

    The groups shown are those whose true sigma^2 is closest to evenly spaced quantiles, so
    the figure spans narrow to wide groups.
    """
    s2 = test.u_true[:, 1] ** 2
    picks = [int((s2 - s2.quantile(q)).abs().argmin()) for q in torch.linspace(0.05, 0.95, groups)]
    fig, ax = plt.subplots(figsize=(7, 0.6 * groups + 1), layout="constrained")
    gen = torch.Generator().manual_seed(0)
    for row, i in enumerate(picks):
        x = _group(test, i)
        ax.scatter(x, row + 0.15 * torch.randn(x.numel(), generator=gen), s=10, alpha=0.7)
        mu, sigma = test.u_true[i].tolist()
        ax.annotate(f"μ={mu:+.2f}, σ={sigma:+.2f}, K={x.numel()}", (1.0, row), xycoords=("axes fraction", "data"))
    ax.set_yticks(range(groups), [f"group {i}" for i in picks])
    ax.set_xlabel("score x")
    ax.set_title("Exam-Scores: observations of held-out groups")
    _save(fig, path)


def translation_pair(data: PreparedData, ratio: float = 3.0, candidates: int = 512) -> tuple[int, int]:
    """A held-out (source, target) pair whose target's spread is closest to ``ratio`` x the source's."""
    if data.translation is None:
        raise ValueError("translation figures need Exam-Scores data")
    n = min(candidates, data.test.num_groups)
    sd = torch.stack([_group(data.test, i).std() for i in range(data.test.num_groups)])
    target = data.translation.target
    score = (torch.log(sd[target[:n]] / sd[:n]) - torch.log(torch.tensor(ratio))).abs()
    source = int(score.argmin())
    return source, int(target[source])


@torch.no_grad()
def _model_translation(model: GVAE, pair: GroupedData) -> torch.Tensor:
    lat = model.encode(pair.values, pair.offsets, sample=False)
    k = int(pair.offsets[1])
    return model.decoder.mean(lat.u[1:].expand(k, -1), lat.v[:k])[:, 0]


def translation_figure(
    panels: Sequence[tuple[str, Path]], data: PreparedData, noise_std: float, path: Path
) -> tuple[int, int]:
    """Translate one held-out group into another with each run's model (posterior means) and the oracle.

    One panel per ``(label, run folder)`` plus the oracle's; each shows the source (bottom),
    the translation (middle, with the ground truth as black ticks) and the target (top), and
    a grey line from every source observation to its translation. Returns the pair drawn.
    """
    source, target = translation_pair(data)
    pair = data.test.select(torch.tensor([source, target]))
    k = int(pair.offsets[1])
    truth = data.translation.truth[data.test.offsets[source] : data.test.offsets[source + 1], 0]
    translations = [(label, _model_translation(load_model(folder), pair)) for label, folder in panels]
    post = ExamPosterior(pair.values, pair.offsets, noise_std)
    translations.append(("oracle (exact posterior)", post.translation_mean(torch.tensor([1, 0]))[:k, 0].float()))

    fig, axes = plt.subplots(
        1, len(translations), figsize=(4.5 * len(translations), 3.8), sharex=True, sharey=True, layout="constrained"
    )
    x_src, x_tgt = pair.values[:k, 0], pair.values[k:, 0]
    for ax, (label, moved) in zip(axes, translations, strict=True):
        for a, b in zip(x_src.tolist(), moved.tolist(), strict=True):
            ax.plot([a, b], [0, 1], color=LINE, lw=0.6, zorder=1)
        ax.scatter(x_src, torch.zeros(k), color=SOURCE, s=18, label="source", zorder=2)
        ax.scatter(moved, torch.ones(k), color=TRANSLATED, s=18, label="translated", zorder=2)
        ax.scatter(truth, torch.ones(k), marker="|", color="black", s=60, label="true translation", zorder=3)
        ax.scatter(x_tgt, torch.full((x_tgt.numel(),), 2.0), color=TARGET, s=18, label="target", zorder=2)
        ax.set_title(label)
        ax.set_yticks([0, 1, 2], ["source", "translated", "target"])
        ax.set_xlabel("score x")
    axes[0].legend(loc="upper left", fontsize=7)
    fig.suptitle(f"Translation of held-out group {source} into group {target} (posterior means)")
    _save(fig, path)
    return source, target


def _band(ax: plt.Axes, frame: pd.DataFrame, label: str, color) -> None:
    ax.plot(frame.index, frame.median(axis=1), color=color, label=label)
    ax.fill_between(frame.index, frame.min(axis=1), frame.max(axis=1), color=color, alpha=0.2, lw=0)


def epochs_figure(
    runs: Mapping[str, Sequence[pd.DataFrame]], oracle: Mapping[str, float], protocol: str, path: Path
) -> None:
    """Held-out errors (x 100) by epoch: per model the median and min-max band across seeds (paper Fig. 4).

    ``runs`` maps a label to its seeds' histories; ``oracle`` is the oracle's table row,
    drawn as a dashed line.
    """
    fig, axes = plt.subplots(1, len(MSE_METRICS), figsize=(4 * len(MSE_METRICS), 3.5), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes, MSE_METRICS, strict=True):
        for (label, histories), color in zip(runs.items(), colors, strict=False):
            _band(ax, per_epoch(histories, metric, protocol), label, color)
        ax.axhline(oracle[metric], color="black", ls="--", lw=1, label="oracle")
        ax.set_title(f"{_TITLES[metric]} error (x100)")
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Held-out errors by epoch ({'latents drawn from q' if protocol == 'sample' else 'posterior means'})")
    _save(fig, path)


def loglik_figure(runs: Mapping[str, Sequence[pd.DataFrame]], oracle_ll: float, path: Path) -> None:
    """Held-out log-likelihood per observation by epoch (IWAE bound) against the oracle's exact value."""
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (label, histories), color in zip(runs.items(), colors, strict=False):
        _band(ax, per_epoch(histories, "heldout_ll"), label, color)
    ax.axhline(oracle_ll, color="black", ls="--", lw=1, label=f"oracle (exact): {oracle_ll:.3f}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("log-likelihood per observation (nats)")
    ax.set_title("Held-out log-likelihood: IWAE bound of each model vs exact oracle")
    ax.legend(fontsize=7)
    _save(fig, path)
