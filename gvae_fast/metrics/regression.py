"""Regressors that read the true latents off the inferred ones (paper Algorithm 1).

Their held-out mean squared error measures how much the inferred latents say about the
true ones; a small MLP on standardised inputs, trained full-batch with Adam.
"""

from __future__ import annotations

import torch

from gvae_fast.models.nets import mlp


@torch.enable_grad()
def fit_regressor(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    hidden: int = 32,
    steps: int = 300,
    lr: float = 1e-2,
    seed: int = 0,
    max_rows: int = 8192,
):
    """Fit ``targets ~ MLP(inputs)`` and return a function that predicts for new inputs.

    At most ``max_rows`` random pairs are used: a smooth low-dimensional map is pinned down by
    far fewer, and full-batch steps over every row of a large training set dominated the
    per-epoch evaluation (about 45 s per fit on 100k rows).
    """
    if inputs.shape[0] != targets.shape[0] or inputs.shape[0] == 0:
        raise ValueError(f"need matching, non-empty inputs and targets, got {inputs.shape[0]} and {targets.shape[0]}")
    inputs, targets = inputs.detach().float(), targets.detach().float()
    if inputs.shape[0] > max_rows:
        keep = torch.randperm(inputs.shape[0], generator=torch.Generator().manual_seed(seed))[:max_rows]
        keep = keep.to(inputs.device)
        inputs, targets = inputs[keep], targets[keep]
    mean, std = inputs.mean(0), inputs.std(0, unbiased=False).clamp_min(1e-6)
    t_mean, t_std = targets.mean(0), targets.std(0, unbiased=False).clamp_min(1e-6)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = mlp([inputs.shape[1], hidden, hidden, targets.shape[1]]).to(inputs.device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    z, t = (inputs - mean) / std, (targets - t_mean) / t_std
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(net(z), t).backward()
        opt.step()
        sched.step()
    net.eval()

    @torch.no_grad()
    def predict(new_inputs: torch.Tensor) -> torch.Tensor:
        return net((new_inputs.float() - mean) / std) * t_std + t_mean

    return predict


def prediction_error(
    train_inputs: torch.Tensor,
    train_targets: torch.Tensor,
    test_inputs: torch.Tensor,
    test_targets: torch.Tensor,
) -> float:
    """Held-out MSE (mean over rows and target dimensions) of a regressor fitted on the training pairs."""
    predict = fit_regressor(train_inputs, train_targets)
    return torch.mean((predict(test_inputs) - test_targets.float()) ** 2).item()
