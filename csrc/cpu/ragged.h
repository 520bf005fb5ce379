// Work partition shared by the CPU kernels: chunks balanced by rows, not by groups.
//
// The work of a ragged operator is the sequence "rows of group 0, end of group 0, rows of
// group 1, end of group 1, ...": one item per row read or written and one per group (whose
// result is written once). Cutting that sequence into equal spans (merge-path partitioning,
// as in merge-based CSR SpMV) gives every thread the same number of rows plus groups, even
// when one group holds most of the rows; such a group is split over several chunks, and
// reductions combine its per-chunk partials afterwards, serially and in chunk order.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace gvae_fast::cpu {

// A point on the work sequence: `group` groups have ended and `row` rows have been passed.
struct Cut {
  int64_t group;
  int64_t row;
};

// The rows [begin, end) of one group that one chunk owns. `first`: the chunk holds the group's
// first row (or the group is empty); `last`: the chunk holds the group's end.
struct Piece {
  int64_t group;
  int64_t begin;
  int64_t end;
  bool first;
  bool last;
};

// The cut after `d` items: group i starts at item off[i] + i, strictly increasing in i, so the
// cut lies in the last group that starts at or before d.
inline Cut cut_at(const int64_t* off, int64_t n, int64_t d) {
  int64_t lo = 0;
  int64_t hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (off[mid] + mid <= d) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return {lo, d - lo};
}

// The fewest elements (rows plus groups, times the width) worth a chunk of their own: below
// that, waking a thread costs more than the work. Tests lower it (gvae_fast._C.
// _set_min_chunk_work) so that small inputs get split at every kind of place.
inline std::atomic<int64_t>& min_chunk_work() {
  static std::atomic<int64_t> elements{int64_t{1} << 15};
  return elements;
}

// Enough chunks to use every thread, none smaller than min_chunk_work().
inline int64_t num_chunks(const int64_t* off, int64_t n, int64_t width) {
  const int64_t work = (off[n] + n) * std::max<int64_t>(width, 1);
  return std::clamp<int64_t>(work / std::max<int64_t>(min_chunk_work().load(), 1), 1, at::get_num_threads());
}

// Calls f(chunk, piece) for every piece of every chunk, chunks in parallel.
template <class F>
void for_each_piece(const int64_t* off, int64_t n, int64_t chunks, const F& f) {
  const int64_t items = off[n] + n;
  at::parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    for (int64_t c = chunk_begin; c < chunk_end; ++c) {
      const Cut a = cut_at(off, n, items * c / chunks);
      const Cut b = cut_at(off, n, items * (c + 1) / chunks);
      for (int64_t i = a.group; i <= b.group && i < n; ++i) {
        const int64_t begin = std::max(off[i], a.row);
        const int64_t end = std::min(off[i + 1], b.row);
        const bool last = i < b.group;
        if (!last && end <= begin) {
          break;  // the chunk ends exactly where group b.group starts
        }
        f(c, Piece{i, begin, end, begin == off[i], last});
      }
    }
  });
}

// Per-chunk partial results of the groups that chunk boundaries split, `width` values each:
// `tail` for a piece that leaves its group open, `head` for the piece that closes one.
template <typename T>
class SplitPartials {
 public:
  SplitPartials(int64_t chunks, int64_t width, T identity)
      : width_(width),
        identity_(identity),
        head_(chunks * width, identity),
        tail_(chunks * width, identity),
        head_group_(chunks, -1),
        tail_group_(chunks, -1) {}

  // The slot a split piece of chunk c writes its partial to.
  T* slot(int64_t c, const Piece& p) {
    (p.last ? head_group_ : tail_group_)[c] = p.group;
    return (p.last ? head_ : tail_).data() + c * width_;
  }

  // Folds the partials of each split group (tails, then the head that closes it: always
  // consecutive chunks) with merge(total, partial) and calls done(group, total, c_first, c_last).
  template <class Merge, class Done>
  void fold(const Merge& merge, const Done& done) {
    std::vector<T> total(width_, identity_);
    int64_t open = -1;
    int64_t opened_at = 0;
    for (int64_t c = 0; c < static_cast<int64_t>(head_group_.size()); ++c) {
      if (head_group_[c] >= 0) {
        merge(total.data(), head(c));
        done(head_group_[c], total.data(), opened_at, c);
        open = -1;
      }
      if (tail_group_[c] >= 0) {
        if (tail_group_[c] != open) {
          open = tail_group_[c];
          opened_at = c;
          std::fill(total.begin(), total.end(), identity_);
        }
        merge(total.data(), tail(c));
      }
    }
  }

  T* head(int64_t c) { return head_.data() + c * width_; }
  T* tail(int64_t c) { return tail_.data() + c * width_; }
  int64_t tail_group(int64_t c) const { return tail_group_[c]; }

 private:
  int64_t width_;
  T identity_;
  std::vector<T> head_;
  std::vector<T> tail_;
  std::vector<int64_t> head_group_;
  std::vector<int64_t> tail_group_;
};

// A per-group reduction: reduce(piece, dst) writes the piece's `width` values (dst starts at
// `identity`), merge(total, partial) combines split pieces, finish(group, value) writes the
// group's result exactly once.
template <typename T, class Reduce, class Merge, class Finish>
void reduce_groups(const int64_t* off, int64_t n, int64_t width, T identity, const Reduce& reduce,
                   const Merge& merge, const Finish& finish) {
  const int64_t chunks = num_chunks(off, n, width);
  SplitPartials<T> split(chunks, width, identity);
  std::vector<std::vector<T>> scratch(chunks);
  for_each_piece(off, n, chunks, [&](int64_t c, const Piece& p) {
    if (p.first && p.last) {
      std::vector<T>& own = scratch[c];
      own.assign(width, identity);
      reduce(p, own.data());
      finish(p.group, own.data());
    } else {
      reduce(p, split.slot(c, p));
    }
  });
  split.fold(merge, [&](int64_t group, const T* total, int64_t, int64_t) { finish(group, total); });
}

}  // namespace gvae_fast::cpu
