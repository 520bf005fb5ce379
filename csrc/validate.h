// Checks of the CSR offsets contract (DESIGN §2, §3), shared by the CPU and CUDA kernels.
//
// Every operator calls these before it touches a data pointer, in forward and in backward,
// so no caller-supplied layout can make a kernel index out of bounds. Failures raise
// ValueError in Python with the same messages as gvae_fast/ops/validate.py (the contract).
// Host-only C++ so that nvcc can include it from .cu files.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <sstream>
#include <string>

namespace gvae_fast {

// Python spelling of a shape, "(3,)" or "(2, 3)", so messages match validate.py.
inline std::string py_shape(c10::IntArrayRef sizes) {
  std::ostringstream out;
  out << '(';
  for (size_t d = 0; d < sizes.size(); ++d) {
    out << (d ? ", " : "") << sizes[d];
  }
  out << (sizes.size() == 1 ? ",)" : ")");
  return out.str();
}

// Python spelling of a dtype, "torch.int32".
inline std::string py_dtype(c10::ScalarType type) {
  return "torch." + std::string(c10::getDtypeNames(type).first);
}

// A floating-point tensor with `dims` dimensions.
inline void check_values(const at::Tensor& x, const char* name, int64_t dims) {
  TORCH_CHECK_VALUE(x.dim() == dims, name, " must be ", dims, "-D, got shape ", py_shape(x.sizes()));
  TORCH_CHECK_VALUE(at::isFloatingType(x.scalar_type()), name, " must be a floating-point tensor, got ",
                    py_dtype(x.scalar_type()));
}

// `t` has `rows` rows (its first dimension), as derived from the offsets or another argument.
inline void check_rows(const at::Tensor& t, int64_t rows, const char* name, const char* what) {
  TORCH_CHECK_VALUE(t.size(0) == rows, name, " must have ", rows, " rows (", what, "), got shape ",
                    py_shape(t.sizes()));
}

// Two arguments of one operator share a dtype (the kernels read both through one pointer type).
inline void check_same_dtype(const at::Tensor& t, const at::Tensor& like, const char* name,
                             const char* like_name) {
  TORCH_CHECK_VALUE(t.scalar_type() == like.scalar_type(), name, " must have the dtype of ", like_name, " (",
                    py_dtype(like.scalar_type()), "), got ", py_dtype(t.scalar_type()));
}

// Validates `offsets` as the row pointer of `like` and returns it as a contiguous host tensor,
// the only copy a kernel may read its layout from. `num_rows < 0` skips the last-entry check
// (segment_broadcast derives its row count from the offsets). Device offsets are copied to
// the host once, here.
inline at::Tensor check_offsets(const at::Tensor& offsets, int64_t num_rows, const at::Tensor& like,
                                const char* name) {
  TORCH_CHECK_VALUE(offsets.dim() == 1, "offsets must be 1-D, got shape ", py_shape(offsets.sizes()));
  TORCH_CHECK_VALUE(offsets.scalar_type() == at::kLong, "offsets must be int64, got ",
                    py_dtype(offsets.scalar_type()));
  TORCH_CHECK_VALUE(offsets.device() == like.device(), "offsets is on ", offsets.device().str(), " but ",
                    name, " is on ", like.device().str());
  TORCH_CHECK_VALUE(offsets.numel() > 0, "offsets must hold at least one entry (offsets[0] == 0)");
  const at::Tensor host = offsets.device().is_cpu() ? offsets.contiguous() : offsets.cpu();
  const int64_t* off = host.const_data_ptr<int64_t>();
  const int64_t n = host.numel() - 1;
  TORCH_CHECK_VALUE(off[0] == 0, "offsets[0] must be 0, got ", off[0]);
  TORCH_CHECK_VALUE(num_rows < 0 || off[n] == num_rows, "offsets[-1] must equal the number of rows of ",
                    name, " (", num_rows, "), got ", off[n]);
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK_VALUE(off[i + 1] >= off[i], "offsets must be non-decreasing, but offsets[", i + 1,
                      "] = ", off[i + 1], " < offsets[", i, "] = ", off[i]);
  }
  return host;
}

}  // namespace gvae_fast
