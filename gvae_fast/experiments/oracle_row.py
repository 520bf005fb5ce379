"""The Bayes-optimal row of every table: the exact posterior scored like the models (DESIGN §6).

The oracle is scored on the same held-out groups and translation pairs, with the same
regressor (:func:`gvae_fast.metrics.prediction_error`) fitted on the same number of training
groups as :func:`gvae_fast.metrics.evaluate`. Its "latents" per protocol:

* ``sample`` (the paper's): one exact posterior draw ``(mu, sigma)`` per group and ``v`` per row
  (sigma with its random sign); reconstruction and translation decode the draw.
* ``means``: ``u = (E[mu], sqrt(E[sigma^2]))`` and ``E[v]``. The regressor gets
  ``(E[mu], E[sigma^2])``: E[sigma] is 0 by sign symmetry, so E[sigma^2] is what carries
  sigma's magnitude. Decoding ``u`` gives ``2 E[mu] + (E[sigma^2] + 1) E[v]``, which for
  translation is the exact posterior mean (:meth:`ExamPosterior.translation_mean`).

The held-out log-likelihood is exact (not a bound) and the same under both protocols.
"""

from __future__ import annotations

import math

import torch

from gvae_fast.data.ragged import GroupedData
from gvae_fast.data.sources import PreparedData
from gvae_fast.experiments.aggregate import METRICS, scale
from gvae_fast.experiments.oracle import ExamPosterior, translate
from gvae_fast.metrics import prediction_error

# As in gvae_fast.metrics.evaluate: the regressors see the latents of this many training groups.
REGRESSOR_GROUPS = 4096


def _latents(post: ExamPosterior, sample: bool, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``(u to decode [N, 2], u regressor features [N, 2], v [M, 1])`` of one protocol."""
    if sample:
        u, v = post.sample(generator)
        return u, u, v
    decode = torch.stack([post.mu_mean, post.sigma2_mean.sqrt()], dim=1)
    return decode, torch.stack([post.mu_mean, post.sigma2_mean], dim=1), post.v_mean


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.mean((a.double() - b.double()) ** 2).item()


def oracle_metrics(data: PreparedData, noise_std: float, sample: bool, seed: int = 0) -> dict[str, float]:
    """The oracle's raw metrics (MSE, not x 100) on ``data``'s held-out set under one protocol."""
    if data.translation is None or not data.test.has_truth:
        raise ValueError("the oracle needs Exam-Scores data (true latents and translation pairs)")
    gen = torch.Generator().manual_seed(seed)
    test: GroupedData = data.test
    post = ExamPosterior(test.values, test.offsets, noise_std)
    u_dec, u_feat, v = _latents(post, sample, gen)
    own = torch.arange(test.num_groups)
    pick = torch.randperm(data.train.num_groups, generator=gen)[:REGRESSOR_GROUPS].sort().values
    fit = data.train.select(pick)
    _, fit_u, fit_v = _latents(ExamPosterior(fit.values, fit.offsets, noise_std), sample, gen)
    return {
        "rec": _mse(translate(u_dec, v, test.offsets, own), test.values),
        "trans": _mse(translate(u_dec, v, test.offsets, data.translation.target), data.translation.truth),
        "u_pred": prediction_error(fit_u, fit.u_true, u_feat, test.u_true),
        "v_pred": prediction_error(fit_v, fit.v_true, v, test.v_true),
        "heldout_ll": post.log_likelihood_per_observation,
    }


def oracle_row(data: PreparedData, noise_std: float, protocol: str, seeds: int) -> dict[str, float]:
    """The oracle's table row (x 100 like the models'): mean and std over ``seeds`` posterior draws.

    Under ``means`` the oracle is deterministic: one evaluation, std 0.
    """
    draws = seeds if protocol == "sample" else 1
    runs = [oracle_metrics(data, noise_std, protocol == "sample", seed) for seed in range(draws)]
    row: dict[str, float] = {}
    for metric in METRICS:
        values = torch.tensor([r[metric] for r in runs], dtype=torch.float64) * scale(metric)
        row[metric] = values.mean().item()
        row[f"{metric}_std"] = values.std().item() if draws > 1 else (0.0 if protocol == "means" else math.nan)
    return row
