"""Property tests: the compiled kernels equal the reference on random ragged layouts, widths,
thread counts and chunk splits, forward and backward (float64)."""

from __future__ import annotations

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ops_support import OPS, assert_same, forward_backward, offsets_of, requires_compiled, split_chunks

pytestmark = requires_compiled

PROPERTY_SETTINGS = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

# Mostly small groups with empty ones and groups of one, now and then a long one.
group_sizes = st.lists(st.one_of(st.integers(0, 3), st.integers(0, 60)), max_size=14)
# Widths around the kernels' column tiles (8, 16 doubles) and their tails.
widths = st.one_of(st.integers(1, 10), st.sampled_from([15, 16, 17, 24, 33, 40]))
threads = st.sampled_from([1, 2, 3, 5])


def _data(rows: int, width: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(rows, width, generator=gen, dtype=torch.float64) * 4


def _check(op_index: int, x: torch.Tensor, offsets: torch.Tensor, chunk_threads: int) -> None:
    _, fn, ref, _, _ = OPS[op_index]
    with split_chunks(chunk_threads):
        out, gx = forward_backward(fn, x, offsets)
    ref_out, ref_gx = forward_backward(ref, x, offsets)
    assert_same(out, ref_out)
    assert_same(gx, ref_gx)


@PROPERTY_SETTINGS
@given(sizes=group_sizes, width=widths, chunk_threads=threads, seed=st.integers(0, 2**16))
def test_segment_sum_property(sizes, width, chunk_threads, seed):
    offsets = offsets_of(sizes)
    _check(0, _data(int(offsets[-1]), width, seed), offsets, chunk_threads)


@PROPERTY_SETTINGS
@given(sizes=group_sizes, width=widths, chunk_threads=threads, seed=st.integers(0, 2**16))
def test_segment_mean_property(sizes, width, chunk_threads, seed):
    offsets = offsets_of(sizes)
    _check(1, _data(int(offsets[-1]), width, seed), offsets, chunk_threads)


@PROPERTY_SETTINGS
@given(sizes=group_sizes, width=widths, chunk_threads=threads, seed=st.integers(0, 2**16))
def test_loo_mean_property(sizes, width, chunk_threads, seed):
    offsets = offsets_of(sizes)
    _check(2, _data(int(offsets[-1]), width, seed), offsets, chunk_threads)


# Scores with the values that break naive log-sum-exps: -inf, NaN, huge magnitudes.
scores = st.one_of(
    st.floats(-30, 30),
    st.sampled_from([-math.inf, math.nan, 1e4, -1e4, 700.0, -745.0]),
)


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    sizes=group_sizes,
    chunk_threads=threads,
)
def test_segment_logmeanexp_property(data, sizes, chunk_threads):
    offsets = offsets_of(sizes)
    rows = int(offsets[-1])
    s = torch.tensor(data.draw(st.lists(scores, min_size=rows, max_size=rows)), dtype=torch.float64)
    _check(3, s, offsets, chunk_threads)
    expected = [
        torch.logsumexp(s[int(a) : int(b)], 0) - math.log(int(b) - int(a)) if b > a else s.new_tensor(-math.inf)
        for a, b in zip(offsets[:-1], offsets[1:], strict=True)
    ]
    with split_chunks(chunk_threads):
        out = torch.ops.gvae_fast.segment_logmeanexp(s, offsets)
    assert_same(out, torch.stack(expected) if expected else s.new_empty(0))
