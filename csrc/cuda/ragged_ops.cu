// CUDA kernels of the gvae_fast ragged operators (DESIGN §3), registered under the CUDA key of
// the schemas in csrc/gvae_fast.cpp. Autograd and fake kernels are device-agnostic (Python).
//
// Work unit: one warp per *item*, an item being a group or, for a group longer than the item
// size, one of its equal row chunks. When no group is split (the common case: K_i of tens of
// rows), item k is group k and nothing else is launched. Otherwise the split groups' per-item
// partials go to a float workspace and a second pass folds them in item order, so results stay
// deterministic and no atomics are used; one long group is then spread over many warps instead
// of serialising a single one. The split decision and the item count come from the host copy
// of the offsets that validation makes anyway, so the operators never synchronise beyond it.
#include <ATen/Dispatch.h>
#include <ATen/NumericUtils.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/floor_divide.h>
#include <ATen/ops/repeat_interleave.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "../validate.h"

namespace gvae_fast::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;
constexpr int kThreads = kWarp * kWarpsPerBlock;
constexpr unsigned kFullMask = 0xffffffffu;
// Rows of [M, H] data one warp owns at most: about ten typical groups, so a split group costs
// no more than a few ordinary ones, and splitting stays rare.
constexpr int64_t kRowsPerItem = 256;
// Scores (one float each) one warp owns at most in the log-mean-exp kernels.
constexpr int64_t kScoresPerItem = 128 * kWarp;

// Where each warp's rows are. item_group / item_first are null when item k is simply group k.
struct Layout {
  const int64_t* off;         // [N + 1] row pointer, on the device
  const int64_t* item_group;  // [items] group of each item
  const int64_t* item_first;  // [N] first item of each group
  int64_t items;
  int64_t chunk;  // rows per item of a split group
};

struct Piece {
  int64_t group;
  int64_t begin;  // the item's rows
  int64_t end;
  int64_t size;        // K_i of the whole group
  int64_t first_item;  // where a split group's folded total is kept
  bool whole;          // the item is the entire group
};

__device__ __forceinline__ Piece piece_of(const Layout& layout, int64_t item) {
  if (layout.item_group == nullptr) {
    const int64_t b = layout.off[item];
    const int64_t e = layout.off[item + 1];
    return {item, b, e, e - b, item, true};
  }
  const int64_t g = layout.item_group[item];
  const int64_t first = layout.item_first[g];
  const int64_t b = layout.off[g];
  const int64_t e = layout.off[g + 1];
  const int64_t begin = b + (item - first) * layout.chunk;
  const int64_t end = begin + layout.chunk < e ? begin + layout.chunk : e;
  return {g, begin, end, e - b, first, e - b <= layout.chunk};
}

// The owning [N + 1] device tensors behind a Layout's pointers.
struct Plan {
  Layout layout;
  at::Tensor offsets;
  at::Tensor item_group;
  at::Tensor item_first;
  bool split() const { return layout.item_group != nullptr; }
};

// `host` is the validated host copy of `offsets`. The item map of a split layout is built on
// the device (repeat_interleave with a known output size does not synchronise).
Plan plan_items(const at::Tensor& offsets, const at::Tensor& host, int64_t chunk) {
  const int64_t* off = host.const_data_ptr<int64_t>();
  const int64_t n = host.numel() - 1;
  // This runs on the host between validation and the launch, with the GPU idle: the common
  // case is one branch-free (vectorisable) pass, the item count only where groups are split.
  int64_t max_k = 0;
  for (int64_t i = 0; i < n; ++i) {
    max_k = std::max(max_k, off[i + 1] - off[i]);
  }
  const bool split = max_k > chunk;
  int64_t items = n;
  if (split) {
    for (int64_t i = 0; i < n; ++i) {
      items += std::max<int64_t>((off[i + 1] - off[i] + chunk - 1) / chunk - 1, 0);
    }
  }
  Plan plan;
  plan.offsets = offsets.contiguous();
  plan.layout = {plan.offsets.const_data_ptr<int64_t>(), nullptr, nullptr, items, chunk};
  if (split) {
    const at::Tensor sizes = plan.offsets.slice(0, 1).sub(plan.offsets.slice(0, 0, n));
    const at::Tensor counts = at::clamp_min(at::floor_divide(sizes.add(chunk - 1), chunk), 1);
    plan.item_first = at::cumsum(counts, 0).sub_(counts);
    plan.item_group = at::repeat_interleave(counts, items);
    plan.layout.item_group = plan.item_group.const_data_ptr<int64_t>();
    plan.layout.item_first = plan.item_first.const_data_ptr<int64_t>();
  }
  return plan;
}

