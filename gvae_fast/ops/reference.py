"""Pure-PyTorch reference implementations of the ragged operators (DESIGN §3).

These are the fallback when the compiled extension is not built and the oracle that the
kernel tests compare against. They are differentiable by ordinary autograd. Callers are
expected to have validated ``offsets`` (see :mod:`gvae_fast.ops.validate`).
"""

from __future__ import annotations

import torch


def group_sizes(offsets: torch.Tensor) -> torch.Tensor:
    """``K_i`` for every group, int64 ``[N]``."""
    return offsets[1:] - offsets[:-1]


def row_groups(offsets: torch.Tensor, num_rows: int) -> torch.Tensor:
    """The group id of every row, int64 ``[M]`` (the only place rows learn their group)."""
    n = offsets.numel() - 1
    return torch.repeat_interleave(torch.arange(n, device=offsets.device), group_sizes(offsets), output_size=num_rows)


def segment_sum(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``out[i] = sum of x[offsets[i]:offsets[i+1]]``; ``[M, H] -> [N, H]``."""
    n = offsets.numel() - 1
    ids = row_groups(offsets, x.shape[0])
    out = x.new_zeros((n,) + tuple(x.shape[1:]))
    return out.index_add(0, ids, x)


def segment_mean(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Per-group mean; an empty group gives 0. ``[M, H] -> [N, H]``."""
    k = group_sizes(offsets).clamp(min=1).to(x.dtype)
    return segment_sum(x, offsets) / k.view((-1,) + (1,) * (x.dim() - 1))


def loo_mean(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Leave-one-out group mean ``(S_i - x[r]) / (K_i - 1)``; a group of one gives 0."""
    ids = row_groups(offsets, x.shape[0])
    k = group_sizes(offsets)[ids].view((-1,) + (1,) * (x.dim() - 1))
    others = segment_sum(x, offsets)[ids] - x
    has_others = k > 1
    # Double where: the masked branch must not leak NaN/inf into the gradient of groups of one.
    return torch.where(has_others, others / torch.where(has_others, k - 1, 1).to(x.dtype), 0.0)


def segment_logmeanexp(s: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Stable ``log((1/K_i) sum exp s[r])`` per group; an empty or all ``-inf`` group gives ``-inf``.

    ``[M] -> [N]``. NaN propagates to its own group only; ``+inf`` gives ``+inf`` as
    :func:`torch.logsumexp` does. Absent rows never contribute ``exp(0)``.
    """
    n = offsets.numel() - 1
    ids = row_groups(offsets, s.shape[0])
    k = group_sizes(offsets)
    shift = torch.full((n,), float("-inf"), dtype=s.dtype, device=s.device)
    shift = shift.scatter_reduce(0, ids, s.detach(), reduce="amax", include_self=True)
    # The shift's gradient cancels analytically, so it is detached; a non-finite max
    # (empty, all -inf, +inf, NaN group) shifts by 0 and lets exp/log give the limit.
    shift = torch.where(torch.isfinite(shift), shift, 0.0)
    total = segment_sum(torch.exp(s - shift[ids]), offsets)
    nonzero = total != 0
    safe_total = torch.where(nonzero, total, 1.0)
    log_k = torch.log(k.clamp(min=1).to(s.dtype))
    out = torch.log(safe_total) + shift - log_k
    return torch.where(nonzero, out, float("-inf"))
