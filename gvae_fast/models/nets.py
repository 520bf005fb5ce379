"""Small building blocks shared by the encoders, decoders and critics."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gvae_fast.models.distributions import DiagGaussian

# Keeps variances inside float32's comfortable range without biting in normal training.
LOGVAR_MIN, LOGVAR_MAX = -14.0, 10.0


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with SiLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(nn.SiLU())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


def gaussian_head(params: torch.Tensor) -> DiagGaussian:
    """Split ``[..., 2 * d]`` network outputs into a diagonal Gaussian (mean, clamped log-variance)."""
    mean, logvar = params.chunk(2, dim=-1)
    return DiagGaussian(mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX))
