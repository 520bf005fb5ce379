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
    averaged over ``test``'s batches. Codes that ignore the rest of their group give about 0.
    """
    if epochs < 1 or batch_groups < 1:
        raise ValueError(f"need epochs >= 1 and batch_groups >= 1, got {epochs} and {batch_groups}")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        critic: SetCritic | None = None
        optimizer = None
        for _ in range(epochs):
            for batch in train.batches(batch_groups, gen):
                with torch.no_grad():
                    v = codes(batch)
                if critic is None:
                    critic = SetCritic(batch.values.shape[1], v.shape[1], hidden).to(v.device, v.dtype)
                    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
                loss = -critic(batch.values.to(v.device), v, batch.offsets.to(v.device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        if critic is None:
            raise ValueError("the training set has no groups")
        bounds = []
        with torch.no_grad():
            for batch in test.batches(batch_groups):
                v = codes(batch)
                bounds.append(critic(batch.values.to(v.device), v, batch.offsets.to(v.device)).item())
    if not bounds:
        raise ValueError("the held-out set has no groups")
    return sum(bounds) / len(bounds)
