"""The Exam-Scores problem (paper §3.1): an entangled group-instance generative model.

u_i = (mu_i, sigma_i) ~ N(0, I), v_ik ~ N(0, 1), K_i ~ Poisson(16) + 8,
x_ik = 2 mu_i + (sigma_i^2 + 1) v_ik + eps_ik, eps_ik ~ N(0, noise_std^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gvae_fast.data.ragged import GroupedData

U_DIM = 2
V_DIM = 1
DEFAULT_NOISE_STD = 0.1


def exam_mean(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Noise-free Exam-Scores observation ``2 mu + (sigma^2 + 1) v`` for per-row ``u [M, 2]``, ``v [M, 1]``."""
    return 2.0 * u[..., :1] + (u[..., 1:2] ** 2 + 1.0) * v


@dataclass(frozen=True)
class Translation:
    """Translation pairs over a held-out set: source group ``i`` is moved into group ``target[i]``.

    Attributes:
        target: ``[N]`` int64 target group of every source group (never the source itself).
        truth: ``[M, D]`` noise-free ground-truth translation of every source observation.
    """

    target: torch.Tensor
    truth: torch.Tensor


def generate(
    num_groups: int,
    generator: torch.Generator,
    noise_std: float = DEFAULT_NOISE_STD,
    mean_extra: float = 16.0,
    min_size: int = 8,
) -> GroupedData:
    """Sample ``num_groups`` Exam-Scores groups with sizes ``Poisson(mean_extra) + min_size``."""
    if num_groups < 0:
        raise ValueError(f"num_groups must be >= 0, got {num_groups}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    sizes = torch.poisson(torch.full((num_groups,), float(mean_extra)), generator=generator).long() + min_size
    offsets = torch.zeros(num_groups + 1, dtype=torch.int64)
    torch.cumsum(sizes, 0, out=offsets[1:])
    m = int(offsets[-1])
    u = torch.randn(num_groups, U_DIM, generator=generator)
    v = torch.randn(m, V_DIM, generator=generator)
    u_rows = torch.repeat_interleave(u, sizes, dim=0, output_size=m)
    x = exam_mean(u_rows, v) + noise_std * torch.randn(m, 1, generator=generator)
    return GroupedData(values=x, offsets=offsets, u_true=u, v_true=v)


def translation_pairs(data: GroupedData, generator: torch.Generator) -> Translation:
    """Pair every group with a different random target group and compute the true translation."""
    n = data.num_groups
    if n < 2:
        raise ValueError(f"translation needs at least 2 groups, got {n}")
    # A random non-zero shift modulo n never maps a group to itself.
    target = (torch.arange(n) + torch.randint(1, n, (n,), generator=generator)) % n
    target_rows = torch.repeat_interleave(data.u_true[target], data.sizes, dim=0, output_size=data.num_rows)
    return Translation(target=target, truth=exam_mean(target_rows, data.v_true))
