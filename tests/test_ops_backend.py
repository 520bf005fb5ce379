"""Backend selection: GVAE_FAST_BACKEND, the one fallback warning, the build-time torch check,
and the public wrappers on whichever backend is in use."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from test_ops_support import OPS, assert_same, data_for, offsets_of, requires_compiled

import gvae_fast.ops as ops


def run_python(code: str, backend: str | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (the backend is chosen once, at import)."""
    env = {k: v for k, v in os.environ.items() if k != "GVAE_FAST_BACKEND"}
    if backend is not None:
        env["GVAE_FAST_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )


REPORT = """
    import warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        import gvae_fast.ops as ops
    print(ops.backend())
    print(len(caught))
    for w in caught:
        print(w.category.__name__, w.message)
"""


def test_reference_is_forced_silently():
    result = run_python(REPORT, backend="reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["reference", "0"]


@requires_compiled
def test_compiled_by_default_when_built():
    result = run_python(REPORT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["compiled", "0"]


def test_missing_extension_falls_back_with_one_warning():
    result = run_python("import sys; sys.modules['gvae_fast._C'] = None\n" + textwrap.dedent(REPORT))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["reference", "1"]
    assert lines[2].startswith("RuntimeWarning")
    assert "gvae_fast._C" in lines[2] and "pip install --no-build-isolation ." in lines[2]


def test_extension_built_against_another_torch_is_not_loaded():
    fake_record = (
        "import sys, types\n"
        "record = types.ModuleType('gvae_fast._build_info'); record.TORCH_VERSION = '1.0.0'\n"
        "sys.modules['gvae_fast._build_info'] = record\n"
    )
    result = run_python(fake_record + textwrap.dedent(REPORT) + "import sys; print('gvae_fast._C' in sys.modules)")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["reference", "1"]
    assert f"built against torch 1.0.0 but torch {torch.__version__} is running" in lines[2]
    assert lines[-1] == "False"


def test_compiled_required_but_missing_is_an_error():
    result = run_python("import sys; sys.modules['gvae_fast._C'] = None\nimport gvae_fast.ops", backend="compiled")
    assert result.returncode != 0
    assert "GVAE_FAST_BACKEND=compiled but the extension gvae_fast._C is not built" in result.stderr


def test_unknown_backend_is_an_error():
    result = run_python("import gvae_fast.ops", backend="fast")
    assert result.returncode != 0
    assert "GVAE_FAST_BACKEND must be auto, compiled or reference, got 'fast'" in result.stderr


@pytest.mark.parametrize("op", OPS, ids=[op[0] for op in OPS])
def test_public_wrapper_matches_reference(op):
    name, _, ref, _, dims = op
    offsets = offsets_of([2, 0, 1, 3])
    x = data_for(dims, 6, 4, torch.float64)
    assert_same(getattr(ops, name)(x, offsets), ref(x, offsets))


@pytest.mark.parametrize("op", OPS, ids=[op[0] for op in OPS])
def test_public_wrapper_rejects_int32_offsets(op):
    name, _, _, _, dims = op
    with pytest.raises(ValueError, match="offsets must be int64, got torch.int32"):
        getattr(ops, name)(data_for(dims, 3, 2, torch.float32), torch.tensor([0, 3], dtype=torch.int32))
