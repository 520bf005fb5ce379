"""Shared helpers of the ops tests (no tests here): layouts, op pairs, chunk splitting."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence

import pytest
import torch

from gvae_fast.ops import compiled, reference

requires_compiled = pytest.mark.skipif(
    compiled.LOAD_ERROR is not None, reason=f"compiled backend unavailable: {compiled.LOAD_ERROR}"
)

# (public name, compiled op, reference, argument name, data dims)
OPS: list[tuple[str, Callable, Callable, str, int]] = [
    ("segment_sum", lambda x, o: torch.ops.gvae_fast.segment_sum(x, o), reference.segment_sum, "x", 2),
    ("segment_mean", lambda x, o: torch.ops.gvae_fast.segment_mean(x, o), reference.segment_mean, "x", 2),
    ("loo_mean", lambda x, o: torch.ops.gvae_fast.loo_mean(x, o), reference.loo_mean, "x", 2),
    (
        "segment_logmeanexp",
        lambda s, o: torch.ops.gvae_fast.segment_logmeanexp(s, o),
        reference.segment_logmeanexp,
        "s",
        1,
    ),
]

# Group sizes that must behave (issue 3): empty groups first, last, consecutive; all empty;
# no groups; groups of one.
LAYOUTS: dict[str, list[int]] = {
    "mixed": [3, 0, 1, 5, 0, 0, 2, 7],
    "empty-first-and-last": [0, 4, 2, 0],
    "consecutive-empty": [2, 0, 0, 0, 3],
    "all-empty": [0, 0, 0],
    "no-groups": [],
    "groups-of-one": [1, 1, 1],
    "one-group": [9],
}


def offsets_of(sizes: Sequence[int]) -> torch.Tensor:
    """CSR offsets ``[N + 1]`` of groups with the given sizes."""
    return torch.tensor([0, *itertools.accumulate(sizes)], dtype=torch.int64)


def data_for(dims: int, rows: int, width: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """Random ``[rows, width]`` (or ``[rows]``) data on a spread of magnitudes."""
    gen = torch.Generator().manual_seed(seed)
    shape = (rows, width) if dims == 2 else (rows,)
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(dtype)


@contextlib.contextmanager
def split_chunks(threads: int) -> Iterator[None]:
    """Let the CPU kernels cut even tiny inputs into up to ``threads`` chunks, so that groups
    get split across chunks at every kind of place (mid-group, at empty groups, at ends)."""
    import gvae_fast._C as ext

    previous_threads = torch.get_num_threads()
    previous_work = ext._set_min_chunk_work(1)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        ext._set_min_chunk_work(previous_work)


def forward_backward(
    fn: Callable, x: torch.Tensor, offsets: torch.Tensor, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn(x, offsets)`` and the gradient of ``<out, g>`` for a fixed random ``g``, drawn on the CPU
    so that it is the same on every device."""
    x = x.detach().clone().requires_grad_(True)
    out = fn(x, offsets)
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(device=out.device, dtype=out.dtype)
    (gx,) = torch.autograd.grad(out, x, g, allow_unused=True)
    return out.detach(), torch.zeros_like(x) if gx is None else gx


def assert_same(actual: torch.Tensor, expected: torch.Tensor, **tol: float) -> None:
    """Equal values, NaN and infinities in the same places."""
    torch.testing.assert_close(actual, expected, equal_nan=True, **tol)
