"""The compiled CPU kernels against the reference oracle: values, gradients, edge layouts,
validation, special values, gradcheck, opcheck and torch.compile."""

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
    split_chunks,
)

from gvae_fast.ops import validate

pytestmark = requires_compiled

OP_IDS = [op[0] for op in OPS]


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_matches_reference_on_edge_layouts(op, layout, threads):
    _, fn, ref, _, dims = op
    offsets = offsets_of(layout)
    x = data_for(dims, int(offsets[-1]), 5, torch.float64)
    with split_chunks(threads):
        out, gx = forward_backward(fn, x, offsets)
    ref_out, ref_gx = forward_backward(ref, x, offsets)
    assert_same(out, ref_out)
    assert_same(gx, ref_gx)


def test_empty_group_values():
    offsets = offsets_of([0, 2, 0])
    x = torch.ones(2, 3, dtype=torch.float64)
    assert torch.equal(torch.ops.gvae_fast.segment_sum(x, offsets)[[0, 2]], torch.zeros(2, 3, dtype=x.dtype))
    assert torch.equal(torch.ops.gvae_fast.segment_mean(x, offsets)[[0, 2]], torch.zeros(2, 3, dtype=x.dtype))
    lme = torch.ops.gvae_fast.segment_logmeanexp(torch.zeros(2, dtype=torch.float64), offsets)
    assert lme.tolist() == [-math.inf, 0.0, -math.inf]


def test_group_of_one_has_zero_loo_mean_and_gradient():
    x = torch.tensor([[5.0, -2.0], [1.0, 1.0], [3.0, 3.0]], dtype=torch.float64, requires_grad=True)
    offsets = offsets_of([1, 2])
    out = torch.ops.gvae_fast.loo_mean(x, offsets)
    assert out[0].tolist() == [0.0, 0.0]
    assert out[1:].tolist() == [[3.0, 3.0], [1.0, 1.0]]
    (gx,) = torch.autograd.grad(out, x, torch.ones_like(out))
    assert gx[0].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_one_huge_group_beside_thousands_of_small_ones(op):
    _, fn, ref, _, dims = op
    gen = torch.Generator().manual_seed(3)
    small = torch.randint(0, 6, (3000,), generator=gen).tolist()
    layout = small[:1500] + [200_000] + small[1500:]
    offsets = offsets_of(layout)
    x = data_for(dims, int(offsets[-1]), 3, torch.float64)
    out, gx = forward_backward(fn, x, offsets)
    ref_out, ref_gx = forward_backward(ref, x, offsets)
    assert_same(out, ref_out)
    assert_same(gx, ref_gx)


@pytest.mark.parametrize("threads", [2, 7])
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_groups_split_across_many_chunks(op, threads):
    _, fn, ref, _, dims = op
    offsets = offsets_of([40, 0, 1, 2, 0, 37, 1, 0])
    x = data_for(dims, int(offsets[-1]), 4, torch.float64)
    with split_chunks(threads):
        out, gx = forward_backward(fn, x, offsets)
    ref_out, ref_gx = forward_backward(ref, x, offsets)
    assert_same(out, ref_out)
    assert_same(gx, ref_gx)


@pytest.mark.parametrize(
    "view",
    [
        lambda x: x.t().contiguous().t(),
        lambda x: torch.cat([x, x], dim=1)[:, ::2],
        lambda x: torch.cat([x, x], dim=1)[:, 3:],
    ],
    ids=["transposed", "strided-columns", "sliced-columns"],
)
@pytest.mark.parametrize("op", OPS[:3], ids=OP_IDS[:3])
def test_non_contiguous_input(op, view):
    _, fn, ref, _, _ = op
    offsets = offsets_of([2, 0, 3, 1])
    x = view(data_for(2, 6, 3, torch.float64))
    assert not x.is_contiguous()
    assert_same(fn(x, offsets), ref(x, offsets))


def test_non_contiguous_scores():
    offsets = offsets_of([2, 0, 3, 1])
    s = data_for(1, 12, 0, torch.float64)[::2]
    assert_same(
        torch.ops.gvae_fast.segment_logmeanexp(s, offsets),
        torch.stack(
            [
                torch.logsumexp(s[0:2], 0) - math.log(2),
                torch.tensor(-math.inf, dtype=s.dtype),
                torch.logsumexp(s[2:5], 0) - math.log(3),
                s[5],
            ]
        ),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_reduced_precision_close_to_float64_reference(op, dtype):
    _, fn, ref, _, dims = op
    offsets = offsets_of([3, 0, 1, 17, 5, 2, 60])
    x = data_for(dims, int(offsets[-1]), 40, dtype)
    tol = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}[dtype]
    with split_chunks(3):
        out, gx = forward_backward(fn, x, offsets)
    ref_out, ref_gx = forward_backward(ref, x.double(), offsets)
    assert out.dtype == gx.dtype == dtype
    assert_same(out.double(), ref_out, rtol=tol, atol=tol)
    assert_same(gx.double(), ref_gx, rtol=tol, atol=tol)


