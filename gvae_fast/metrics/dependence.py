"""Group information left in the instance codes: a fresh set critic fitted after training.

The regulariser's in-training bound is computed by a critic that co-adapts with the encoder,
so a small value could mean either that the codes are clean or that the critic lost the
race. This asks an independent critic, trained to convergence on frozen codes, for the
Donsker-Varadhan lower bound on ``I(x_{-k}; v_k)`` over held-out groups.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gvae_fast.data.ragged import GroupedData
from gvae_fast.models.critics import SetCritic


def residual_dependence(
    codes: Callable[[GroupedData], torch.Tensor],
    train: GroupedData,
    test: GroupedData,
    epochs: int = 3,
    batch_groups: int = 256,
    hidden: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> float:
    """Held-out DV lower bound (nats) on ``I(x_{-k}; v_k)`` for the instance codes ``codes(batch)``.

    A :class:`SetCritic` is trained for ``epochs`` passes over ``train`` (shuffled batches of
    ``batch_groups`` whole groups) to maximise the bound on the codes, which are recomputed
    per batch without gradients (a sampling encoder gives fresh draws), then the bound is
    averaged over ``test``'s batches that hold a pair. Codes that ignore the rest of their
    group give about 0.
    """
    if epochs < 1 or batch_groups < 1 or hidden < 1:
        raise ValueError(f"need epochs, batch_groups and hidden >= 1, got {epochs}, {batch_groups} and {hidden}")
    for name, data in (("training", train), ("held-out", test)):
        if not bool((data.sizes > 1).any()):
            raise ValueError(f"the {name} set has no group of two or more rows: there is no x_{{-k}} to measure")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        critic: SetCritic | None = None
        optimizer = None
        for _ in range(epochs):
            for batch in train.batches(batch_groups, gen):
                with torch.no_grad():
                    v = _checked(codes(batch), batch)
                if critic is None:
                    critic = SetCritic(batch.values.shape[1], v.shape[1], hidden).to(v.device, v.dtype)
                    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
                loss = -critic(batch.values.to(v.device), v, batch.offsets.to(v.device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        bounds = []
        with torch.no_grad():
            for batch in test.batches(batch_groups):
                # A batch of singletons has no pair to score; averaging its 0 in would dilute the bound.
                if bool((batch.sizes > 1).any()):
                    v = _checked(codes(batch), batch)
                    bounds.append(critic(batch.values.to(v.device), v, batch.offsets.to(v.device)).item())
    return sum(bounds) / len(bounds)


def _checked(v: torch.Tensor, batch: GroupedData) -> torch.Tensor:
    if v.dim() != 2 or v.shape[0] != batch.num_rows:
        raise ValueError(f"codes must be [rows, V] = [{batch.num_rows}, V], got {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        raise ValueError("codes contain NaN or infinite values")
    return v
