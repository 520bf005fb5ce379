"""Critics T for the Donsker-Varadhan bound on the mutual information the regulariser minimises.

``bound = E_joint[T] - log E_marginal[exp T]`` (paper §2.3, §4). The critic is trained to
maximise it, the encoders to minimise ``loss + lambda * bound``. Joint pairs keep a sampled
instance code with its own group; marginal pairs give it a random row of the batch instead.
"""

from __future__ import annotations

import torch
from torch import nn

from gvae_fast import ops
from gvae_fast.models.nets import mlp


def dv_bound(joint: torch.Tensor, marginal: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan estimate ``mean(joint) - log mean(exp(marginal))`` over the whole batch.

    A batch without any pair (only groups of one) carries no information: the bound is 0.
    """
    if joint.numel() == 0:
        return joint.sum()
    whole = torch.tensor([0, marginal.shape[0]], dtype=torch.int64, device=marginal.device)
    return joint.mean() - ops.segment_logmeanexp(marginal, whole)[0]


def _rows_with_partners(offsets: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Group id and group size of every row: pairs exist only in groups of two or more."""
    sizes = offsets[1:] - offsets[:-1]
    row_size = torch.repeat_interleave(sizes, sizes, output_size=num_rows)
    return row_size, row_size > 1


class SetCritic(nn.Module):
    """CxVAE's critic ``T(x_{-k}, v_k) = T_beta(v_k, mean_{l != k} T_alpha(x_l))`` on the leave-one-out context."""

    def __init__(self, x_dim: int, v_dim: int, hidden: int) -> None:
        super().__init__()
        self.alpha = mlp([x_dim, hidden, hidden])
        self.beta = mlp([v_dim + hidden, hidden, 1])

    def forward(self, x: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        _, paired = _rows_with_partners(offsets, x.shape[0])
        context = ops.loo_mean(self.alpha(x), offsets)[paired]
        v = v[paired]
        shuffled = v[torch.randperm(v.shape[0], device=v.device)]
        joint = self.beta(torch.cat([v, context], dim=-1)).squeeze(-1)
        marginal = self.beta(torch.cat([shuffled, context], dim=-1)).squeeze(-1)
        return dv_bound(joint, marginal)


class PairCritic(nn.Module):
    """Nemeth 2020's critic ``T(x_k, v_l)``: one observation against the code of another in its group."""

    def __init__(self, x_dim: int, v_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = mlp([x_dim + v_dim, hidden, hidden, 1])

    def forward(self, x: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        m = x.shape[0]
        row_size, paired = _rows_with_partners(offsets, m)
        starts = torch.repeat_interleave(offsets[:-1], offsets[1:] - offsets[:-1], output_size=m)
        position = torch.arange(m, device=x.device) - starts
        # A uniform shift in [1, K) picks a different member of the same group.
        shift = (torch.rand(m, device=x.device) * (row_size - 1).clamp_min(1)).long() + 1
        partner = starts + (position + shift) % row_size.clamp_min(1)
        x, partner_v = x[paired], v[partner[paired]]
        shuffled = partner_v[torch.randperm(partner_v.shape[0], device=v.device)]
        joint = self.net(torch.cat([x, partner_v], dim=-1)).squeeze(-1)
        marginal = self.net(torch.cat([x, shuffled], dim=-1)).squeeze(-1)
        return dv_bound(joint, marginal)


CRITICS = {"set-critic": SetCritic, "pair-critic": PairCritic}
