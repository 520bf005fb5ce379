"""The CUDA kernels against the CPU kernels and the float64 reference: random ragged layouts in
every dtype, split long groups, special values, validation, gradcheck, opcheck, streams and a
training smoke test. Everything here needs a CUDA device and skips without one."""

from __future__ import annotations

import math

import pytest
import torch
from test_ops_support import (
    LAYOUTS,
    OPS,
    assert_same,
    data_for,
    forward_backward,
    offsets_of,
    requires_compiled,
)

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device (CI only compiles the CUDA kernels and checks that they are registered)",
)
pytestmark = [requires_compiled, requires_cuda]

OP_IDS = [op[0] for op in OPS]
ALL_OPS = [
    "segment_sum",
    "segment_mean",
    "segment_broadcast",
    "loo_mean",
    "segment_logmeanexp",
    "segment_logmeanexp_backward",
]
# Items of one warp in the kernels: groups longer than these are split over several warps.
ROWS_PER_ITEM = 256
SCORES_PER_ITEM = 4096
INF, NAN = math.inf, math.nan


def cuda(t: torch.Tensor) -> torch.Tensor:
    return t.to("cuda")


def on_cuda(fn, x: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward on the GPU, results back on the CPU for comparison."""
    out, gx = forward_backward(fn, cuda(x), cuda(offsets))
    return out.cpu(), gx.cpu()


def random_sizes(n: int, seed: int) -> list[int]:
    """Group sizes like the data (Poisson(16) + 8) with empty groups and groups of one mixed in."""
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.poisson(torch.full((n,), 16.0), generator=gen).long() + 8
    kind = torch.randint(0, 10, (n,), generator=gen)
    sizes = torch.where(kind == 0, 0, torch.where(kind == 1, 1, sizes))
    return sizes.tolist()


TOL = {
    torch.float64: {"rtol": 1e-12, "atol": 1e-12},
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.bfloat16: {"rtol": 1e-2, "atol": 1e-2},
    torch.float16: {"rtol": 2e-3, "atol": 2e-3},
}


def test_every_op_has_a_cuda_kernel():
    for op in ALL_OPS:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"gvae_fast::{op}", "CUDA"), op


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_matches_reference_on_edge_layouts(op, layout):
    _, fn, ref, _, dims = op
    offsets = offsets_of(layout)
    x = data_for(dims, int(offsets[-1]), 5, torch.float64)
    out, gx = on_cuda(fn, x, offsets)
    ref_out, ref_gx = forward_backward(ref, x, offsets)
    assert_same(out, ref_out)
    assert_same(gx, ref_gx)


# Widths that take each lane geometry: one element per lane (odd H), a few lanes per row and
# several rows per step (H = 8, 32), a full warp per row (128) and several tiles per row (264).
# Scores are 1-D: one width.
OP_WIDTHS = [(op, w) for op in OPS for w in ([1, 3, 8, 32, 128, 264] if op[4] == 2 else [1])]


@pytest.mark.parametrize("dtype", TOL.keys(), ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("op, width", OP_WIDTHS, ids=[f"{op[0]}-H{w}" for op, w in OP_WIDTHS])
def test_random_layouts_match_cpu_kernel_and_reference(op, width, dtype):
    _, fn, ref, _, dims = op
    offsets = offsets_of(random_sizes(300, seed=width))
    x = data_for(dims, int(offsets[-1]), width, dtype, seed=7)
    out, gx = on_cuda(fn, x, offsets)
    cpu_out, cpu_gx = forward_backward(fn, x, offsets)
    ref_out, ref_gx = forward_backward(ref, x.double(), offsets)
    assert out.dtype == gx.dtype == dtype
    assert_same(out.double(), ref_out, **TOL[dtype])
    assert_same(gx.double(), ref_gx, **TOL[dtype])
    # CPU and CUDA both accumulate in float32 (float64 for float64), in other orders.
    assert_same(out.double(), cpu_out.double(), **TOL[dtype])
    assert_same(gx.double(), cpu_gx.double(), **TOL[dtype])


@pytest.mark.parametrize("width", [4, 7])
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_long_groups_are_split_and_folded(op, width):
    _, fn, ref, _, dims = op
    per_item = SCORES_PER_ITEM if dims == 1 else ROWS_PER_ITEM
    # Exactly one item, one row more, many items, a partial last item, next to small groups.
    layout = [3, 0, per_item, per_item + 1, 1, 0, 9 * per_item + 17, 2, 2 * per_item]
    offsets = offsets_of(layout)
    x = data_for(dims, int(offsets[-1]), width, torch.float64)
    out, gx = on_cuda(fn, x, offsets)
    ref_out, ref_gx = forward_backward(ref, x, offsets)
    assert_same(out, ref_out)
    assert_same(gx, ref_gx)


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_one_huge_group_beside_thousands_of_small_ones(op):
    _, fn, ref, _, dims = op
    gen = torch.Generator().manual_seed(3)
    small = torch.randint(0, 6, (3000,), generator=gen).tolist()
    offsets = offsets_of(small[:1500] + [200_000] + small[1500:])
    x = data_for(dims, int(offsets[-1]), 3, torch.float64)
    out, gx = on_cuda(fn, x, offsets)
    ref_out, ref_gx = forward_backward(ref, x, offsets)
    assert_same(out, ref_out)
    assert_same(gx, ref_gx)


@pytest.mark.parametrize("op", OPS[:3], ids=OP_IDS[:3])
def test_misaligned_and_non_contiguous_inputs(op):
    _, fn, ref, _, _ = op
    offsets = offsets_of([2, 0, 3, 1, 300])
    rows = int(offsets[-1])
    flat = data_for(1, rows * 8 + 1, 0, torch.float32)
    misaligned = cuda(flat)[1:].view(rows, 8)  # contiguous, but not on a 16-byte boundary
    assert misaligned.data_ptr() % 16 != 0
    transposed = cuda(data_for(2, rows, 8, torch.float32)).t().contiguous().t()
    for x in (misaligned, transposed):
        assert_same(fn(x, cuda(offsets)).cpu(), ref(x.cpu().double(), offsets).float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logmeanexp_special_values(dtype, split):
    groups = [
        [1.0, NAN, 2.0],
        [-INF, -INF],
        [INF, 3.0],
        [INF, INF],
        [1e4, -1e4, 1e4],
        [-1e4, -1e4 + 1],
        [-INF, 0.5],
        [0.25],
        [],
    ]
    if split:  # the same cases spread over several warps, special value in a late item
        groups = [[-INF] * (2 * SCORES_PER_ITEM) + g for g in groups]
    offsets = offsets_of([len(g) for g in groups])
    s = torch.tensor([v for g in groups for v in g], dtype=dtype)
    out = torch.ops.gvae_fast.segment_logmeanexp(cuda(s), cuda(offsets)).cpu()
    expected = torch.ops.gvae_fast.segment_logmeanexp(s, offsets)
    assert_same(out, expected)
    assert torch.isnan(out[0]) and not torch.isnan(out[1:]).any()
    assert out[1] == -INF and out[2] == INF and out[3] == INF and out[8] == -INF


def test_logmeanexp_gradients_of_special_values():
    groups = [[-INF, -INF], [1e4, -1e4, 1e4], [-INF, 0.5], [INF, 3.0], [1.0, NAN]]
    offsets = offsets_of([len(g) for g in groups])
    s = torch.tensor([v for g in groups for v in g], dtype=torch.float64)
    fn = OPS[3][1]
    _, gs = on_cuda(fn, s, offsets)
    _, expected = forward_backward(fn, s, offsets)
    assert_same(gs, expected)
    assert gs[:2].tolist() == [0.0, 0.0]


def test_absent_rows_never_count_as_exp0():
    offsets = offsets_of([1, 4, 2, 5000])
    s = torch.full((5007,), -1000.0, dtype=torch.float64)
    out = torch.ops.gvae_fast.segment_logmeanexp(cuda(s), cuda(offsets)).cpu()
    torch.testing.assert_close(out, torch.full((4,), -1000.0, dtype=torch.float64))


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_gradcheck(op):
    name, fn, _, _, dims = op
    # An empty group's -inf output has no finite difference; its zero gradient is tested above.
    offsets = cuda(offsets_of([3, 1, 4, 2] if name == "segment_logmeanexp" else [3, 0, 1, 4, 2]))
    x = cuda(data_for(dims, 10, 3, torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: fn(t, offsets), (x,))
    if name != "segment_logmeanexp":
        assert torch.autograd.gradgradcheck(lambda t: fn(t, offsets), (x,))


def opcheck_samples():
    offsets = cuda(offsets_of([3, 0, 1, 4, 2]))
    x = cuda(data_for(2, 10, 3, torch.float32))
    s = cuda(data_for(1, 10, 0, torch.float32))
    ops = torch.ops.gvae_fast
    for grad in (False, True):
        yield ops.segment_sum, (x.clone().requires_grad_(grad), offsets)
        yield ops.segment_mean, (x.clone().requires_grad_(grad), offsets)
        yield ops.loo_mean, (x.clone().requires_grad_(grad), offsets)
        yield ops.segment_logmeanexp, (s.clone().requires_grad_(grad), offsets)
        yield ops.segment_broadcast, (torch.randn(5, 3, device="cuda", requires_grad=grad), offsets, True)
    out = ops.segment_logmeanexp(s, offsets)
    yield ops.segment_logmeanexp_backward, (torch.randn(5, device="cuda"), s, out, offsets)


def test_opcheck():
    for op, args in opcheck_samples():
        torch.library.opcheck(op, args)


# ---- validation on the GPU: the CPU messages, nothing read out of bounds ------------------------

BAD_CUDA_OFFSETS = {
    "decreasing": ([0, 3, 2, 5], r"offsets must be non-decreasing, but offsets\[2\] = 2 < offsets\[1\] = 3"),
    "starts-at-1": ([1, 5], r"offsets\[0\] must be 0, got 1"),
    "ends-below-M": ([0, 4], r"offsets\[-1\] must equal the number of rows of [xs] \(5\), got 4"),
    "ends-far-above-M": ([0, 1 << 40], r"offsets\[-1\] must equal the number of rows of [xs] \(5\)"),
}


@pytest.mark.parametrize("case", BAD_CUDA_OFFSETS.values(), ids=BAD_CUDA_OFFSETS.keys())
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_bad_device_offsets_raise(op, case):
    _, fn, _, _, dims = op
    values, message = case
    with pytest.raises(ValueError, match=message):
        fn(cuda(data_for(dims, 5, 3, torch.float32)), cuda(torch.tensor(values)))


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_offsets_and_data_on_different_devices_raise(op):
    _, fn, _, _, dims = op
    x = data_for(dims, 5, 3, torch.float32)
    offsets = offsets_of([2, 3])
    with pytest.raises(ValueError, match=r"offsets is on cpu but [xs] is on cuda:0"):
        fn(cuda(x), offsets)
    with pytest.raises(ValueError, match=r"offsets is on cuda:0 but [xs] is on cpu"):
        fn(x, cuda(offsets))


def test_backward_ops_check_their_arguments_on_cuda():
    ops = torch.ops.gvae_fast
    offsets = cuda(offsets_of([2, 3]))
    s, grad, out = cuda(torch.ones(5)), cuda(torch.ones(2)), cuda(torch.ones(2))
    with pytest.raises(ValueError, match="grad is on cpu but s is on cuda:0"):
        ops.segment_logmeanexp_backward(grad.cpu(), s, out, offsets)
    with pytest.raises(ValueError, match="out is on cpu but s is on cuda:0"):
        ops.segment_logmeanexp_backward(grad, s, out.cpu(), offsets)
    with pytest.raises(ValueError, match=r"grad must have 2 rows \(one per group\)"):
        ops.segment_logmeanexp_backward(cuda(torch.ones(3)), s, out, offsets)
    with pytest.raises(ValueError, match=r"g must have 2 rows \(one per group\), got shape \(1, 3\)"):
        ops.segment_broadcast(cuda(torch.ones(1, 3)), offsets, False)
    with pytest.raises(ValueError, match=r"offsets must be non-decreasing"):
        ops.segment_broadcast(cuda(torch.ones(2, 3)), cuda(torch.tensor([0, 4, 2])), True)


# ---- streams, devices, compile, training --------------------------------------------------------


def test_runs_on_the_current_stream():
    offsets = cuda(offsets_of(random_sizes(2000, seed=5)))
    x = cuda(data_for(2, int(offsets[-1]), 64, torch.float32))
    expected = torch.ops.gvae_fast.loo_mean(x, offsets)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        # Any kernel on the default stream instead would race with this one-step producer.
        y = x * 1.0
        got = torch.ops.gvae_fast.loo_mean(y, offsets)
    side.synchronize()
    assert torch.equal(got, expected)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second GPU")
def test_runs_on_a_non_default_device():
    offsets = offsets_of([3, 0, 1, 4, 2])
    x = data_for(2, 10, 6, torch.float64)
    out = torch.ops.gvae_fast.segment_sum(x.to("cuda:1"), offsets.to("cuda:1"))
    assert out.device == torch.device("cuda:1")
    assert_same(out.cpu(), torch.ops.gvae_fast.segment_sum(x, offsets))


def test_torch_compile_fullgraph_on_cuda():
    import gvae_fast.ops as ops

    if ops.backend() != "compiled":
        pytest.skip("the public wrappers run the reference backend")

    def f(x, s, offsets):
        pooled = ops.segment_sum(x, offsets) + ops.segment_mean(x * x, offsets)
        return pooled.square().sum() + (ops.loo_mean(x, offsets) * x).sum() + ops.segment_logmeanexp(s, offsets).sum()

    offsets = cuda(offsets_of([3, 0, 1, 4, 2]))
    x, s = cuda(data_for(2, 10, 3, torch.float32)), cuda(data_for(1, 10, 0, torch.float32))
    results = []
    for fn in (f, torch.compile(f, fullgraph=True)):
        xg, sg = x.clone().requires_grad_(True), s.clone().requires_grad_(True)
        value = fn(xg, sg, offsets)
        results.append((value, *torch.autograd.grad(value, (xg, sg))))
    for eager, traced in zip(*results, strict=True):
        torch.testing.assert_close(traced, eager)


@pytest.mark.parametrize("model", ["cxvae", "nemeth"])
def test_training_smoke_on_cuda(model, tmp_path):
    train = pytest.importorskip("gvae_fast.train", reason="the training command line is not there yet")
    pytest.importorskip("gvae_fast.models", reason="the models are not there yet")
    import gvae_fast.ops as ops

    assert ops.backend() == "compiled"
    argv = ["--model", model, "--device", "cuda", "--groups", "256", "--heldout-groups", "64", "--epochs", "1"]
    argv += ["--iwae-samples", "2", "--quiet", "--out", str(tmp_path / model)]
    assert train.main(argv) == 0
    assert (tmp_path / model / "metrics.csv").exists()
