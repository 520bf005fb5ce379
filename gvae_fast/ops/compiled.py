"""The compiled backend: loads ``gvae_fast._C`` and gives its operators autograd and fake kernels.

Importing this module never raises. :data:`LOAD_ERROR` is ``None`` when the
``torch.ops.gvae_fast`` operators are registered and usable, otherwise a one-line reason.
The C++ kernels validate every input, data included (DESIGN §3), in forward and backward;
the fake kernels here check what a trace can see (shapes, dtypes, devices).
"""

from __future__ import annotations

import importlib
import os

import torch

from gvae_fast.ops.validate import check_offsets_meta, check_values

REBUILD_HINT = (
    "rebuild it against the running torch with `pip install --no-build-isolation .` "
    "(or `python setup.py build_ext --inplace` in a checkout)"
)


def _load() -> str | None:
    """Import the extension unless it cannot work here; return why not, or ``None``."""
    # The folder matters when a source checkout shadows an installed gvae_fast (a script or
    # `python -m pytest` run from the repository root imports the checkout first).
    not_built = f"the extension gvae_fast._C is not built in {os.path.dirname(os.path.dirname(__file__))}"
    try:
        from gvae_fast import _build_info
    except ImportError:
        return not_built
    # Checked before the import: a C++ extension has no stable ABI across torch builds, and
    # loading one built against another torch can fail anywhere from import to first call.
    if _build_info.TORCH_VERSION != torch.__version__:
        return (
            f"gvae_fast._C was built against torch {_build_info.TORCH_VERSION} but torch {torch.__version__} is running"
        )
    try:
        importlib.import_module("gvae_fast._C")
    except ModuleNotFoundError as exc:
        if exc.name == "gvae_fast._C":
            return not_built
        return f"gvae_fast._C failed to load: {exc}"
    except ImportError as exc:
        return f"gvae_fast._C failed to load: {exc}"
    return None


def _groups(x: torch.Tensor, offsets: torch.Tensor, name: str, dims: int) -> int:
    check_values(x, name, dims)
    check_offsets_meta(offsets, x, name)
    return offsets.shape[0] - 1


def _fake_reduce(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    return x.new_empty((_groups(x, offsets, "x", 2), x.shape[1]))


def _fake_broadcast(g: torch.Tensor, offsets: torch.Tensor, mean: bool) -> torch.Tensor:
    check_values(g, "g", 2)
    check_offsets_meta(offsets, g, "g")
    # The row count is offsets[-1], data a trace cannot read.
    rows = torch.library.get_ctx().new_dynamic_size()
    return g.new_empty((rows, g.shape[1]))


def _fake_loo_mean(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    _groups(x, offsets, "x", 2)
    return x.new_empty(x.shape)


def _fake_logmeanexp(s: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    return s.new_empty((_groups(s, offsets, "s", 1),))


def _fake_logmeanexp_backward(
    grad: torch.Tensor, s: torch.Tensor, out: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    _groups(s, offsets, "s", 1)
    return s.new_empty(s.shape)


def _save_offsets(ctx, offsets: torch.Tensor, rows: int) -> None:
    # A private copy: backward must see the offsets forward validated, even if the caller
    # changes its tensor in place in between (the C++ kernels re-validate it anyway).
    ctx.offsets = offsets.clone()
    ctx.rows = rows


def _broadcast(g: torch.Tensor, offsets: torch.Tensor, mean: bool, rows: int) -> torch.Tensor:
    gx = torch.ops.gvae_fast.segment_broadcast(g, offsets, mean)
    # Tells a trace that the data-dependent row count is the forward's M.
    torch._check(gx.shape[0] == rows)
    return gx


def _setup_reduce(ctx, inputs: tuple, output: torch.Tensor) -> None:
    x, offsets = inputs
    _save_offsets(ctx, offsets, x.shape[0])


def _segment_sum_backward(ctx, grad: torch.Tensor) -> tuple:
    return _broadcast(grad, ctx.offsets, False, ctx.rows), None


def _segment_mean_backward(ctx, grad: torch.Tensor) -> tuple:
    return _broadcast(grad, ctx.offsets, True, ctx.rows), None


def _setup_broadcast(ctx, inputs: tuple, output: torch.Tensor) -> None:
    g, offsets, mean = inputs
    _save_offsets(ctx, offsets, g.shape[0])
    ctx.mean = mean


def _segment_broadcast_backward(ctx, grad: torch.Tensor) -> tuple:
    op = torch.ops.gvae_fast.segment_mean if ctx.mean else torch.ops.gvae_fast.segment_sum
    return op(grad, ctx.offsets), None, None


def _loo_mean_backward(ctx, grad: torch.Tensor) -> tuple:
    # loo_mean is a symmetric linear map within each group, hence its own adjoint.
    return torch.ops.gvae_fast.loo_mean(grad, ctx.offsets), None


def _setup_logmeanexp(ctx, inputs: tuple, output: torch.Tensor) -> None:
    s, offsets = inputs
    _save_offsets(ctx, offsets, s.shape[0])
    ctx.save_for_backward(s, output)


def _segment_logmeanexp_backward(ctx, grad: torch.Tensor) -> tuple:
    s, out = ctx.saved_tensors
    return torch.ops.gvae_fast.segment_logmeanexp_backward(grad, s, out, ctx.offsets), None


def _register() -> None:
    for name, fake in (
        ("segment_sum", _fake_reduce),
        ("segment_mean", _fake_reduce),
        ("segment_broadcast", _fake_broadcast),
        ("loo_mean", _fake_loo_mean),
        ("segment_logmeanexp", _fake_logmeanexp),
        ("segment_logmeanexp_backward", _fake_logmeanexp_backward),
    ):
        torch.library.register_fake(f"gvae_fast::{name}", fake)
    for name, backward, setup in (
        ("segment_sum", _segment_sum_backward, _setup_reduce),
        ("segment_mean", _segment_mean_backward, _setup_reduce),
        ("segment_broadcast", _segment_broadcast_backward, _setup_broadcast),
        ("loo_mean", _loo_mean_backward, _setup_reduce),
        ("segment_logmeanexp", _segment_logmeanexp_backward, _setup_logmeanexp),
    ):
        torch.library.register_autograd(f"gvae_fast::{name}", backward, setup_context=setup)


LOAD_ERROR: str | None = _load()
if LOAD_ERROR is None:
    _register()
