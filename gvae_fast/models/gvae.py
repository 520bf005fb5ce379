"""The Group VAE assembled from the switchboard: group encoder, instance encoder, decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gvae_fast.models.config import ModelConfig
from gvae_fast.models.decoders import DECODERS
from gvae_fast.models.distributions import DiagGaussian
from gvae_fast.models.encoders import GROUP_ENCODERS, InstanceEncoder


@dataclass(frozen=True)
class Latents:
    """One draw (or the means) of the variational posterior for a ragged batch.

    Attributes:
        qu: q(u | x_i), ``[N, U]``.
        u: the group codes used, ``[N, U]``.
        u_rows: ``u`` repeated for every row of its group, ``[M, U]``.
        qv: q(v_ik | ...), ``[M, V]`` (conditioned on ``u_rows`` for the conditional encoder).
        v: the instance codes used, ``[M, V]``.
    """

    qu: DiagGaussian
    u: torch.Tensor
    u_rows: torch.Tensor
    qv: DiagGaussian
    v: torch.Tensor


class GVAE(nn.Module):
    """A member of the Group VAE family chosen by a :class:`ModelConfig` (its critic lives apart)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        rounds = {"set_layers": c.set_layers} if c.group_encoder == "deepsets" else {}
        self.group_encoder = GROUP_ENCODERS[c.group_encoder](c.x_dim, c.u_dim, c.hidden, **rounds)
        self.instance_encoder = InstanceEncoder(
            c.x_dim, c.u_dim, c.v_dim, c.hidden, c.instance_encoder == "conditional", c.conditioning
        )
        self.decoder = DECODERS[c.decoder](c.x_dim, c.u_dim, c.v_dim, c.hidden, c.obs_std)

    def encode(self, x: torch.Tensor, offsets: torch.Tensor, sample: bool = True) -> Latents:
        """Infer ``u`` per group, then ``v`` per row (drawn with reparameterisation, or the means)."""
        qu = self.group_encoder(x, offsets)
        u = qu.sample_or_mean(sample)
        sizes = offsets[1:] - offsets[:-1]
        u_rows = torch.repeat_interleave(u, sizes, dim=0, output_size=x.shape[0])
        qv = self.instance_encoder(x, u_rows)
        return Latents(qu=qu, u=u, u_rows=u_rows, qv=qv, v=qv.sample_or_mean(sample))
