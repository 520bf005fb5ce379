"""gvae_fast: group-instance disentanglement (Group VAE family and CxVAE) on ragged groups."""

__version__ = "0.1.0"