int blocks_for(int64_t warps) {
  return static_cast<int>((warps + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

__device__ __forceinline__ int64_t warp_id() {
  return static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
}

// ---------------------------------------------------------------------------------------------
// [M, H] operators. A warp covers a row with `cl` lanes of V features each (16-byte accesses
// when H and the pointers allow) and 32 / cl rows at a time, so rows are read in full coalesced
// lines and a narrow H still keeps every lane busy.

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

enum class Reduce : int { Sum, Mean, Loo };
enum class Spread : int { Copy, Mean, LooSplit };

// Sums the rows [row, end), stepping `step`, of column pack `col` into acc. Four independent
// loads per iteration keep enough bytes in flight to cover DRAM latency.
template <typename scalar_t, int V, typename acc_t>
__device__ __forceinline__ void sum_rows(const scalar_t* __restrict__ x, int64_t h, int64_t col,
                                         int64_t row, int64_t end, int step, acc_t* acc) {
  using P = Pack<scalar_t, V>;
  const P* base = reinterpret_cast<const P*>(x) + col;
  const int64_t stride = h / V;
  for (; row + 3 * step < end; row += 4 * step) {
    P p[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) p[u] = base[(row + u * step) * stride];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e] += static_cast<acc_t>(p[u].v[e]);
    }
  }
  for (; row < end; row += step) {
    const P p = base[row * stride];
#pragma unroll
    for (int e = 0; e < V; ++e) acc[e] += static_cast<acc_t>(p.v[e]);
  }
}

// segment_sum / segment_mean ([N, H] out) and loo_mean ([M, H] out). Whole groups are finished
// here; loo_mean re-reads the group's rows right after summing them, while they are still in L2,
// so it moves one read and one write of x. Split groups leave their partial in `partial`.
template <typename scalar_t, int V>
__global__ void __launch_bounds__(kThreads)
    reduce_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out,
                  at::opmath_type<scalar_t>* __restrict__ partial, Layout layout, int64_t h, int cl,
                  Reduce mode) {
  using acc_t = at::opmath_type<scalar_t>;
  using P = Pack<scalar_t, V>;
  const int64_t item = warp_id();
  if (item >= layout.items) {
    return;
  }
  const Piece p = piece_of(layout, item);
  const int lane = threadIdx.x % kWarp;
  const int col_lane = lane % cl;
  const int row_lane = lane / cl;
  const int rows_per_step = kWarp / cl;
  const int64_t packs = h / V;
  for (int64_t tile = 0; tile < packs; tile += cl) {
    const int64_t col = tile + col_lane;
    const bool active = col < packs;
    acc_t acc[V];
#pragma unroll
    for (int e = 0; e < V; ++e) acc[e] = acc_t(0);
    if (active) {
      sum_rows<scalar_t, V>(x, h, col, p.begin + row_lane, p.end, rows_per_step, acc);
    }
    // Every lane, active or not, takes part: the shuffles need the whole warp.
    for (int o = cl; o < kWarp; o <<= 1) {
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e] += __shfl_xor_sync(kFullMask, acc[e], o);
    }
    if (!active) {
      continue;
    }
    if (!p.whole) {
      if (row_lane == 0) {
#pragma unroll
        for (int e = 0; e < V; ++e) partial[item * h + col * V + e] = acc[e];
      }
    } else if (mode == Reduce::Loo) {
      const acc_t others = static_cast<acc_t>(p.size - 1);
      const P* src = reinterpret_cast<const P*>(x) + col;
      P* dst = reinterpret_cast<P*>(out) + col;
      for (int64_t r = p.begin + row_lane; r < p.end; r += rows_per_step) {
        const P in = src[r * packs];
        P o;
#pragma unroll
        for (int e = 0; e < V; ++e) {
          o.v[e] = p.size > 1 ? static_cast<scalar_t>((acc[e] - static_cast<acc_t>(in.v[e])) / others)
                              : scalar_t(0);
        }
        dst[r * packs] = o;
      }
    } else if (row_lane == 0) {
      const acc_t k = static_cast<acc_t>(p.size > 0 ? p.size : 1);
      P o;
#pragma unroll
      for (int e = 0; e < V; ++e) o.v[e] = static_cast<scalar_t>(mode == Reduce::Mean ? acc[e] / k : acc[e]);
      reinterpret_cast<P*>(out)[p.group * packs + col] = o;
    }
  }
}

