#!/usr/bin/env bash
# The GPU check of issue 4, in one go: on a machine with an NVIDIA GPU, PyTorch with CUDA and
# nvcc, builds gvae_fast with its CUDA kernels for this device, runs the CUDA tests, runs the
# CUDA benchmark and prints its table. Meant to take under 5 minutes.
#
# usage: bench/gpu_check.sh OUTDIR
# Writes OUTDIR/gpu_check.log (everything printed), OUTDIR/cuda_bench.md (the table) and
# OUTDIR/cuda_bench.json. PYTHON picks the interpreter (default: python). The package is
# installed into a scratch folder, not into that Python's environment.
set -uo pipefail

check() {
  local out=$1 root py work started status=0
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  py=${PYTHON:-python}
  work=$(mktemp -d /tmp/gvae-gpu-check.XXXXXX)
  trap 'rm -rf "$work"' RETURN
  started=$SECONDS
  step() { echo; echo "== [$((SECONDS - started))s] $*"; }

  step "device"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$py" -c 'import torch; assert torch.cuda.is_available(), "torch sees no CUDA device"
print("torch", torch.__version__, "CUDA", torch.version.cuda, "|", torch.cuda.get_device_name(0))' || return 2
  local arch
  arch=$("$py" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))')

  step "build (FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$arch})"
  if [[ -z "${CUDA_HOME:-}" ]]; then
    # nvcc on PATH may be a wrapper script; the toolkit root is where nvcc says it runs from.
    echo 'int main() { return 0; }' >"$work/probe.cu"
    local cuda_bin
    cuda_bin=$(nvcc --dryrun -c "$work/probe.cu" -o "$work/probe.o" 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -n1)
    export CUDA_HOME=${cuda_bin%/bin}
  fi
  echo "CUDA_HOME=$CUDA_HOME ($("$CUDA_HOME/bin/nvcc" --version | tail -n1))"
  # Pip-installed torch ships CUDA library headers (cuBLAS, cuSPARSE, ...) that a bare toolkit
  # may lack; the toolkit's own headers still come first.
  local purelib inc
  purelib=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  for inc in "$purelib"/nvidia/*/include; do
    [[ -d "$inc" ]] && export CPATH="${CPATH:+$CPATH:}$inc"
  done
  mkdir -p "$work/src"
  tar -C "$root" --exclude=./.git --exclude=./build --exclude=./runs --exclude='*.so' \
    --exclude=_build_info.py --exclude=__pycache__ --exclude='*.egg-info' -cf - . | tar -C "$work/src" -xf -
  if ! (cd "$work/src" && FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$arch} \
    MAX_JOBS=${MAX_JOBS:-$(nproc)} "$py" -m pip install --no-build-isolation --no-deps --target "$work/site" \
    . >"$work/build.log" 2>&1); then
    tail -n 60 "$work/build.log"
    echo "BUILD FAILED"
    return 1
  fi
  export PYTHONPATH="$work/site"
  "$py" -c 'import torch, gvae_fast.ops as ops
assert ops.backend() == "compiled", ops.backend()
assert torch._C._dispatch_has_kernel_for_dispatch_key("gvae_fast::loo_mean", "CUDA")
print("gvae_fast", ops.__file__, "backend:", ops.backend())' || return 1

  step "CUDA tests"
  cp -r "$root/tests" "$work/tests"
  (cd "$work" && "$py" -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py) || status=1
  # The CPU suite's device-parametrised cases, where it has them (exit 5: it has none).
  local rc
  (cd "$work" && "$py" -m pytest -q -rs -p no:cacheprovider tests/test_ops_kernels.py -k cuda)
  rc=$?
  [[ $rc == 0 || $rc == 5 ]] || status=1

  step "CUDA benchmark"
  "$py" "$root/bench/report_cuda.py" --out "$out" || status=1

  step "done in $((SECONDS - started))s: $([[ $status == 0 ]] && echo OK || echo FAILED)"
  return $status
}

if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
mkdir -p "$1"
check "$(cd "$1" && pwd)" 2>&1 | tee "$1/gpu_check.log"
exit "${PIPESTATUS[0]}"
