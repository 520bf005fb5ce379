"""Diagonal Gaussians: reparameterised draws, log-densities and the analytic KL to N(0, I)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class DiagGaussian:
    """A batch of diagonal Gaussians over the last dimension, parameterised by mean and log-variance."""

    mean: torch.Tensor
    logvar: torch.Tensor

    @property
    def var(self) -> torch.Tensor:
        return self.logvar.exp()

    def rsample(self) -> torch.Tensor:
        """A reparameterised draw (differentiable in mean and logvar)."""
        return self.mean + (0.5 * self.logvar).exp() * torch.randn_like(self.mean)

    def sample_or_mean(self, sample: bool) -> torch.Tensor:
        return self.rsample() if sample else self.mean

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log q(z)`` summed over the last dimension."""
        return gaussian_log_prob(z, self.mean, self.logvar)

    def kl_standard(self) -> torch.Tensor:
        """``KL[q || N(0, I)]`` summed over the last dimension."""
        return 0.5 * (self.mean**2 + self.var - 1.0 - self.logvar).sum(-1)

    def expand_rows(self, sizes: torch.Tensor, num_rows: int) -> DiagGaussian:
        """Repeat group-level parameters for every row of its group."""
        rep = lambda t: torch.repeat_interleave(t, sizes, dim=0, output_size=num_rows)  # noqa: E731
        return DiagGaussian(rep(self.mean), rep(self.logvar))


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` summed over the last dimension."""
    return -0.5 * (LOG_2PI + z**2).sum(-1)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log N(x; mean, exp(logvar))`` summed over the last dimension (logvar broadcasts)."""
    return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar)).sum(-1)
