"""Objectives: the negative ELBO for training and the IWAE bound for held-out log-likelihood."""

from __future__ import annotations

import torch

from gvae_fast import ops
from gvae_fast.models.distributions import standard_normal_log_prob
from gvae_fast.models.gvae import GVAE, Latents


def negative_elbo(model: GVAE, latents: Latents, x: torch.Tensor) -> torch.Tensor:
    """Negative ELBO per observation: the group KL counts once per group, not once per row."""
    rec = model.decoder.log_prob(x, latents.u_rows, latents.v).sum()
    kl = latents.qv.kl_standard().sum() + latents.qu.kl_standard().sum()
    return (kl - rec) / max(x.shape[0], 1)


def iwae_log_likelihood(model: GVAE, x: torch.Tensor, offsets: torch.Tensor, samples: int) -> torch.Tensor:
    """Importance-weighted bound on ``log p(x_i)`` per group ``[N]`` with ``samples`` joint draws.

    Each draw is ``u ~ q(u | x_i)`` then ``v_k ~ q(v | x_k, u)``; the bound is the log-mean-exp
    of the group's log importance weights over the draws.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    n = offsets.numel() - 1
    log_w = []
    for _ in range(samples):
        lat = model.encode(x, offsets, sample=True)
        row_terms = (
            model.decoder.log_prob(x, lat.u_rows, lat.v) + standard_normal_log_prob(lat.v) - lat.qv.log_prob(lat.v)
        )
        group_terms = standard_normal_log_prob(lat.u) - lat.qu.log_prob(lat.u)
        log_w.append(ops.segment_sum(row_terms.unsqueeze(-1), offsets).squeeze(-1) + group_terms)
    # Group-major layout: the draws of group i are one segment of the log-mean-exp.
    stacked = torch.stack(log_w, dim=1).reshape(-1)
    draw_offsets = torch.arange(0, n * samples + 1, samples, device=x.device)
    return ops.segment_logmeanexp(stacked, draw_offsets)
