"""Held-out metrics (DESIGN §6, paper Algorithm 1)."""

from gvae_fast.metrics.dependence import residual_dependence
from gvae_fast.metrics.evaluate import InferredLatents, evaluate, heldout_log_likelihood, infer
from gvae_fast.metrics.regression import fit_regressor, prediction_error

__all__ = [
    "InferredLatents",
    "evaluate",
    "heldout_log_likelihood",
    "infer",
    "fit_regressor",
    "prediction_error",
    "residual_dependence",
]
