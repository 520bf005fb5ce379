// Schemas of the gvae_fast operators (DESIGN §3). Kernels live in cpu/ and cuda/; autograd
// and fake (meta) kernels are registered from Python in gvae_fast/ops/compiled.py.
#include <Python.h>
#include <torch/library.h>

#include "cpu/ragged.h"

namespace {

// Test hook: sets the CPU kernels' smallest chunk (elements) and returns the previous value.
PyObject* set_min_chunk_work(PyObject*, PyObject* arg) {
  const long long elements = PyLong_AsLongLong(arg);
  if (elements == -1 && PyErr_Occurred()) {
    return nullptr;
  }
  return PyLong_FromLongLong(gvae_fast::cpu::min_chunk_work().exchange(elements));
}

PyMethodDef methods[] = {
    {"_set_min_chunk_work", set_min_chunk_work, METH_O, "Test hook: smallest CPU chunk, in elements."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

// `import gvae_fast._C` runs the static registrations below; the module holds only a test hook.
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};
  return PyModule_Create(&module);
}

TORCH_LIBRARY(gvae_fast, m) {
  // Tells torch.compile where the fake kernels are when the ops are used before that import.
  m.set_python_module("gvae_fast.ops.compiled");
  // [M, H] -> [N, H]: per-group sum.
  m.def("segment_sum(Tensor x, Tensor offsets) -> Tensor");
  // [M, H] -> [N, H]: per-group mean; an empty group gives 0.
  m.def("segment_mean(Tensor x, Tensor offsets) -> Tensor");
  // [N, H] -> [M, H]: gx[r] = g[i(r)], divided by K_i when `mean` (backward of sum / mean).
  m.def("segment_broadcast(Tensor g, Tensor offsets, bool mean) -> Tensor");
  // [M, H] -> [M, H]: leave-one-out group mean; self-adjoint, so also its own backward.
  m.def("loo_mean(Tensor x, Tensor offsets) -> Tensor");
  // [M] -> [N]: log((1/K_i) sum exp s[r]); an empty or all -inf group gives -inf.
  m.def("segment_logmeanexp(Tensor s, Tensor offsets) -> Tensor");
  // [N], [M], [N] -> [M]: gs[r] = grad[i] exp(s[r] - out[i] - log K_i); 0 where out[i] = -inf.
  m.def("segment_logmeanexp_backward(Tensor grad, Tensor s, Tensor out, Tensor offsets) -> Tensor");
}
