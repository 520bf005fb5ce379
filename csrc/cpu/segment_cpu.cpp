// CPU kernels of segment_sum, segment_mean, segment_broadcast (their backward) and loo_mean.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../validate.h"
#include "ragged.h"

namespace gvae_fast::cpu {
namespace {

// Adds `rows` rows (leading dimension ld) of a W-column tile into acc[0, W). A compile-time
// width lets the compiler keep the accumulators in vector registers across the rows.
template <int W, typename scalar_t, typename acc_t>
inline void accumulate_tile(const scalar_t* x, int64_t rows, int64_t ld, acc_t* acc) {
  acc_t a[W];
  for (int j = 0; j < W; ++j) {
    a[j] = acc[j];
  }
  for (int64_t r = 0; r < rows; ++r) {
    const scalar_t* xr = x + r * ld;
    for (int j = 0; j < W; ++j) {
      a[j] += static_cast<acc_t>(xr[j]);
    }
  }
  for (int j = 0; j < W; ++j) {
    acc[j] = a[j];
  }
}

// acc[0, H) += sum of `rows` contiguous rows of width H. Rows go in blocks small enough to stay
// in L1 while every column tile passes over them, so a long group is read from memory once.
template <typename scalar_t, typename acc_t>
void accumulate_rows(const scalar_t* x, int64_t rows, int64_t H, acc_t* acc) {
  constexpr int64_t kRowBlock = 16;
  constexpr int kWide = 128 / sizeof(acc_t);
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int64_t block = std::min(kRowBlock, rows - r0);
    const scalar_t* xb = x + r0 * H;
    int64_t h = 0;
    for (; h + kWide <= H; h += kWide) {
      accumulate_tile<kWide>(xb + h, block, H, acc + h);
    }
    for (; h + 8 <= H; h += 8) {
      accumulate_tile<8>(xb + h, block, H, acc + h);
    }
    for (; h < H; ++h) {
      accumulate_tile<1>(xb + h, block, H, acc + h);
    }
  }
}

template <typename scalar_t>
void segment_reduce_kernel(const scalar_t* x, const int64_t* off, int64_t n, int64_t H, bool mean,
                           scalar_t* out) {
  using acc_t = at::opmath_type<scalar_t>;
  reduce_groups<acc_t>(
      off, n, H, acc_t(0),
      [&](const Piece& p, acc_t* dst) { accumulate_rows(x + p.begin * H, p.end - p.begin, H, dst); },
      [&](acc_t* total, const acc_t* part) {
        for (int64_t h = 0; h < H; ++h) {
          total[h] += part[h];
        }
      },
      [&](int64_t i, const acc_t* sum) {
        const int64_t k = off[i + 1] - off[i];
        const acc_t scale = (mean && k > 0) ? acc_t(1) / static_cast<acc_t>(k) : acc_t(1);
        scalar_t* o = out + i * H;
        for (int64_t h = 0; h < H; ++h) {
          o[h] = static_cast<scalar_t>(sum[h] * scale);
        }
      });
}

template <typename scalar_t>
void segment_broadcast_kernel(const scalar_t* g, const int64_t* off, int64_t n, int64_t H, bool mean,
                              scalar_t* gx) {
  using acc_t = at::opmath_type<scalar_t>;
  for_each_piece(off, n, num_chunks(off, n, H), [&](int64_t, const Piece& p) {
    if (p.end == p.begin) {
      return;
    }
    const acc_t scale = mean ? acc_t(1) / static_cast<acc_t>(off[p.group + 1] - off[p.group]) : acc_t(1);
    const scalar_t* src = g + p.group * H;
    for (int64_t r = p.begin; r < p.end; ++r) {
      scalar_t* dst = gx + r * H;
      for (int64_t h = 0; h < H; ++h) {
        dst[h] = static_cast<scalar_t>(static_cast<acc_t>(src[h]) * scale);
      }
    }
  });
}

// y[r] = (S_i - x[r]) / (K_i - 1). A group inside one chunk is read twice in a row (its sum,
// then the write), the second time from cache; a split group has its sum assembled from the
// chunks' partials first, so every row is still read exactly twice.
template <typename scalar_t>
void loo_mean_kernel(const scalar_t* x, const int64_t* off, int64_t n, int64_t H, scalar_t* y) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t chunks = num_chunks(off, n, H);
  SplitPartials<acc_t> split(chunks, H, acc_t(0));
  if (chunks > 1) {  // a single chunk splits no group
    for_each_piece(off, n, chunks, [&](int64_t c, const Piece& p) {
      if (!(p.first && p.last)) {
        accumulate_rows(x + p.begin * H, p.end - p.begin, H, split.slot(c, p));
      }
    });
    // Every chunk holding a piece of a split group gets that group's full sum in its slot.
    split.fold(
        [&](acc_t* total, const acc_t* part) {
          for (int64_t h = 0; h < H; ++h) {
            total[h] += part[h];
          }
        },
        [&](int64_t group, const acc_t* total, int64_t c_first, int64_t c_last) {
          std::copy(total, total + H, split.head(c_last));
          for (int64_t c = c_first; c < c_last; ++c) {
            if (split.tail_group(c) == group) {
              std::copy(total, total + H, split.tail(c));
            }
          }
        });
  }
  std::vector<std::vector<acc_t>> scratch(chunks);
  for_each_piece(off, n, chunks, [&](int64_t c, const Piece& p) {
    const int64_t k = off[p.group + 1] - off[p.group];
    scalar_t* yp = y + p.begin * H;
    const scalar_t* xp = x + p.begin * H;
    const int64_t count = (p.end - p.begin) * H;
    if (k <= 1) {
      std::fill(yp, yp + count, scalar_t(0));
      return;
    }
    const acc_t* sum;
    if (p.first && p.last) {
      std::vector<acc_t>& own = scratch[c];
      own.assign(H, acc_t(0));
      accumulate_rows(xp, p.end - p.begin, H, own.data());
      sum = own.data();
    } else {
      sum = p.last ? split.head(c) : split.tail(c);
    }
    const acc_t inv = acc_t(1) / static_cast<acc_t>(k - 1);
    for (int64_t r = 0; r < p.end - p.begin; ++r) {
      for (int64_t h = 0; h < H; ++h) {
        yp[r * H + h] = static_cast<scalar_t>((sum[h] - static_cast<acc_t>(xp[r * H + h])) * inv);
      }
    }
  });
}