# ---- validation: the messages of validate.py, from C++, in forward and backward ----------------

BAD_OFFSETS = {
    "int32": (torch.tensor([0, 2, 5], dtype=torch.int32), "offsets must be int64, got torch.int32"),
    "float": (torch.tensor([0.0, 5.0]), "offsets must be int64, got torch.float32"),
    "2-D": (torch.tensor([[0, 5]]), r"offsets must be 1-D, got shape \(1, 2\)"),
    "empty": (torch.tensor([], dtype=torch.int64), r"offsets must hold at least one entry"),
    "starts-at-1": (torch.tensor([1, 5]), r"offsets\[0\] must be 0, got 1"),
    "decreasing": (
        torch.tensor([0, 3, 2, 5]),
        r"offsets must be non-decreasing, but offsets\[2\] = 2 < offsets\[1\] = 3",
    ),
    "ends-below-M": (torch.tensor([0, 4]), r"offsets\[-1\] must equal the number of rows of [xs] \(5\), got 4"),
    "ends-above-M": (torch.tensor([0, 6]), r"offsets\[-1\] must equal the number of rows of [xs] \(5\), got 6"),
    "other-device": (torch.tensor([0, 5], device="meta"), r"offsets is on meta but [xs] is on cpu"),
}


@pytest.mark.parametrize("case", BAD_OFFSETS.values(), ids=BAD_OFFSETS.keys())
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_bad_offsets_raise_the_validate_py_message(op, case):
    _, fn, _, name, dims = op
    offsets, message = case
    x = data_for(dims, 5, 3, torch.float32)
    with pytest.raises(ValueError, match=message) as raised:
        fn(x, offsets)
    if offsets.device.type == "cpu":
        with pytest.raises(ValueError) as expected:
            validate.check_offsets(offsets, 5, x, name)
        assert str(raised.value) == str(expected.value)


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.ones(5), r"x must be 2-D, got shape \(5,\)"),
        (torch.ones(5, 2, dtype=torch.int64), "x must be a floating-point tensor, got torch.int64"),
    ],
)
def test_bad_values_raise(x, message):
    with pytest.raises(ValueError, match=message):
        torch.ops.gvae_fast.segment_sum(x, offsets_of([5]))


@pytest.mark.parametrize("case", BAD_OFFSETS.values(), ids=BAD_OFFSETS.keys())
def test_backward_ops_validate_their_offsets(case):
    offsets, message = case
    if "number of rows" in message:
        # segment_broadcast takes its row count from the offsets; its g must have N rows.
        with pytest.raises(ValueError, match=r"g must have 2 rows \(one per group\), got shape \(1, 3\)"):
            torch.ops.gvae_fast.segment_broadcast(torch.ones(1, 3), torch.tensor([0, 4, 5]), False)
    else:
        with pytest.raises(ValueError, match=message.replace("[xs]", "g")):
            torch.ops.gvae_fast.segment_broadcast(torch.ones(1, 3), offsets, True)
    with pytest.raises(ValueError, match=message.replace("[xs]", "s")):
        torch.ops.gvae_fast.segment_logmeanexp_backward(torch.ones(1), torch.ones(5), torch.ones(1), offsets)


@pytest.mark.parametrize(
    "grad, out, message",
    [
        (torch.ones(3), torch.ones(2), r"grad must have 2 rows \(one per group\)"),
        (torch.ones(2), torch.ones(1), r"out must have 2 rows \(one per group\)"),
        (torch.ones(2, dtype=torch.float64), torch.ones(2), "grad must have the dtype of s"),
    ],
)
def test_logmeanexp_backward_checks_its_other_arguments(grad, out, message):
    with pytest.raises(ValueError, match=message):
        torch.ops.gvae_fast.segment_logmeanexp_backward(grad, torch.ones(5), out, offsets_of([2, 3]))


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_backward_uses_the_offsets_forward_validated(op):
    _, fn, ref, _, dims = op
    offsets = offsets_of([2, 3, 1])
    x = data_for(dims, 6, 3, torch.float64).requires_grad_(True)
    out = fn(x, offsets)
    offsets[1] = 100  # would index far out of bounds if backward read it
    (gx,) = torch.autograd.grad(out, x, torch.ones_like(out))
    (expected,) = torch.autograd.grad(ref(x, offsets_of([2, 3, 1])), x, torch.ones_like(out))
    assert_same(gx, expected)


# ---- segment_logmeanexp special values ----------------------------------------------------------