// Folds the partials of each split group in item order (one warp per group; whole groups are
// done). Sum / mean write the result; loo_mean keeps the total in the group's first partial.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    fold_split_kernel(at::opmath_type<scalar_t>* __restrict__ partial, scalar_t* __restrict__ out,
                      Layout layout, int64_t n, int64_t h, Reduce mode) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t g = warp_id();
  if (g >= n) {
    return;
  }
  const int64_t k = layout.off[g + 1] - layout.off[g];
  if (k <= layout.chunk) {
    return;
  }
  const int64_t first = layout.item_first[g];
  const int64_t count = (k + layout.chunk - 1) / layout.chunk;
  for (int64_t c = threadIdx.x % kWarp; c < h; c += kWarp) {
    acc_t total = acc_t(0);
    for (int64_t j = 0; j < count; ++j) total += partial[(first + j) * h + c];
    if (mode == Reduce::Loo) {
      partial[first * h + c] = total;
    } else {
      out[g * h + c] = static_cast<scalar_t>(mode == Reduce::Mean ? total / static_cast<acc_t>(k) : total);
    }
  }
}

// Writes every row of an item from its group's row of `src`: segment_broadcast (src = g, [N, H])
// and the split groups of loo_mean (src = folded totals, out = (S - x) / (K - 1)). A gather per
// output row: no atomics, each output element written once.
template <typename scalar_t, typename src_t, int V>
__global__ void __launch_bounds__(kThreads)
    spread_kernel(const src_t* __restrict__ src, const scalar_t* __restrict__ x, scalar_t* __restrict__ out,
                  Layout layout, int64_t h, int cl, Spread mode) {
  using acc_t = at::opmath_type<scalar_t>;
  using P = Pack<scalar_t, V>;
  const int64_t item = warp_id();
  if (item >= layout.items) {
    return;
  }
  const Piece p = piece_of(layout, item);
  if (p.begin == p.end || (mode == Spread::LooSplit && p.whole)) {
    return;
  }
  const int lane = threadIdx.x % kWarp;
  const int rows_per_step = kWarp / cl;
  const int64_t packs = h / V;
  const int64_t src_row = mode == Spread::LooSplit ? p.first_item : p.group;
  const acc_t k = static_cast<acc_t>(p.size);
  for (int64_t col = lane % cl; col < packs; col += cl) {
    acc_t v[V];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      v[e] = static_cast<acc_t>(src[src_row * h + col * V + e]);
      if (mode == Spread::Mean) {
        v[e] /= k;
      }
    }
    P* dst = reinterpret_cast<P*>(out) + col;
    if (mode == Spread::LooSplit) {
      const P* xs = reinterpret_cast<const P*>(x) + col;
      for (int64_t r = p.begin + lane / cl; r < p.end; r += rows_per_step) {
        const P in = xs[r * packs];
        P o;
#pragma unroll
        for (int e = 0; e < V; ++e) o.v[e] = static_cast<scalar_t>((v[e] - static_cast<acc_t>(in.v[e])) / (k - 1));
        dst[r * packs] = o;
      }
    } else {
      P o;
#pragma unroll
      for (int e = 0; e < V; ++e) o.v[e] = static_cast<scalar_t>(v[e]);
      for (int64_t r = p.begin + lane / cl; r < p.end; r += rows_per_step) dst[r * packs] = o;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// segment_logmeanexp: one pass, online max-shifted sum. A state (m, s) stands for s * exp(m);
// s == 0 means no finite or +inf score yet, so an empty or all -inf group gives -inf and a
// -inf score is never read as exp(0). NaN is a separate flag so that it stays in its group.

template <typename acc_t>
struct LmeState {
  acc_t m;
  acc_t s;
  bool nan;
};

template <typename acc_t>
__device__ __forceinline__ acc_t ratio_exp(acc_t x, acc_t top) {
  // exp(x - top) for x <= top, exact 1 when equal so that +inf against +inf does not give NaN.
  return x == top ? acc_t(1) : std::exp(x - top);
}

template <typename acc_t>
__device__ __forceinline__ void merge(LmeState<acc_t>& a, const LmeState<acc_t>& b) {
  a.nan = a.nan || b.nan;
  if (b.s == acc_t(0)) {
    return;
  }
  if (a.s == acc_t(0)) {
    a.m = b.m;
    a.s = b.s;
  } else if (b.m > a.m) {
    a.s = a.s * ratio_exp(a.m, b.m) + b.s;
    a.m = b.m;
  } else {
    a.s += b.s * ratio_exp(b.m, a.m);
  }
}

template <typename acc_t>
__device__ __forceinline__ void push(LmeState<acc_t>& st, acc_t v) {
  if (at::_isnan(v)) {
    st.nan = true;
  } else if (v != -std::numeric_limits<acc_t>::infinity()) {
    merge(st, LmeState<acc_t>{v, acc_t(1), false});
  }
}

template <typename acc_t>
__device__ __forceinline__ LmeState<acc_t> warp_merge(LmeState<acc_t> st) {
  for (int o = kWarp / 2; o > 0; o >>= 1) {
    const LmeState<acc_t> other{__shfl_xor_sync(kFullMask, st.m, o), __shfl_xor_sync(kFullMask, st.s, o),
                                __shfl_xor_sync(kFullMask, static_cast<int>(st.nan), o) != 0};
    merge(st, other);
  }
  return st;
}

template <typename acc_t>
__device__ __forceinline__ acc_t lme_result(const LmeState<acc_t>& st, int64_t k) {
  if (st.nan) {
    return std::numeric_limits<acc_t>::quiet_NaN();
  }
  if (st.s == acc_t(0)) {
    return -std::numeric_limits<acc_t>::infinity();
  }
  return st.m + std::log(st.s) - std::log(static_cast<acc_t>(k));
}

// Split groups store their state as (m, s), NaN folded into m.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    logmeanexp_kernel(const scalar_t* __restrict__ s, scalar_t* __restrict__ out,
                      at::opmath_type<scalar_t>* __restrict__ partial, Layout layout) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t item = warp_id();
  if (item >= layout.items) {
    return;
  }
  const Piece p = piece_of(layout, item);
  LmeState<acc_t> st{-std::numeric_limits<acc_t>::infinity(), acc_t(0), false};
  int64_t r = p.begin + threadIdx.x % kWarp;
  for (; r + 3 * kWarp < p.end; r += 4 * kWarp) {
    acc_t v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) v[u] = static_cast<acc_t>(s[r + u * kWarp]);
#pragma unroll
    for (int u = 0; u < 4; ++u) push(st, v[u]);
  }
  for (; r < p.end; r += kWarp) {
    push(st, static_cast<acc_t>(s[r]));
  }
  st = warp_merge(st);
  if (threadIdx.x % kWarp != 0) {
    return;
  }
  if (p.whole) {
    out[p.group] = static_cast<scalar_t>(lme_result(st, p.size));
  } else {
    partial[2 * item] = st.nan ? std::numeric_limits<acc_t>::quiet_NaN() : st.m;
    partial[2 * item + 1] = st.s;
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    logmeanexp_fold_kernel(const at::opmath_type<scalar_t>* __restrict__ partial, scalar_t* __restrict__ out,
                           Layout layout, int64_t n) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t g = warp_id();
  if (g >= n) {
    return;
  }
  const int64_t k = layout.off[g + 1] - layout.off[g];
  if (k <= layout.chunk) {
    return;
  }
  const int64_t first = layout.item_first[g];
  const int64_t count = (k + layout.chunk - 1) / layout.chunk;
  LmeState<acc_t> st{-std::numeric_limits<acc_t>::infinity(), acc_t(0), false};
  for (int64_t j = threadIdx.x % kWarp; j < count; j += kWarp) {
    const acc_t m = partial[2 * (first + j)];
    merge(st, LmeState<acc_t>{m, partial[2 * (first + j) + 1], static_cast<bool>(at::_isnan(m))});
  }
  st = warp_merge(st);
  if (threadIdx.x % kWarp == 0) {
    out[g] = static_cast<scalar_t>(lme_result(st, k));
  }
}

