#!/usr/bin/env bash
# Compiles and links the CUDA build of gvae_fast._C against torch 2.14.1 (CUDA 13.0) in a fresh
# venv, imports it, checks that every operator has a CUDA kernel and that the CUDA tests collect
# and skip cleanly. CI has no GPU: this is what keeps the CUDA kernels from rotting unnoticed.
# Exits non-zero, with the reason on the last line, on any failure.
#
# Environment: GVAE_CUDA_VENV (default /tmp/gvae-cuda-venv, recreated), TORCH_CUDA_ARCH_LIST
# (default 8.0;9.0), MAX_JOBS (default: all cores).
set -euo pipefail

started=$SECONDS
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${GVAE_CUDA_VENV:-/tmp/gvae-cuda-venv}
work=$(mktemp -d /tmp/gvae-cuda-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "cuda_build: FAILED: $*" >&2
  exit 1
}
step() {
  echo "cuda_build: [$((SECONDS - started))s] $*"
}

command -v nvcc >/dev/null || fail "nvcc is not on PATH"
# nvcc on PATH may be a wrapper script; the toolkit root is where nvcc says it runs from.
echo 'int main() { return 0; }' >"$work/probe.cu"
cuda_bin=$(nvcc --dryrun -c "$work/probe.cu" -o "$work/probe.o" 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -n1)
[[ -n "$cuda_bin" && -x "$cuda_bin/nvcc" ]] || fail "cannot find the CUDA toolkit root from nvcc"
export CUDA_HOME=${cuda_bin%/bin}
step "CUDA toolkit: $CUDA_HOME ($(nvcc --version | tail -n1))"

step "fresh venv $venv with torch 2.14.1 (CUDA 13.0)"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet torch==2.14.1 setuptools wheel numpy pytest 2>&1 | grep -v "is ignored: it is neither" || true
"$venv/bin/python" -c 'import torch; assert torch.version.cuda, "torch has no CUDA"; print("torch", torch.__version__, "CUDA", torch.version.cuda)' ||
  fail "torch 2.14.1 with CUDA did not install"
# torch's CUDA headers include library headers (cuBLAS, cuSPARSE, ...) that the pip CUDA
# packages ship and this toolkit lacks.
purelib=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
export CPATH="$purelib/nvidia/cu13/include${CPATH:+:$CPATH}"

# Built from a copy: the build writes gvae_fast/_build_info.py, and an in-tree _C.so (a
# developer's CPU build) must neither be packaged nor shadow the installed one.
mkdir -p "$work/src"
tar -C "$root" --exclude=./.git --exclude=./build --exclude=./runs --exclude='*.so' \
  --exclude=_build_info.py --exclude=__pycache__ --exclude='*.egg-info' -cf - . | tar -C "$work/src" -xf -

export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-8.0;9.0} MAX_JOBS=${MAX_JOBS:-$(nproc)}
step "building (FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST, MAX_JOBS=$MAX_JOBS)"
build_started=$SECONDS
if ! (cd "$work/src" && "$venv/bin/pip" install --no-build-isolation --no-deps -v . >"$work/build.log" 2>&1); then
  tail -n 60 "$work/build.log"
  fail "the CUDA build of gvae_fast._C did not compile or link (log above)"
fi
grep -q 'nvcc.*ragged_ops.cu' "$work/build.log" || fail "the build did not compile csrc/cuda (was CUDA detected?)"
step "built in $((SECONDS - build_started))s"

# From $work, so that the installed package is imported, not the checkout.
cd "$work"
"$venv/bin/python" - <<'EOF' || fail "the CUDA kernels are not all registered"
import torch

from gvae_fast.ops import compiled

assert compiled.LOAD_ERROR is None, compiled.LOAD_ERROR
ops = [
    "segment_sum",
    "segment_mean",
    "segment_broadcast",
    "loo_mean",
    "segment_logmeanexp",
    "segment_logmeanexp_backward",
]
missing = []
for op in ops:
    keys = [k for k in ("CPU", "CUDA") if torch._C._dispatch_has_kernel_for_dispatch_key(f"gvae_fast::{op}", k)]
    print(f"  gvae_fast::{op:30s} kernels: {', '.join(keys)}")
    missing += [f"{op} ({k})" for k in ("CPU", "CUDA") if k not in keys]
if missing:
    raise SystemExit("missing kernels: " + ", ".join(missing))
EOF

step "CUDA tests collect and skip cleanly without a GPU"
cp -r "$root/tests" "$work/tests"
"$venv/bin/python" -m pytest -q -p no:cacheprovider -rs "$work/tests/test_cuda.py" | tail -n 3 ||
  fail "tests/test_cuda.py did not collect or skip cleanly"

step "OK: CUDA extension compiled, linked, imported, all kernels registered"
