"""How many held-out groups the translation error needs: its spread across independent held-out sets.

The translation error is heavy-tailed (a target group's sigma^2 scales every translated
observation), so its mean over a small held-out set is noisy. This scores the oracle (the
floor every model is compared with) on ``repeats`` independent held-out sets of each size
and reports the mean and the standard deviation across sets, both x 100.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gvae_fast.data.exam_scores import generate, translation_pairs
from gvae_fast.experiments.oracle import ExamPosterior, translate


def translation_spread(
    group_counts: Sequence[int], repeats: int, noise_std: float, seed: int = 0
) -> list[dict[str, float]]:
    """Rows ``{groups, means, means_sd, sample, sample_sd}``: oracle translation error x 100.

    ``means`` is the posterior-mean translation, ``sample`` one exact posterior draw (the
    paper's protocol); ``_sd`` is the standard deviation across the ``repeats`` held-out sets.
    """
    if repeats < 2:
        raise ValueError(f"repeats must be >= 2, got {repeats}")
    rows = []
    for n in group_counts:
        errors = torch.empty(repeats, 2, dtype=torch.float64)
        for r in range(repeats):
            gen = torch.Generator().manual_seed(seed + 7919 * r + n)
            data = generate(n, gen, noise_std)
            pairs = translation_pairs(data, gen)
            post = ExamPosterior(data.values, data.offsets, noise_std)
            truth = pairs.truth.double()
            errors[r, 0] = torch.mean((post.translation_mean(pairs.target) - truth) ** 2)
            u, v = post.sample(gen)
            errors[r, 1] = torch.mean((translate(u, v, data.offsets, pairs.target) - truth) ** 2)
        mean, sd = errors.mean(0) * 100, errors.std(0) * 100
        rows.append({"groups": n, "means": mean[0].item(), "means_sd": sd[0].item()})
        rows[-1].update(sample=mean[1].item(), sample_sd=sd[1].item())
    return rows


def spread_markdown(rows: Sequence[dict[str, float]], repeats: int, noise_std: float) -> str:
    """The measurement as a Markdown table with a sentence on how it was made."""
    lines = [
        "# How many held-out groups the translation error needs",
        "",
        f"The oracle's translation error (x 100) on {repeats} independent Exam-Scores held-out sets "
        f"per size (noise std {noise_std}): mean and standard deviation across sets. The standard "
        "deviation is how much a table's translation column moves with the choice of held-out set.",
        "",
        "| groups | posterior means | sd | relative sd | one posterior draw | sd | relative sd |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['groups']} | {r['means']:.1f} | {r['means_sd']:.1f} | {100 * r['means_sd'] / r['means']:.1f}% "
            f"| {r['sample']:.1f} | {r['sample_sd']:.1f} | {100 * r['sample_sd'] / r['sample']:.1f}% |"
        )
    return "\n".join(lines) + "\n"