// gs[r] = grad[i] * exp(s[r] - (out[i] + log K_i)): the softmax weight of row r in its group.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    logmeanexp_backward_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ s,
                               const scalar_t* __restrict__ out, scalar_t* __restrict__ gs, Layout layout) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t item = warp_id();
  if (item >= layout.items) {
    return;
  }
  const Piece p = piece_of(layout, item);
  if (p.begin == p.end) {
    return;
  }
  const acc_t o = static_cast<acc_t>(out[p.group]);
  const acc_t gr = static_cast<acc_t>(grad[p.group]);
  const bool none = o == -std::numeric_limits<acc_t>::infinity();
  const acc_t lse = o + std::log(static_cast<acc_t>(p.size));
  for (int64_t r = p.begin + threadIdx.x % kWarp; r < p.end; r += kWarp) {
    gs[r] = none ? scalar_t(0) : static_cast<scalar_t>(gr * std::exp(static_cast<acc_t>(s[r]) - lse));
  }
}

// ---------------------------------------------------------------------------------------------
// Host side.

void check_device(const at::Tensor& t, const at::Tensor& like, const char* name, const char* like_name) {
  TORCH_CHECK_VALUE(t.device() == like.device(), name, " is on ", t.device().str(), " but ", like_name,
                    " is on ", like.device().str());
}

