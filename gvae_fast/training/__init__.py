"""Training: the alternating trainer, atomic checkpoints and whole runs written to disk."""

from gvae_fast.training.run import DataConfig, RunConfig, run_training
from gvae_fast.training.trainer import NonFiniteLossError, TrainConfig, Trainer

__all__ = ["DataConfig", "RunConfig", "run_training", "NonFiniteLossError", "TrainConfig", "Trainer"]
