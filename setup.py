"""Build script: the ``gvae_fast._C`` extension (CPU always; CUDA when available or FORCE_CUDA=1).

Build against the torch that will run the extension: ``pip install --no-build-isolation .``.
"""

from __future__ import annotations

import glob
import os

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError as exc:  # pragma: no cover - exercised only by a broken install
    raise SystemExit(
        "gvae_fast needs PyTorch at build time. Install torch first, then run "
        "`pip install --no-build-isolation .` so the extension is built against that torch."
    ) from exc

HERE = os.path.dirname(os.path.abspath(__file__))


def _sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


def _want_cuda() -> bool:
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.cuda.is_available() and CUDA_HOME is not None


def _write_build_info() -> None:
    """Record the torch this build compiles against; gvae_fast.ops.compiled refuses to load
    the extension into another (a C++ extension has no stable ABI across torch releases)."""
    path = os.path.join(HERE, "gvae_fast", "_build_info.py")
    text = (
        '"""Written by setup.py: the torch that gvae_fast._C was compiled against."""\n\n'
        f"TORCH_VERSION = {torch.__version__!r}\n"
    )
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)


def _extensions() -> list:
    cpp = _sources("csrc/*.cpp") + _sources("csrc/cpu/*.cpp")
    if not cpp:
        return []
    _write_build_info()
    # torch's BuildExtension picks the C++ standard its headers need (C++20 from torch 2.10 on).
    cxx = ["-O3", "-fopenmp", "-march=x86-64-v2"] if os.name != "nt" else ["/O2"]
    if os.environ.get("GVAE_FAST_NATIVE", "0") == "1":
        cxx.append("-march=native")
    cu = _sources("csrc/cuda/*.cu")
    if _want_cuda() and cu:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        return [
            CUDAExtension(
                "gvae_fast._C",
                cpp + cu,
                define_macros=[("WITH_CUDA", None)],
                # No --use_fast_math: log-mean-exp needs IEEE exp/log, and the kernels are
                # bound by memory bandwidth, not arithmetic.
                extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-lineinfo"]},
                extra_link_args=["-fopenmp"],
            )
        ]
    return [
        CppExtension(
            "gvae_fast._C",
            cpp,
            extra_compile_args={"cxx": cxx},
            extra_link_args=["-fopenmp"],
        )
    ]


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=True)},
)