// Packs of 16 bytes when H and every pointer allow them, else one element per lane.
template <typename scalar_t>
constexpr int kWide = 16 / static_cast<int>(sizeof(scalar_t));

template <typename scalar_t>
bool wide_packs_fit(int64_t h, std::initializer_list<const void*> ptrs) {
  if (h % kWide<scalar_t> != 0) {
    return false;
  }
  for (const void* ptr : ptrs) {
    if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0) {
      return false;
    }
  }
  return true;
}

// Lanes along a row: enough for its packs, at most a warp, a power of two.
int lanes_per_row(int64_t packs) {
  int cl = 1;
  while (cl < kWarp && cl < packs) {
    cl <<= 1;
  }
  return cl;
}

at::Tensor reduce(const at::Tensor& x_in, const at::Tensor& offsets, Reduce mode) {
  check_values(x_in, "x", 2);
  const at::Tensor host = check_offsets(offsets, x_in.size(0), x_in, "x");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const int64_t n = host.numel() - 1;
  const int64_t h = x.size(1);
  at::Tensor out = at::empty({mode == Reduce::Loo ? x.size(0) : n, h}, x.options());
  if (out.numel() == 0) {
    return out;
  }
  const Plan plan = plan_items(offsets, host, kRowsPerItem);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gvae_fast_reduce_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor partial =
        plan.split() ? at::empty({plan.layout.items, h}, x.options().dtype(c10::CppTypeToScalarType<acc_t>::value))
                     : at::Tensor();
    acc_t* part = plan.split() ? partial.mutable_data_ptr<acc_t>() : nullptr;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const int blocks = blocks_for(plan.layout.items);
    if (wide_packs_fit<scalar_t>(h, {xp, op})) {
      reduce_kernel<scalar_t, kWide<scalar_t>><<<blocks, kThreads, 0, stream>>>(
          xp, op, part, plan.layout, h, lanes_per_row(h / kWide<scalar_t>), mode);
    } else {
      reduce_kernel<scalar_t, 1><<<blocks, kThreads, 0, stream>>>(xp, op, part, plan.layout, h,
                                                                  lanes_per_row(h), mode);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (!plan.split()) {
      return;
    }
    fold_split_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(part, op, plan.layout, n, h, mode);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (mode != Reduce::Loo) {
      return;
    }
    if (wide_packs_fit<scalar_t>(h, {xp, op})) {
      spread_kernel<scalar_t, acc_t, kWide<scalar_t>><<<blocks, kThreads, 0, stream>>>(
          part, xp, op, plan.layout, h, lanes_per_row(h / kWide<scalar_t>), Spread::LooSplit);
    } else {
      spread_kernel<scalar_t, acc_t, 1>
          <<<blocks, kThreads, 0, stream>>>(part, xp, op, plan.layout, h, lanes_per_row(h), Spread::LooSplit);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor segment_sum(const at::Tensor& x, const at::Tensor& offsets) {
  return reduce(x, offsets, Reduce::Sum);
}

at::Tensor segment_mean(const at::Tensor& x, const at::Tensor& offsets) {
  return reduce(x, offsets, Reduce::Mean);
}

at::Tensor loo_mean(const at::Tensor& x, const at::Tensor& offsets) {
  return reduce(x, offsets, Reduce::Loo);
}

at::Tensor segment_broadcast(const at::Tensor& g_in, const at::Tensor& offsets, bool mean) {
  check_values(g_in, "g", 2);
  const at::Tensor host = check_offsets(offsets, -1, g_in, "g");
  const int64_t n = host.numel() - 1;
  check_rows(g_in, n, "g", "one per group");
  const c10::cuda::CUDAGuard guard(g_in.device());
  const at::Tensor g = g_in.contiguous();
  const int64_t h = g.size(1);
  at::Tensor out = at::empty({host.const_data_ptr<int64_t>()[n], h}, g.options());
  if (out.numel() == 0) {
    return out;
  }
  const Plan plan = plan_items(offsets, host, kRowsPerItem);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const Spread mode = mean ? Spread::Mean : Spread::Copy;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "gvae_fast_broadcast_cuda", [&] {
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const int blocks = blocks_for(plan.layout.items);
    if (wide_packs_fit<scalar_t>(h, {op})) {
      spread_kernel<scalar_t, scalar_t, kWide<scalar_t>><<<blocks, kThreads, 0, stream>>>(
          gp, nullptr, op, plan.layout, h, lanes_per_row(h / kWide<scalar_t>), mode);
    } else {
      spread_kernel<scalar_t, scalar_t, 1>
          <<<blocks, kThreads, 0, stream>>>(gp, nullptr, op, plan.layout, h, lanes_per_row(h), mode);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor segment_logmeanexp(const at::Tensor& s_in, const at::Tensor& offsets) {
  check_values(s_in, "s", 1);
  const at::Tensor host = check_offsets(offsets, s_in.size(0), s_in, "s");
  const c10::cuda::CUDAGuard guard(s_in.device());
  const at::Tensor s = s_in.contiguous();
  const int64_t n = host.numel() - 1;
  at::Tensor out = at::empty({n}, s.options());
  if (n == 0) {
    return out;
  }
  const Plan plan = plan_items(offsets, host, kScoresPerItem);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, s.scalar_type(), "gvae_fast_logmeanexp_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor partial =
        plan.split()
            ? at::empty({plan.layout.items, 2}, s.options().dtype(c10::CppTypeToScalarType<acc_t>::value))
            : at::Tensor();
    acc_t* part = plan.split() ? partial.mutable_data_ptr<acc_t>() : nullptr;
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    logmeanexp_kernel<scalar_t>
        <<<blocks_for(plan.layout.items), kThreads, 0, stream>>>(s.const_data_ptr<scalar_t>(), op, part, plan.layout);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (plan.split()) {
      logmeanexp_fold_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(part, op, plan.layout, n);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return out;
}

at::Tensor segment_logmeanexp_backward(const at::Tensor& grad_in, const at::Tensor& s_in,
                                       const at::Tensor& out_in, const at::Tensor& offsets) {
  // The order of the CPU kernel's checks, so both raise the same message for the same call.
  check_values(s_in, "s", 1);
  check_values(grad_in, "grad", 1);
  check_values(out_in, "out", 1);
  check_same_dtype(grad_in, s_in, "grad", "s");
  check_same_dtype(out_in, s_in, "out", "s");
  check_device(grad_in, s_in, "grad", "s");
  check_device(out_in, s_in, "out", "s");
  const at::Tensor host = check_offsets(offsets, s_in.size(0), s_in, "s");
  const int64_t n = host.numel() - 1;
  check_rows(grad_in, n, "grad", "one per group");
  check_rows(out_in, n, "out", "one per group");
  const c10::cuda::CUDAGuard guard(s_in.device());
  const at::Tensor grad = grad_in.contiguous();
  const at::Tensor s = s_in.contiguous();
  const at::Tensor out = out_in.contiguous();
  at::Tensor gs = at::empty_like(s);
  if (gs.numel() == 0) {
    return gs;
  }
  const Plan plan = plan_items(offsets, host, kScoresPerItem);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, s.scalar_type(), "gvae_fast_logmeanexp_bwd_cuda", [&] {
    logmeanexp_backward_kernel<scalar_t><<<blocks_for(plan.layout.items), kThreads, 0, stream>>>(
        grad.const_data_ptr<scalar_t>(), s.const_data_ptr<scalar_t>(), out.const_data_ptr<scalar_t>(),
        gs.mutable_data_ptr<scalar_t>(), plan.layout);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return gs;
}

}  // namespace
}  // namespace gvae_fast::cuda

TORCH_LIBRARY_IMPL(gvae_fast, CUDA, m) {
  m.impl("segment_sum", &gvae_fast::cuda::segment_sum);
  m.impl("segment_mean", &gvae_fast::cuda::segment_mean);
  m.impl("segment_broadcast", &gvae_fast::cuda::segment_broadcast);
  m.impl("loo_mean", &gvae_fast::cuda::loo_mean);
  m.impl("segment_logmeanexp", &gvae_fast::cuda::segment_logmeanexp);
  m.impl("segment_logmeanexp_backward", &gvae_fast::cuda::segment_logmeanexp_backward);
}
