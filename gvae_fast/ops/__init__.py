"""The ragged operators of DESIGN §3 behind one boundary.

Model code calls only these four functions. They run the compiled ``torch.ops.gvae_fast``
kernels when the extension is built and the pure-PyTorch reference otherwise;
:func:`backend` says which, and ``GVAE_FAST_BACKEND=reference`` forces the reference.
With the compiled backend the wrappers read no tensor data (the C++ kernels validate the
offsets), so ``torch.compile(fullgraph=True)`` traces through them.
"""

from __future__ import annotations

import os
import warnings

import torch

from gvae_fast.ops import reference
from gvae_fast.ops.validate import check_offsets, check_values

__all__ = ["backend", "segment_sum", "segment_mean", "loo_mean", "segment_logmeanexp"]


def backend() -> str:
    """``"compiled"`` when the C++/CUDA extension is in use, else ``"reference"``."""
    return _BACKEND


def _select_backend() -> str:
    """Pick the backend named by ``GVAE_FAST_BACKEND`` (``auto`` when unset).

    ``auto`` uses the extension when it loads and otherwise warns once and falls back;
    ``compiled`` makes a missing or unusable extension an error (for CI); ``reference``
    never loads it.
    """
    choice = os.environ.get("GVAE_FAST_BACKEND", "auto").lower() or "auto"
    if choice not in ("auto", "compiled", "reference"):
        raise ValueError(f"GVAE_FAST_BACKEND must be auto, compiled or reference, got {choice!r}")
    if choice == "reference":
        return "reference"
    from gvae_fast.ops.compiled import LOAD_ERROR, REBUILD_HINT

    if LOAD_ERROR is None:
        return "compiled"
    message = f"{LOAD_ERROR}; {REBUILD_HINT}"
    if choice == "compiled":
        raise ImportError(f"GVAE_FAST_BACKEND=compiled but {message}")
    warnings.warn(
        f"gvae_fast is using the slow pure-PyTorch reference operators: {message}. "
        "Set GVAE_FAST_BACKEND=reference to choose them silently.",
        RuntimeWarning,
        stacklevel=2,
    )
    return "reference"


_BACKEND = _select_backend()
_COMPILED = _BACKEND == "compiled"


def _checked(x: torch.Tensor, offsets: torch.Tensor, name: str, dims: int) -> None:
    check_values(x, name, dims)
    check_offsets(offsets, x.shape[0], x, name)


def segment_sum(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Per-group sum of the rows of ``x`` ``[M, H]`` -> ``[N, H]``."""
    if _COMPILED:
        return torch.ops.gvae_fast.segment_sum(x, offsets)
    _checked(x, offsets, "x", 2)
    return reference.segment_sum(x, offsets)


def segment_mean(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Per-group mean of the rows of ``x`` ``[M, H]`` -> ``[N, H]``; an empty group gives 0."""
    if _COMPILED:
        return torch.ops.gvae_fast.segment_mean(x, offsets)
    _checked(x, offsets, "x", 2)
    return reference.segment_mean(x, offsets)


def loo_mean(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Leave-one-out group mean ``[M, H]`` -> ``[M, H]``; a group of one gives 0."""
    if _COMPILED:
        return torch.ops.gvae_fast.loo_mean(x, offsets)
    _checked(x, offsets, "x", 2)
    return reference.loo_mean(x, offsets)


def segment_logmeanexp(s: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Stable per-group log-mean-exp of scores ``s`` ``[M]`` -> ``[N]``; empty group gives -inf."""
    if _COMPILED:
        return torch.ops.gvae_fast.segment_logmeanexp(s, offsets)
    _checked(s, offsets, "s", 1)
    return reference.segment_logmeanexp(s, offsets)
