"""Decoders p(x | u, v): Gaussian likelihoods with a learned or a fixed observation variance."""

from __future__ import annotations

import math

import torch
from torch import nn

from gvae_fast.data.exam_scores import U_DIM, V_DIM, exam_mean
from gvae_fast.models.distributions import gaussian_log_prob
from gvae_fast.models.nets import mlp


class _GaussianDecoder(nn.Module):
    """Shared likelihood ``log N(x; mean(u, v), exp(logvar))`` with one log-variance per feature.

    With ``obs_std=None`` the log-variance is learned (from 0). With a fixed ``obs_std`` it is a
    buffer that :meth:`warm_up` moves from 0 (unit variance) to ``2 log obs_std``: a learned
    variance settles where the ELBO is nearly flat (on Exam-Scores near 1.2 against the true
    0.01, trading observation noise for blur in q(v)), while a sharp fixed one from the first
    step freezes a poor q(u).
    """

    def __init__(self, x_dim: int, obs_std: float | None = None) -> None:
        super().__init__()
        self.fixed_logvar = None if obs_std is None else 2.0 * math.log(obs_std)
        if self.fixed_logvar is None:
            self.logvar = nn.Parameter(torch.zeros(x_dim))
        else:
            self.register_buffer("logvar", torch.zeros(x_dim))

    def warm_up(self, fraction: float) -> None:
        """Set a fixed observation log-variance to ``fraction`` of its target (no-op when learned)."""
        if self.fixed_logvar is not None:
            self.logvar.fill_(min(max(fraction, 0.0), 1.0) * self.fixed_logvar)

    def mean(self, u_rows: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, u_rows: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Per-row ``log p(x | u, v)`` (broadcasts over leading sample dimensions)."""
        return gaussian_log_prob(x, self.mean(u_rows, v), self.logvar)


class ExamDecoder(_GaussianDecoder):
    """The known Exam-Scores generative form ``x = 2 u_0 + (u_1^2 + 1) v`` (paper §3.1)."""

    def __init__(self, x_dim: int, u_dim: int, v_dim: int, hidden: int, obs_std: float | None = None) -> None:
        if (x_dim, u_dim, v_dim) != (1, U_DIM, V_DIM):
            raise ValueError(
                f"the 'exam' decoder needs D=1, U={U_DIM}, V={V_DIM}; got D={x_dim}, U={u_dim}, V={v_dim} "
                "(use --decoder mlp for other data)"
            )
        super().__init__(x_dim, obs_std)

    def mean(self, u_rows: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return exam_mean(u_rows, v)


class MLPDecoder(_GaussianDecoder):
    """A learned decoder ``MLP([u, v])`` for any D, U, V."""

    def __init__(self, x_dim: int, u_dim: int, v_dim: int, hidden: int, obs_std: float | None = None) -> None:
        super().__init__(x_dim, obs_std)
        self.net = mlp([u_dim + v_dim, hidden, hidden, x_dim])

    def mean(self, u_rows: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([u_rows, v], dim=-1))


DECODERS = {"exam": ExamDecoder, "mlp": MLPDecoder}
