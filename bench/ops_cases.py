"""Benchmark cases of the ragged operators: layouts, data, and every implementation compared.

Shared by the pytest-benchmark suite (``pytest bench/ --benchmark-only``) and the one-table
report (``python bench/report.py``). For each operator: the compiled kernel, the reference
(``gvae_fast.ops.reference``, which derives row ids on every call) and the torch-native ways to
do it. The native paths get their row ids, lengths and padding positions precomputed outside
the timed call, which favours them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from gvae_fast.ops import compiled, reference

# Paper-sized data in one call (DESIGN §5, §8) and a training batch.
LAYOUTS = {"paper": 32_768, "batch": 1_024}
WIDTHS = (32, 128)
OPS = ("segment_sum", "segment_mean", "loo_mean", "segment_logmeanexp")
MODES = ("fwd", "fwd+bwd")


@dataclass
class Layout:
    """A ragged layout with the index tensors the native paths need, built once."""

    name: str
    offsets: torch.Tensor
    lengths: torch.Tensor
    ids: torch.Tensor
    pad_index: torch.Tensor  # row r's position in a [N, K_max] padding
    k_max: int

    @property
    def groups(self) -> int:
        return self.offsets.numel() - 1

    @property
    def rows(self) -> int:
        return int(self.offsets[-1])


def make_layout(name: str, seed: int = 0) -> Layout:
    """K_i ~ Poisson(16) + 8, as the Exam-Scores data (DESIGN §5)."""
    gen = torch.Generator().manual_seed(seed)
    n = LAYOUTS[name]
    lengths = (torch.poisson(torch.full((n,), 16.0), generator=gen) + 8).long()
    offsets = torch.zeros(n + 1, dtype=torch.long)
    offsets[1:] = lengths.cumsum(0)
    ids = torch.repeat_interleave(torch.arange(n), lengths)
    k_max = int(lengths.max())
    pad_index = ids * k_max + (torch.arange(ids.numel()) - offsets[ids])
    return Layout(name, offsets, lengths, ids, pad_index, k_max)


def make_input(op: str, layout: Layout, width: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = (layout.rows,) if op == "segment_logmeanexp" else (layout.rows, width)
    return torch.randn(shape, generator=gen, dtype=torch.float32)


# ---- torch-native implementations ---------------------------------------------------------------


def _index_add_sum(x: torch.Tensor, lay: Layout) -> torch.Tensor:
    return x.new_zeros(lay.groups, x.shape[1]).index_add_(0, lay.ids, x)


def _segment_reduce(x: torch.Tensor, lay: Layout, how: str) -> torch.Tensor:
    return torch.segment_reduce(x, how, lengths=lay.lengths, unsafe=True)


def _scatter_reduce(x: torch.Tensor, lay: Layout, how: str) -> torch.Tensor:
    index = lay.ids.unsqueeze(1).expand_as(x)
    return x.new_zeros(lay.groups, x.shape[1]).scatter_reduce_(0, index, x, how, include_self=False)


def _inv_k(lay: Layout, dtype: torch.dtype) -> torch.Tensor:
    return (1.0 / lay.lengths.clamp(min=1).to(dtype)).unsqueeze(1)


def _loo_from_sum(x: torch.Tensor, lay: Layout, sums: torch.Tensor) -> torch.Tensor:
    k = lay.lengths[lay.ids].unsqueeze(1)
    return torch.where(k > 1, (sums[lay.ids] - x) / (k - 1).clamp(min=1).to(x.dtype), 0.0)


def _lme_scatter(s: torch.Tensor, lay: Layout) -> torch.Tensor:
    shift = s.new_full((lay.groups,), -math.inf).scatter_reduce_(0, lay.ids, s.detach(), "amax")
    shift = torch.where(torch.isfinite(shift), shift, 0.0)
    total = s.new_zeros(lay.groups).index_add_(0, lay.ids, torch.exp(s - shift[lay.ids]))
    return torch.log(total) + shift - torch.log(lay.lengths.to(s.dtype))


def _lme_padded(s: torch.Tensor, lay: Layout) -> torch.Tensor:
    # -inf padding contributes exp(-inf) = 0: the correct way to pad a log-sum-exp.
    padded = s.new_full((lay.groups * lay.k_max,), -math.inf).index_put((lay.pad_index,), s)
    return torch.logsumexp(padded.view(lay.groups, lay.k_max), 1) - torch.log(lay.lengths.to(s.dtype))


def _lme_loop(s: torch.Tensor, lay: Layout) -> torch.Tensor:
    return torch.stack([torch.logsumexp(g, 0) for g in torch.split(s, lay.lengths.tolist())]) - torch.log(
        lay.lengths.to(s.dtype)
    )


NATIVE: dict[str, dict[str, Callable]] = {
    "segment_sum": {
        "index_add_": _index_add_sum,
        "segment_reduce": lambda x, lay: _segment_reduce(x, lay, "sum"),
        "scatter_reduce_": lambda x, lay: _scatter_reduce(x, lay, "sum"),
    },
    "segment_mean": {
        "index_add_": lambda x, lay: _index_add_sum(x, lay) * _inv_k(lay, x.dtype),
        "segment_reduce": lambda x, lay: _segment_reduce(x, lay, "mean"),
        "scatter_reduce_": lambda x, lay: _scatter_reduce(x, lay, "mean"),
    },
    "loo_mean": {
        "index_add_": lambda x, lay: _loo_from_sum(x, lay, _index_add_sum(x, lay)),
        "segment_reduce": lambda x, lay: _loo_from_sum(x, lay, _segment_reduce(x, lay, "sum")),
    },
    "segment_logmeanexp": {
        "scatter_reduce_": _lme_scatter,
        "padded logsumexp": _lme_padded,
        "logsumexp loop": _lme_loop,
    },
}


def implementations(op: str, layout: Layout) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Every way to compute ``op`` on ``layout``, by name; "compiled" only when it is built."""
    impls: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    if compiled.LOAD_ERROR is None:
        kernel = getattr(torch.ops.gvae_fast, op)
        impls["compiled"] = lambda x: kernel(x, layout.offsets)
    ref = getattr(reference, op)
    impls["reference"] = lambda x: ref(x, layout.offsets)
    for name, fn in NATIVE[op].items():
        if name == "logsumexp loop" and layout.groups > 2_000:
            continue  # tens of thousands of Python-level calls: seconds per call
        impls[name] = lambda x, fn=fn: fn(x, layout)
    return impls


def step(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: str) -> Callable[[], object]:
    """A zero-argument call of ``fn``: forward only, or forward and backward of ``<out, g>``."""
    if mode == "fwd":
        return lambda: fn(x)
    leaf = x.detach().requires_grad_(True)
    probe = fn(leaf)
    g = torch.randn_like(probe)

    def forward_backward() -> object:
        return torch.autograd.grad(fn(leaf), leaf, g)

    return forward_backward


def bytes_moved(op: str, layout: Layout, width: int, mode: str, itemsize: int = 4) -> int:
    """The data an ideal kernel must read and write (each element once), in bytes."""
    m, n = layout.rows, layout.groups
    if op == "segment_logmeanexp":
        fwd, bwd = m + n, 2 * m + 2 * n  # bwd reads s, grad, out; writes gs
    elif op == "loo_mean":
        fwd = bwd = 2 * m * width
    else:
        fwd = bwd = (m + n) * width
    return itemsize * (fwd if mode == "fwd" else fwd + bwd)