at::Tensor segment_reduce_cpu(const at::Tensor& x, const at::Tensor& offsets, bool mean) {
  check_values(x, "x", 2);
  const at::Tensor off = check_offsets(offsets, x.size(0), x, "x");
  const at::Tensor xc = x.contiguous();
  const int64_t n = off.numel() - 1;
  const int64_t H = xc.size(1);
  at::Tensor out = at::empty({n, H}, xc.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, xc.scalar_type(), "segment_reduce_cpu", [&] {
    segment_reduce_kernel<scalar_t>(xc.const_data_ptr<scalar_t>(), off.const_data_ptr<int64_t>(), n, H, mean,
                                    out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor segment_sum_cpu(const at::Tensor& x, const at::Tensor& offsets) {
  return segment_reduce_cpu(x, offsets, false);
}

at::Tensor segment_mean_cpu(const at::Tensor& x, const at::Tensor& offsets) {
  return segment_reduce_cpu(x, offsets, true);
}

at::Tensor segment_broadcast_cpu(const at::Tensor& g, const at::Tensor& offsets, bool mean) {
  check_values(g, "g", 2);
  const at::Tensor off = check_offsets(offsets, -1, g, "g");
  const int64_t n = off.numel() - 1;
  check_rows(g, n, "g", "one per group");
  const at::Tensor gc = g.contiguous();
  const int64_t* o = off.const_data_ptr<int64_t>();
  const int64_t H = gc.size(1);
  at::Tensor gx = at::empty({o[n], H}, gc.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, gc.scalar_type(), "segment_broadcast_cpu", [&] {
    segment_broadcast_kernel<scalar_t>(gc.const_data_ptr<scalar_t>(), o, n, H, mean,
                                       gx.mutable_data_ptr<scalar_t>());
  });
  return gx;
}

at::Tensor loo_mean_cpu(const at::Tensor& x, const at::Tensor& offsets) {
  check_values(x, "x", 2);
  const at::Tensor off = check_offsets(offsets, x.size(0), x, "x");
  const at::Tensor xc = x.contiguous();
  const int64_t H = xc.size(1);
  at::Tensor y = at::empty_like(xc);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, xc.scalar_type(), "loo_mean_cpu", [&] {
    loo_mean_kernel<scalar_t>(xc.const_data_ptr<scalar_t>(), off.const_data_ptr<int64_t>(), off.numel() - 1, H,
                              y.mutable_data_ptr<scalar_t>());
  });
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(gvae_fast, CPU, m) {
  m.impl("segment_sum", &segment_sum_cpu);
  m.impl("segment_mean", &segment_mean_cpu);
  m.impl("segment_broadcast", &segment_broadcast_cpu);
  m.impl("loo_mean", &loo_mean_cpu);
}

}  // namespace gvae_fast::cpu