def per_group_logmeanexp(s: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """The plain definition: torch.logsumexp of each group's own rows, minus log K_i."""
    out = []
    for i in range(offsets.numel() - 1):
        group = s[int(offsets[i]) : int(offsets[i + 1])]
        k = group.numel()
        out.append(torch.logsumexp(group, 0) - math.log(k) if k else s.new_tensor(-math.inf))
    return torch.stack(out)


INF, NAN = math.inf, math.nan


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logmeanexp_special_values_match_per_group_logsumexp(dtype):
    groups = [
        [1.0, NAN, 2.0],  # NaN poisons its own group only
        [-INF, -INF],  # all -inf: -inf, zero gradient
        [INF, 3.0],  # +inf: +inf
        [1e4, -1e4, 1e4],  # large magnitudes stay finite
        [-1e4, -1e4 + 1],
        [-INF, 0.5],  # one finite row among -inf
        [0.25],
        [],
    ]
    offsets = offsets_of([len(g) for g in groups])
    s = torch.tensor([v for g in groups for v in g], dtype=dtype)
    out = torch.ops.gvae_fast.segment_logmeanexp(s, offsets)
    assert_same(out, per_group_logmeanexp(s, offsets))
    assert torch.isnan(out[0]) and not torch.isnan(out[1:]).any()
    assert out[1] == -INF and out[2] == INF and torch.isfinite(out[3:7]).all()


def test_logmeanexp_gradients_of_special_values():
    groups = [[-INF, -INF], [1e4, -1e4, 1e4], [-INF, 0.5], [INF, 3.0], [1.0, NAN]]
    offsets = offsets_of([len(g) for g in groups])
    s = torch.tensor([v for g in groups for v in g], dtype=torch.float64, requires_grad=True)
    (gs,) = torch.autograd.grad(torch.ops.gvae_fast.segment_logmeanexp(s, offsets).sum(), s)
    assert gs[:2].tolist() == [0.0, 0.0]  # all -inf: zero, not NaN
    torch.testing.assert_close(gs[2:5], torch.tensor([0.5, 0.0, 0.5], dtype=s.dtype))
    assert gs[5:7].tolist() == [0.0, 1.0]
    # +inf: what torch.logsumexp's gradient gives (NaN at the +inf row, 0 elsewhere).
    (expected,) = torch.autograd.grad(torch.logsumexp(s[7:9], 0), s)
    assert_same(gs[7:9], expected[7:9])
    assert torch.isnan(gs[9:]).all()


def test_absent_rows_never_count_as_exp0():
    # Very negative scores: a padded formulation that adds exp(0) for absent rows would give
    # about log(1/K) instead of about -1000.
    offsets = offsets_of([1, 4, 2])
    s = torch.full((7,), -1000.0, dtype=torch.float64)
    out = torch.ops.gvae_fast.segment_logmeanexp(s, offsets)
    torch.testing.assert_close(out, torch.full((3,), -1000.0, dtype=torch.float64))


# ---- gradcheck, opcheck, torch.compile ----------------------------------------------------------


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_gradcheck(op):
    name, fn, _, _, dims = op
    # An empty group's -inf output has no finite difference; its zero gradient is tested above.
    offsets = offsets_of([3, 1, 4, 2] if name == "segment_logmeanexp" else [3, 0, 1, 4, 2])
    x = data_for(dims, 10, 3, torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: fn(t, offsets), (x,))
    if name != "segment_logmeanexp":  # linear maps: their backward is differentiable too
        assert torch.autograd.gradgradcheck(lambda t: fn(t, offsets), (x,))


def opcheck_samples():
    offsets = offsets_of([3, 0, 1, 4, 2])
    x = data_for(2, 10, 3, torch.float32)
    s = data_for(1, 10, 0, torch.float32)
    ops = torch.ops.gvae_fast
    for grad in (False, True):
        yield ops.segment_sum, (x.clone().requires_grad_(grad), offsets)
        yield ops.segment_mean, (x.clone().requires_grad_(grad), offsets)
        yield ops.loo_mean, (x.clone().requires_grad_(grad), offsets)
        yield ops.segment_logmeanexp, (s.clone().requires_grad_(grad), offsets)
        yield ops.segment_broadcast, (torch.randn(5, 3, requires_grad=grad), offsets, True)
    out = ops.segment_logmeanexp(s, offsets)
    yield ops.segment_logmeanexp_backward, (torch.randn(5), s, out, offsets)


@pytest.mark.parametrize("op, args", list(opcheck_samples()))
def test_opcheck(op, args):
    torch.library.opcheck(op, args)


def test_torch_compile_fullgraph_matches_eager():
    import gvae_fast.ops as ops

    if ops.backend() != "compiled":
        pytest.skip("the public wrappers run the reference backend")

    def f(x, s, offsets):
        pooled = ops.segment_sum(x, offsets) + ops.segment_mean(x * x, offsets)
        context = ops.loo_mean(x, offsets)
        return pooled.square().sum() + (context * x).sum() + ops.segment_logmeanexp(s, offsets).sum()

    offsets = offsets_of([3, 0, 1, 4, 2])
    x = data_for(2, 10, 3, torch.float32)
    s = data_for(1, 10, 0, torch.float32)
    compiled_f = torch.compile(f, fullgraph=True, backend="inductor")
    results = []
    for fn in (f, compiled_f):
        xg, sg = x.clone().requires_grad_(True), s.clone().requires_grad_(True)
        value = fn(xg, sg, offsets)
        results.append((value, *torch.autograd.grad(value, (xg, sg))))
    for eager, traced in zip(*results, strict=True):
        torch.testing.assert_close(traced, eager)
