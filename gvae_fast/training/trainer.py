"""One model and its critic, trained in alternating steps on ragged batches of whole groups."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from gvae_fast.data.ragged import GroupedData
from gvae_fast.models import CRITICS, GVAE, ModelConfig, negative_elbo

LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        batch_groups: whole groups per batch (the batch is ragged: rows vary).
        lr: Adam learning rate of the model (encoders and decoder).
        critic_lr: Adam learning rate of the critic.
        mi_weight: lambda, the weight of the mutual-information bound in the encoders' loss.
        critic_steps: critic updates before each model update.
        grad_clip: global gradient-norm clip for both optimisers (0 disables it).
        obs_warmup_epochs: epochs over which a fixed decoder observation variance moves from 1
            to its target (ignored when the variance is learned).
        lr_schedule: ``constant``, or ``cosine``: the model's learning rate follows a half cosine
            from ``lr`` to 0 over the run (the critic's stays constant so that it keeps tracking).
    """

    batch_groups: int = 64
    lr: float = 1e-3
    critic_lr: float = 1e-3
    mi_weight: float = 1.0
    critic_steps: int = 1
    grad_clip: float = 10.0
    obs_warmup_epochs: float = 1.0
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.batch_groups < 1:
            raise ValueError(f"batch_groups must be >= 1, got {self.batch_groups}")
        if not (self.lr > 0 and self.critic_lr > 0):
            raise ValueError(f"learning rates must be > 0, got lr={self.lr}, critic_lr={self.critic_lr}")
        if self.mi_weight < 0 or self.critic_steps < 1 or self.grad_clip < 0 or self.obs_warmup_epochs < 0:
            raise ValueError("mi_weight, grad_clip and obs_warmup_epochs must be >= 0 and critic_steps >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


class NonFiniteLossError(RuntimeError):
    """Training diverged: the loss became NaN or infinite."""


@dataclass
class EpochStats:
    loss: float
    mi: float
    seconds: float
    groups_per_s: float


class Trainer:
    """Holds the model, its critic (if the regulariser needs one) and both optimisers.

    ``epochs`` is the length of the run, which a learning-rate schedule other than
    ``constant`` needs.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        config: TrainConfig,
        device: torch.device | str = "cpu",
        epochs: int | None = None,
    ) -> None:
        if config.lr_schedule != "constant" and (epochs is None or epochs < 0):
            raise ValueError(f"lr_schedule {config.lr_schedule!r} needs the run's length in epochs, got {epochs}")
        self.config = config
        self.epochs = epochs
        self.device = torch.device(device)
        self.model = GVAE(model_config).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.critic = None
        self.critic_optimizer = None
        self.steps = 0
        if model_config.regularizer != "none":
            c = model_config
            self.critic = CRITICS[c.regularizer](c.x_dim, c.v_dim, c.hidden).to(self.device)
            self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)

    def _step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, params) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        optimizer.step()

    def train_batch(self, batch: GroupedData) -> tuple[float, float]:
        """One alternating update on a batch; returns ``(negative ELBO per row, MI bound)``."""
        x, offsets = batch.values, batch.offsets
        latents = self.model.encode(x, offsets, sample=True)
        mi = torch.zeros((), device=self.device)
        if self.critic is not None:
            # The critic ascends the bound on codes it cannot move; then the encoders descend it.
            v_fixed = latents.v.detach()
            for _ in range(self.config.critic_steps):
                self._step(self.critic_optimizer, -self.critic(x, v_fixed, offsets), self.critic.parameters())
            mi = self.critic(x, latents.v, offsets)
        nelbo = negative_elbo(self.model, latents, x)
        loss = nelbo + self.config.mi_weight * mi
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"loss became {loss.item()} (negative ELBO {nelbo.item()}, MI {mi.item()})")
        self._step(self.optimizer, loss, self.model.parameters())
        return nelbo.item(), mi.item()

    def train_epoch(
        self,
        data: GroupedData,
        generator: torch.Generator,
        progress: Callable[[int, float], None] | None = None,
    ) -> EpochStats:
        """One pass over ``data`` in shuffled batches; ``progress(groups_done, loss)`` after each batch."""
        self.model.train()
        start = time.perf_counter()
        total_loss = total_mi = 0.0
        rows = 0
        steps_per_epoch = math.ceil(data.num_groups / self.config.batch_groups)
        warmup_steps = self.config.obs_warmup_epochs * steps_per_epoch
        for batch in data.batches(self.config.batch_groups, generator):
            batch = batch.to(self.device)
            self.model.decoder.warm_up(self.steps / warmup_steps if warmup_steps else 1.0)
            self._schedule_lr(steps_per_epoch)
            self.steps += 1
            loss, mi = self.train_batch(batch)
            total_loss += loss * batch.num_rows
            total_mi += mi * batch.num_rows
            rows += batch.num_rows
            if progress is not None:
                progress(batch.num_groups, loss)
        seconds = time.perf_counter() - start
        return EpochStats(
            loss=total_loss / max(rows, 1),
            mi=total_mi / max(rows, 1) if self.critic is not None else math.nan,
            seconds=seconds,
            groups_per_s=data.num_groups / seconds if seconds > 0 else math.nan,
        )

    def _schedule_lr(self, steps_per_epoch: int) -> None:
        if self.config.lr_schedule == "constant":
            return
        progress = min(self.steps / (self.epochs * steps_per_epoch), 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))

    def state_dict(self) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "steps": self.steps}
        if self.critic is not None:
            state["critic"] = self.critic.state_dict()
            state["critic_optimizer"] = self.critic_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = state["steps"]
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])
            self.critic_optimizer.load_state_dict(state["critic_optimizer"])
