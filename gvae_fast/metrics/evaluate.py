"""Held-out metrics of DESIGN §6: reconstruction, translation, U-/V-pred and IWAE log-likelihood."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gvae_fast.data.exam_scores import Translation
from gvae_fast.data.ragged import GroupedData
from gvae_fast.metrics.regression import prediction_error
from gvae_fast.models import GVAE, iwae_log_likelihood


@dataclass(frozen=True)
class InferredLatents:
    """Latents of a whole data set, in its own row and group order."""

    u: torch.Tensor
    v: torch.Tensor


@torch.no_grad()
def infer(model: GVAE, data: GroupedData, sample: bool, chunk_groups: int = 2048) -> InferredLatents:
    """Draws from q (``sample=True``, the paper's protocol) or posterior means, chunked by groups."""
    model.eval()
    device = next(model.parameters()).device
    us, vs = [], []
    for batch in data.batches(chunk_groups):
        lat = model.encode(batch.values.to(device), batch.offsets.to(device), sample=sample)
        us.append(lat.u)
        vs.append(lat.v)
    u_dim, v_dim = model.config.u_dim, model.config.v_dim
    return InferredLatents(
        u=torch.cat(us) if us else torch.zeros(0, u_dim, device=device),
        v=torch.cat(vs) if vs else torch.zeros(0, v_dim, device=device),
    )


@torch.no_grad()
def heldout_log_likelihood(model: GVAE, data: GroupedData, samples: int, chunk_groups: int = 1024) -> float:
    """IWAE bound on the held-out log-likelihood, per observation."""
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for batch in data.batches(chunk_groups):
        total += iwae_log_likelihood(model, batch.values.to(device), batch.offsets.to(device), samples).sum().item()
    return total / max(data.num_rows, 1)


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.mean((a.float() - b.float()) ** 2).item()


@torch.no_grad()
def evaluate(
    model: GVAE,
    train: GroupedData,
    test: GroupedData,
    translation: Translation | None = None,
    sample: bool = True,
    iwae_samples: int = 16,
    regressor_groups: int = 4096,
    seed: int = 0,
) -> dict[str, float]:
    """All metrics on the held-out groups (raw MSE; NaN where the data carry no ground truth).

    ``sample`` selects the protocol: latents drawn from q (the paper's) or posterior
    means. ``iwae_samples = 0`` skips the log-likelihood.
    The U-/V-pred regressors are fitted on the latents of up to ``regressor_groups`` training
    groups (a fixed, seeded subset).
    """
    device = next(model.parameters()).device
    test_dev = test.to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        lat = infer(model, test_dev, sample)
        sizes = test_dev.sizes
        u_rows = torch.repeat_interleave(lat.u, sizes, dim=0, output_size=test.num_rows)
        metrics = {
            "rec": _mse(model.decoder.mean(u_rows, lat.v), test_dev.values),
            "trans": math.nan,
            "u_pred": math.nan,
            "v_pred": math.nan,
            "heldout_ll": heldout_log_likelihood(model, test_dev, iwae_samples) if iwae_samples else math.nan,
        }
        if translation is not None:
            target_rows = torch.repeat_interleave(
                lat.u[translation.target.to(device)], sizes, dim=0, output_size=test.num_rows
            )
            metrics["trans"] = _mse(model.decoder.mean(target_rows, lat.v), translation.truth.to(device))
        if train.has_truth and test.has_truth:
            pick = torch.randperm(train.num_groups)[: min(regressor_groups, train.num_groups)].sort().values
            fit = train.select(pick).to(device)
            fit_lat = infer(model, fit, sample)
            metrics["u_pred"] = prediction_error(fit_lat.u, fit.u_true, lat.u, test_dev.u_true)
            metrics["v_pred"] = prediction_error(fit_lat.v, fit.v_true, lat.v, test_dev.v_true)
    return metrics
