//===- Mask.h - The mask algebra of attnc, free of MLIR ---------*- C++ -*-===//
//
// A mask says which (query, key) pairs of an attention may interact. This
// header is the one definition of the mask semantics (ARCHITECTURE.md,
// "Semantics") shared by the spec loader, the dialect attributes, the
// canonicalizer, the block classifier and the float64 reference. It depends
// on nothing but the C++ standard library, so the runtime side and the GPU
// tests (built without MLIR) can use it too.
//
// Positions: with Nq query rows and Nk keys, query row i sits at the absolute
// position p = i + Nk - Nq (bottom-right alignment, as FlashAttention). Every
// predicate reads the query as p; rows with p < 0 may be fully masked.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_MASK_MASK_H
#define ATTNC_MASK_MASK_H

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace attnc::mask {

/// A window side of this length is unbounded (causal is window{kUnbounded, 0}).
inline constexpr int64_t kUnbounded = std::numeric_limits<int64_t>::max();

enum class Kind {
  Empty,         ///< no pair is allowed
  Full,          ///< every pair is allowed
  Causal,        ///< k <= p
  Window,        ///< -right*d <= p-k <= left*d and (p-k) % d == 0
  GlobalTokens,  ///< p in tokens or k in tokens (sorted, unique after canonicalize)
  GlobalRanges,  ///< p or k inside one of [begin, end)
  GlobalStride,  ///< p or k congruent to offset modulo stride (and >= offset)
  GlobalRuntime, ///< like GlobalTokens, the list (at most `runtimeMax`) given at launch
  BlockSparse,   ///< layout[p / block] holds k / block
  BigBird,       ///< a block layout generated from band/random/global/seed
  Union,         ///< any child allows
  Intersect,     ///< every child allows
};

/// Parameters of a BigBird-style block layout (see expandBigBird).
struct BigBirdParams {
  int64_t block = 0;  ///< block size in tokens
  int64_t band = 0;   ///< blocks in the sliding band, centred on the diagonal
  int64_t random = 0; ///< random key blocks per query block row
  int64_t global = 0; ///< leading blocks that attend to and are attended by all
  uint64_t seed = 0;  ///< seed of the deterministic generator
};

/// One node of a mask expression. Only the fields of `kind` are meaningful.
struct Mask {
  Kind kind = Kind::Full;

  // Window.
  int64_t left = 0, right = 0, dilation = 1;
  // GlobalTokens.
  std::vector<int64_t> tokens;
  // GlobalRanges: half-open [first, second).
  std::vector<std::pair<int64_t, int64_t>> ranges;
  // GlobalStride.
  int64_t stride = 1, offset = 0;
  // GlobalRuntime.
  int64_t runtimeMax = 0;
  // BlockSparse: layout[row] lists the key block columns of query block row.
  int64_t block = 0;
  std::vector<std::vector<int64_t>> layout;
  // BigBird.
  BigBirdParams bigbird;
  // Union, Intersect.
  std::vector<Mask> children;

  static Mask empty();
  static Mask full();
  static Mask causal();
  static Mask window(int64_t left, int64_t right, int64_t dilation = 1);
  static Mask globalTokens(std::vector<int64_t> tokens);
  static Mask globalRanges(std::vector<std::pair<int64_t, int64_t>> ranges);
  static Mask globalStride(int64_t stride, int64_t offset);
  static Mask globalRuntime(int64_t max);
  static Mask blockSparse(int64_t block, std::vector<std::vector<int64_t>> layout);
  static Mask bigBird(BigBirdParams params);
  static Mask unionOf(std::vector<Mask> children);
  static Mask intersectOf(std::vector<Mask> children);

  bool operator==(const Mask &other) const;
  bool operator!=(const Mask &other) const { return !(*this == other); }
};

/// What a predicate needs besides the mask: the sequence lengths and, for
/// GlobalRuntime, the launch-time token list (sorted or not).
struct Extent {
  int64_t nq = 0;
  int64_t nk = 0;
  const std::vector<int64_t> *runtimeTokens = nullptr;
};

/// The absolute position of query row i.
inline int64_t queryPosition(int64_t i, const Extent &e) { return i + e.nk - e.nq; }

/// A mask prepared for fast repeated queries: BigBird expanded, token lists
/// sorted, block layouts turned into per-row sorted column lists. Build once
/// per (mask, extent), then call allowed() for many pairs.
class Predicate {
public:
  Predicate(const Mask &mask, const Extent &extent);
  /// Whether query row i (0 <= i < nq) may attend to key k (0 <= k < nk).
  bool allowed(int64_t i, int64_t k) const;
  const Extent &extent() const { return extent_; }

private:
  bool eval(const Mask &m, int64_t p, int64_t k) const;
  Mask prepared_;
  Extent extent_;
  std::vector<int64_t> runtimeSorted_;
};

/// One-shot predicate (prepares the mask each call: use Predicate in loops).
bool allowed(const Mask &mask, const Extent &extent, int64_t i, int64_t k);

/// The BigBird layout for a key length of nk tokens: ceil(nk / block) rows.
/// Row r holds: the band [r - (band-1)/2, r + band/2] clipped to range; the
/// first `global` columns; every column if r < global; and `random` further
/// distinct columns drawn, without replacement, from those not yet in the row
/// by a splitmix64 generator seeded with (seed, r). Rows are sorted.
std::vector<std::vector<int64_t>> expandBigBird(const BigBirdParams &p, int64_t nk);

/// The algebraic normal form used by attn-canonicalize-mask:
///  - window with dilation 1 and both sides unbounded -> full; left unbounded,
///    right 0, dilation 1 -> causal;
///  - nested unions / intersections flatten; a single child is the child;
///  - union with full -> full, intersect with empty -> empty, empty children
///    of a union and full children of an intersect drop; an empty union is
///    empty, an empty intersect is full;
///  - causal intersected with window{L, R, d} -> window{L, 0, d}; two windows
///    with the same dilation intersect to window{min L, min R, d};
///    causal ∩ causal -> causal; duplicates in a union/intersect drop;
///  - global tokens sorted and deduplicated (empty list -> empty mask);
///    ranges sorted, merged, empty ranges dropped;
///  - block layout rows sorted and deduplicated; an all-empty layout -> empty.
Mask canonicalize(const Mask &mask);

/// Duplicate tokens in a GlobalTokens node (for the loader's warning).
std::vector<int64_t> duplicateTokens(const std::vector<int64_t> &tokens);

/// A short human-readable rendering, e.g. "union(window(256,256), global[0])".
std::string toString(const Mask &mask);

} // namespace attnc::mask

#endif // ATTNC_MASK_MASK_H
