// CPU kernels of segment_logmeanexp and its backward.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "../validate.h"
#include "ragged.h"

namespace gvae_fast::cpu {
namespace {

// log(sum exp s) of a set of rows as max + log(a) with a = sum exp(s - max), exact for the
// non-finite cases torch.logsumexp defines: NaN anywhere -> NaN; a +inf -> {+inf, 1} (+inf);
// no rows or all -inf -> {-inf, 0} (-inf). No absent row is ever counted as exp(0).
template <typename acc_t>
struct LogSumExp {
  acc_t max;
  acc_t scaled_sum;

  static LogSumExp nonfinite(acc_t m) {
    if (std::isnan(m)) {
      return {m, m};
    }
    return {m, m > 0 ? acc_t(1) : acc_t(0)};
  }

  template <typename scalar_t>
  static LogSumExp of(const scalar_t* s, int64_t rows) {
    acc_t m = -std::numeric_limits<acc_t>::infinity();
    bool nan = false;
    for (int64_t r = 0; r < rows; ++r) {
      const acc_t v = static_cast<acc_t>(s[r]);
      nan |= std::isnan(v);
      m = v > m ? v : m;
    }
    if (nan) {
      return nonfinite(std::numeric_limits<acc_t>::quiet_NaN());
    }
    if (!std::isfinite(m)) {
      return nonfinite(m);
    }
    acc_t a = 0;
    for (int64_t r = 0; r < rows; ++r) {
      a += std::exp(static_cast<acc_t>(s[r]) - m);
    }
    return {m, a};
  }

  LogSumExp merge(const LogSumExp& o) const {
    if (std::isnan(max) || std::isnan(o.max)) {
      return nonfinite(std::numeric_limits<acc_t>::quiet_NaN());
    }
    const acc_t m = std::max(max, o.max);
    if (!std::isfinite(m)) {
      return nonfinite(m);
    }
    return {m, scaled_sum * std::exp(max - m) + o.scaled_sum * std::exp(o.max - m)};
  }

  // log((1/k) sum exp s); the non-finite states carry their answer in `max`.
  acc_t log_mean(int64_t k) const {
    if (k == 0) {
      return -std::numeric_limits<acc_t>::infinity();
    }
    if (!std::isfinite(max)) {
      return max;
    }
    return max + std::log(scaled_sum) - std::log(static_cast<acc_t>(k));
  }
};

template <typename scalar_t>
void logmeanexp_kernel(const scalar_t* s, const int64_t* off, int64_t n, scalar_t* out) {
  using acc_t = at::opmath_type<scalar_t>;
  using State = LogSumExp<acc_t>;
  reduce_groups<State>(
      off, n, 1, State::nonfinite(-std::numeric_limits<acc_t>::infinity()),
      [&](const Piece& p, State* dst) { *dst = State::template of<scalar_t>(s + p.begin, p.end - p.begin); },
      [&](State* total, const State* part) { *total = total->merge(*part); },
      [&](int64_t i, const State* st) { out[i] = static_cast<scalar_t>(st->log_mean(off[i + 1] - off[i])); });
}

template <typename scalar_t>
void logmeanexp_backward_kernel(const scalar_t* grad, const scalar_t* s, const scalar_t* out,
                                const int64_t* off, int64_t n, scalar_t* gs) {
  using acc_t = at::opmath_type<scalar_t>;
  for_each_piece(off, n, num_chunks(off, n, 1), [&](int64_t, const Piece& p) {
    const acc_t o = static_cast<acc_t>(out[p.group]);
    // An all -inf group has no mass to move: its gradient is 0, not exp(-inf + inf) = NaN.
    if (o == -std::numeric_limits<acc_t>::infinity()) {
      std::fill(gs + p.begin, gs + p.end, scalar_t(0));
      return;
    }
    const acc_t g = static_cast<acc_t>(grad[p.group]);
    const acc_t shift = o + std::log(static_cast<acc_t>(off[p.group + 1] - off[p.group]));
    for (int64_t r = p.begin; r < p.end; ++r) {
      gs[r] = static_cast<scalar_t>(g * std::exp(static_cast<acc_t>(s[r]) - shift));
    }
  });
}

at::Tensor segment_logmeanexp_cpu(const at::Tensor& s, const at::Tensor& offsets) {
  check_values(s, "s", 1);
  const at::Tensor off = check_offsets(offsets, s.size(0), s, "s");
  const at::Tensor sc = s.contiguous();
  const int64_t n = off.numel() - 1;
  at::Tensor out = at::empty({n}, sc.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, sc.scalar_type(), "segment_logmeanexp_cpu", [&] {
    logmeanexp_kernel<scalar_t>(sc.const_data_ptr<scalar_t>(), off.const_data_ptr<int64_t>(), n,
                                out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor segment_logmeanexp_backward_cpu(const at::Tensor& grad, const at::Tensor& s, const at::Tensor& out,
                                           const at::Tensor& offsets) {
  check_values(s, "s", 1);
  check_values(grad, "grad", 1);
  check_values(out, "out", 1);
  check_same_dtype(grad, s, "grad", "s");
  check_same_dtype(out, s, "out", "s");
  const at::Tensor off = check_offsets(offsets, s.size(0), s, "s");
  const int64_t n = off.numel() - 1;
  check_rows(grad, n, "grad", "one per group");
  check_rows(out, n, "out", "one per group");
  const at::Tensor gc = grad.contiguous();
  const at::Tensor sc = s.contiguous();
  const at::Tensor oc = out.contiguous();
  at::Tensor gs = at::empty_like(sc);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kBFloat16, at::kHalf, sc.scalar_type(), "segment_logmeanexp_backward_cpu", [&] {
        logmeanexp_backward_kernel<scalar_t>(gc.const_data_ptr<scalar_t>(), sc.const_data_ptr<scalar_t>(),
                                             oc.const_data_ptr<scalar_t>(), off.const_data_ptr<int64_t>(), n,
                                             gs.mutable_data_ptr<scalar_t>());
      });
  return gs;
}

}  // namespace

TORCH_LIBRARY_IMPL(gvae_fast, CPU, m) {
  m.impl("segment_logmeanexp", &segment_logmeanexp_cpu);
  m.impl("segment_logmeanexp_backward", &segment_logmeanexp_backward_cpu);
}

}  // namespace gvae_fast::cpu
