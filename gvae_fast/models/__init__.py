"""Models: the Group VAE switchboard, its critics and objectives (DESIGN §4)."""

from gvae_fast.models.config import PRESETS, ModelConfig
from gvae_fast.models.critics import CRITICS, dv_bound
from gvae_fast.models.gvae import GVAE, Latents
from gvae_fast.models.objective import iwae_log_likelihood, negative_elbo

__all__ = [
    "PRESETS",
    "ModelConfig",
    "CRITICS",
    "dv_bound",
    "GVAE",
    "Latents",
    "iwae_log_likelihood",
    "negative_elbo",
]
