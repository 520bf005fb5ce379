"""Decoders p(x | u, v): Gaussian likelihoods with a learned observation log-variance."""

from __future__ import annotations

import torch
from torch import nn

from gvae_fast.data.exam_scores import U_DIM, V_DIM, exam_mean
from gvae_fast.models.distributions import gaussian_log_prob
from gvae_fast.models.nets import mlp


class _GaussianDecoder(nn.Module):
    """Shared likelihood: ``log N(x; mean(u, v), exp(logvar))`` with one learned log-variance per feature."""

    def __init__(self, x_dim: int) -> None:
        super().__init__()
        self.logvar = nn.Parameter(torch.zeros(x_dim))

    def mean(self, u_rows: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, u_rows: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Per-row ``log p(x | u, v)`` (broadcasts over leading sample dimensions)."""
        return gaussian_log_prob(x, self.mean(u_rows, v), self.logvar)


class ExamDecoder(_GaussianDecoder):
    """The known Exam-Scores generative form ``x = 2 u_0 + (u_1^2 + 1) v`` (paper §3.1)."""

    def __init__(self, x_dim: int, u_dim: int, v_dim: int, hidden: int) -> None:
        if (x_dim, u_dim, v_dim) != (1, U_DIM, V_DIM):
            raise ValueError(
                f"the 'exam' decoder needs D=1, U={U_DIM}, V={V_DIM}; got D={x_dim}, U={u_dim}, V={v_dim} "
                "(use --decoder mlp for other data)"
            )
        super().__init__(x_dim)

    def mean(self, u_rows: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return exam_mean(u_rows, v)


class MLPDecoder(_GaussianDecoder):
    """A learned decoder ``MLP([u, v])`` for any D, U, V."""

    def __init__(self, x_dim: int, u_dim: int, v_dim: int, hidden: int) -> None:
        super().__init__(x_dim)
        self.net = mlp([u_dim + v_dim, hidden, hidden, x_dim])

    def mean(self, u_rows: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([u_rows, v], dim=-1))


DECODERS = {"exam": ExamDecoder, "mlp": MLPDecoder}
