//===- Mask.cpp - The mask algebra of attnc -------------------------------===//
//
// Factories, structural equality, the prepared predicate, the BigBird layout
// generator, the canonicalizer and the printer of Mask.h.
//
// Conventions for degenerate parameters (the spec loader rejects them, but the
// algebra stays total): a window with dilation < 1, a global stride < 1 and a
// block size < 1 allow no pair (the stride: no global token). Negative
// positions are never global, negative block columns never match.
//
//===----------------------------------------------------------------------===//

#include "attnc/Mask/Mask.h"

#include <algorithm>
#include <cstddef>
#include <sstream>
#include <tuple>

namespace attnc::mask {

//===----------------------------------------------------------------------===//
// Factories and equality
//===----------------------------------------------------------------------===//

static Mask ofKind(Kind kind) {
  Mask m;
  m.kind = kind;
  return m;
}

Mask Mask::empty() { return ofKind(Kind::Empty); }
Mask Mask::full() { return ofKind(Kind::Full); }
Mask Mask::causal() { return ofKind(Kind::Causal); }

Mask Mask::window(int64_t left, int64_t right, int64_t dilation) {
  Mask m = ofKind(Kind::Window);
  m.left = left;
  m.right = right;
  m.dilation = dilation;
  return m;
}

Mask Mask::globalTokens(std::vector<int64_t> tokens) {
  Mask m = ofKind(Kind::GlobalTokens);
  m.tokens = std::move(tokens);
  return m;
}

Mask Mask::globalRanges(std::vector<std::pair<int64_t, int64_t>> ranges) {
  Mask m = ofKind(Kind::GlobalRanges);
  m.ranges = std::move(ranges);
  return m;
}

Mask Mask::globalStride(int64_t stride, int64_t offset) {
  Mask m = ofKind(Kind::GlobalStride);
  m.stride = stride;
  m.offset = offset;
  return m;
}

Mask Mask::globalRuntime(int64_t max) {
  Mask m = ofKind(Kind::GlobalRuntime);
  m.runtimeMax = max;
  return m;
}

Mask Mask::blockSparse(int64_t block, std::vector<std::vector<int64_t>> layout) {
  Mask m = ofKind(Kind::BlockSparse);
  m.block = block;
  m.layout = std::move(layout);
  return m;
}

Mask Mask::bigBird(BigBirdParams params) {
  Mask m = ofKind(Kind::BigBird);
  m.bigbird = params;
  return m;
}

Mask Mask::unionOf(std::vector<Mask> children) {
  Mask m = ofKind(Kind::Union);
  m.children = std::move(children);
  return m;
}

Mask Mask::intersectOf(std::vector<Mask> children) {
  Mask m = ofKind(Kind::Intersect);
  m.children = std::move(children);
  return m;
}

static auto bigBirdKey(const BigBirdParams &p) {
  return std::make_tuple(p.block, p.band, p.random, p.global, p.seed);
}

/// Three-way structural comparison of the fields meaningful to the kind: the
/// total order that makes canonical union/intersect child lists deterministic.
static int compare(const Mask &a, const Mask &b) {
  auto cmp = [](const auto &x, const auto &y) { return x < y ? -1 : (y < x ? 1 : 0); };
  if (int c = cmp(static_cast<int>(a.kind), static_cast<int>(b.kind)))
    return c;
  switch (a.kind) {
  case Kind::Empty:
  case Kind::Full:
  case Kind::Causal:
    return 0;
  case Kind::Window:
    return cmp(std::make_tuple(a.dilation, a.left, a.right),
               std::make_tuple(b.dilation, b.left, b.right));
  case Kind::GlobalTokens:
    return cmp(a.tokens, b.tokens);
  case Kind::GlobalRanges:
    return cmp(a.ranges, b.ranges);
  case Kind::GlobalStride:
    return cmp(std::make_pair(a.stride, a.offset), std::make_pair(b.stride, b.offset));
  case Kind::GlobalRuntime:
    return cmp(a.runtimeMax, b.runtimeMax);
  case Kind::BlockSparse:
    if (int c = cmp(a.block, b.block))
      return c;
    return cmp(a.layout, b.layout);
  case Kind::BigBird:
    return cmp(bigBirdKey(a.bigbird), bigBirdKey(b.bigbird));
  case Kind::Union:
  case Kind::Intersect: {
    size_t n = std::min(a.children.size(), b.children.size());
    for (size_t i = 0; i < n; ++i)
      if (int c = compare(a.children[i], b.children[i]))
        return c;
    return cmp(a.children.size(), b.children.size());
  }
  }
  return 0;
}

bool Mask::operator==(const Mask &other) const { return compare(*this, other) == 0; }

//===----------------------------------------------------------------------===//
// Shared helpers
//===----------------------------------------------------------------------===//

/// Sorts and deduplicates in place.
static void sortUnique(std::vector<int64_t> &v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

/// Sorts, drops empty ranges and merges overlapping or adjacent ones: the
/// result is a strictly increasing list of disjoint half-open ranges.
static std::vector<std::pair<int64_t, int64_t>>
normalizeRanges(std::vector<std::pair<int64_t, int64_t>> ranges) {
  ranges.erase(std::remove_if(ranges.begin(), ranges.end(),
                              [](const auto &r) { return r.first >= r.second; }),
               ranges.end());
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<int64_t, int64_t>> merged;
  for (const auto &r : ranges) {
    if (!merged.empty() && r.first <= merged.back().second)
      merged.back().second = std::max(merged.back().second, r.second);
    else
      merged.push_back(r);
  }
  return merged;
}

/// Whether token t is in a sorted list.
static bool inSorted(const std::vector<int64_t> &sorted, int64_t t) {
  return std::binary_search(sorted.begin(), sorted.end(), t);
}

/// Whether t lies in a list of disjoint ranges sorted by their begin.
static bool inRanges(const std::vector<std::pair<int64_t, int64_t>> &ranges, int64_t t) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), t,
                             [](int64_t x, const auto &r) { return x < r.first; });
  return it != ranges.begin() && t < std::prev(it)->second;
}

/// Whether token t >= 0 is global for a stride/offset rule.
static bool onStride(int64_t stride, int64_t offset, int64_t t) {
  if (stride < 1 || t < offset)
    return false;
  __int128 diff = static_cast<__int128>(t) - offset;
  return diff % stride == 0;
}

/// Whether delta = p - k lies in window{left, right, dilation}. Products are
/// formed in 128 bits, so kUnbounded (and any int64 side) cannot overflow.
static bool inWindow(int64_t left, int64_t right, int64_t dilation, int64_t delta) {
  if (dilation < 1)
    return false;
  __int128 d = dilation;
  __int128 x = delta;
  return -static_cast<__int128>(right) * d <= x && x <= static_cast<__int128>(left) * d &&
         x % d == 0;
}

//===----------------------------------------------------------------------===//
// BigBird
//===----------------------------------------------------------------------===//

namespace {
/// The splitmix64 generator (Steele, Lea, Flood 2014).
class SplitMix64 {
public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

private:
  uint64_t state_;
};
} // namespace

std::vector<std::vector<int64_t>> expandBigBird(const BigBirdParams &p, int64_t nk) {
  if (p.block < 1 || nk < 1)
    return {};
  const int64_t blocks = nk / p.block + (nk % p.block != 0);
  std::vector<std::vector<int64_t>> layout(static_cast<size_t>(blocks));
  std::vector<char> inRow(static_cast<size_t>(blocks));
  std::vector<int64_t> candidates;
  for (int64_t r = 0; r < blocks; ++r) {
    std::fill(inRow.begin(), inRow.end(), 0);
    if (p.band > 0) {
      int64_t lo = std::max<int64_t>(0, r - (p.band - 1) / 2);
      int64_t hi = std::min<int64_t>(blocks - 1, r + p.band / 2);
      for (int64_t c = lo; c <= hi; ++c)
        inRow[c] = 1;
    }
    int64_t globalCols = r < p.global ? blocks : std::clamp<int64_t>(p.global, 0, blocks);
    for (int64_t c = 0; c < globalCols; ++c)
      inRow[c] = 1;

    // Draw `random` distinct columns among those not in the row: a partial
    // Fisher-Yates shuffle of the ascending candidate list, the generator
    // seeded with seed ^ (r * golden ratio) so that every row is independent.
    candidates.clear();
    for (int64_t c = 0; c < blocks; ++c)
      if (!inRow[c])
        candidates.push_back(c);
    SplitMix64 rng(p.seed ^ (static_cast<uint64_t>(r) * 0x9E3779B97F4A7C15ull));
    int64_t draws = std::clamp<int64_t>(p.random, 0, static_cast<int64_t>(candidates.size()));
    for (int64_t j = 0; j < draws; ++j) {
      uint64_t span = candidates.size() - static_cast<uint64_t>(j);
      size_t pick = static_cast<size_t>(j) + static_cast<size_t>(rng.next() % span);
      std::swap(candidates[j], candidates[pick]);
      inRow[candidates[j]] = 1;
    }

    std::vector<int64_t> &row = layout[static_cast<size_t>(r)];
    for (int64_t c = 0; c < blocks; ++c)
      if (inRow[c])
        row.push_back(c);
  }
  return layout;
}

//===----------------------------------------------------------------------===//
// Predicate
//===----------------------------------------------------------------------===//

/// Rewrites a mask for fast evaluation under one key length: token lists
/// sorted, ranges merged, layout rows sorted, BigBird expanded to BlockSparse.
/// Every rewrite preserves the predicate.
static Mask prepare(const Mask &m, int64_t nk) {
  Mask out = m;
  switch (m.kind) {
  case Kind::GlobalTokens:
    sortUnique(out.tokens);
    break;
  case Kind::GlobalRanges:
    out.ranges = normalizeRanges(m.ranges);
    break;
  case Kind::BlockSparse:
    for (auto &row : out.layout)
      sortUnique(row);
    break;
  case Kind::BigBird:
    out = Mask::blockSparse(m.bigbird.block, expandBigBird(m.bigbird, nk));
    break;
  case Kind::Union:
  case Kind::Intersect:
    for (auto &child : out.children)
      child = prepare(child, nk);
    break;
  default:
    break;
  }
  return out;
}

Predicate::Predicate(const Mask &mask, const Extent &extent)
    : prepared_(prepare(mask, extent.nk)), extent_(extent) {
  if (extent.runtimeTokens) {
    runtimeSorted_ = *extent.runtimeTokens;
    sortUnique(runtimeSorted_);
  }
}

bool Predicate::allowed(int64_t i, int64_t k) const {
  return eval(prepared_, queryPosition(i, extent_), k);
}

bool Predicate::eval(const Mask &m, int64_t p, int64_t k) const {
  // For the global kinds: whether p or k is a global token (p < 0 never is).
  auto eitherGlobal = [&](auto isGlobal) { return (p >= 0 && isGlobal(p)) || isGlobal(k); };
  switch (m.kind) {
  case Kind::Empty:
    return false;
  case Kind::Full:
    return true;
  case Kind::Causal:
    return k <= p;
  case Kind::Window:
    return inWindow(m.left, m.right, m.dilation, p - k);
  case Kind::GlobalTokens:
    return eitherGlobal([&](int64_t t) { return inSorted(m.tokens, t); });
  case Kind::GlobalRanges:
    return eitherGlobal([&](int64_t t) { return inRanges(m.ranges, t); });
  case Kind::GlobalStride:
    return eitherGlobal([&](int64_t t) { return onStride(m.stride, m.offset, t); });
  case Kind::GlobalRuntime:
    return eitherGlobal([&](int64_t t) { return inSorted(runtimeSorted_, t); });
  case Kind::BlockSparse: {
    if (p < 0 || k < 0 || m.block < 1)
      return false;
    int64_t row = p / m.block;
    if (row >= static_cast<int64_t>(m.layout.size()))
      return false;
    return inSorted(m.layout[static_cast<size_t>(row)], k / m.block);
  }
  case Kind::BigBird:
    // prepare() expanded every BigBird node.
    return false;
  case Kind::Union:
    for (const Mask &child : m.children)
      if (eval(child, p, k))
        return true;
    return false;
  case Kind::Intersect:
    for (const Mask &child : m.children)
      if (!eval(child, p, k))
        return false;
    return true;
  }
  return false;
}

bool allowed(const Mask &mask, const Extent &extent, int64_t i, int64_t k) {
  return Predicate(mask, extent).allowed(i, k);
}

//===----------------------------------------------------------------------===//
// Canonicalization
//===----------------------------------------------------------------------===//

/// The leaf rules of a window: invalid or empty intervals -> empty, the two
/// dilation-1 special cases -> full / causal.
static Mask canonicalWindow(int64_t left, int64_t right, int64_t dilation) {
  if (dilation < 1 || static_cast<__int128>(left) < -static_cast<__int128>(right))
    return Mask::empty();
  if (dilation == 1 && left == kUnbounded && right == kUnbounded)
    return Mask::full();
  if (dilation == 1 && left == kUnbounded && right == 0)
    return Mask::causal();
  return Mask::window(left, right, dilation);
}

static Mask canonicalLeaf(const Mask &m) {
  switch (m.kind) {
  case Kind::Window:
    return canonicalWindow(m.left, m.right, m.dilation);
  case Kind::GlobalTokens: {
    std::vector<int64_t> tokens;
    for (int64_t t : m.tokens)
      if (t >= 0)
        tokens.push_back(t);
    sortUnique(tokens);
    return tokens.empty() ? Mask::empty() : Mask::globalTokens(std::move(tokens));
  }
  case Kind::GlobalRanges: {
    // Negative positions are never global: clip ranges to [0, ...).
    std::vector<std::pair<int64_t, int64_t>> ranges;
    for (const auto &r : m.ranges)
      ranges.emplace_back(std::max<int64_t>(r.first, 0), r.second);
    ranges = normalizeRanges(std::move(ranges));
    return ranges.empty() ? Mask::empty() : Mask::globalRanges(std::move(ranges));
  }
  case Kind::GlobalStride: {
    if (m.stride < 1)
      return Mask::empty();
    // A negative offset is the smallest non-negative one of its class.
    int64_t offset = m.offset >= 0 ? m.offset : ((m.offset % m.stride) + m.stride) % m.stride;
    if (m.stride == 1 && offset == 0)
      return Mask::full();
    return Mask::globalStride(m.stride, offset);
  }
  case Kind::BlockSparse: {
    if (m.block < 1)
      return Mask::empty();
    std::vector<std::vector<int64_t>> layout = m.layout;
    bool any = false;
    for (auto &row : layout) {
      row.erase(std::remove_if(row.begin(), row.end(), [](int64_t c) { return c < 0; }), row.end());
      sortUnique(row);
      any = any || !row.empty();
    }
    return any ? Mask::blockSparse(m.block, std::move(layout)) : Mask::empty();
  }
  case Kind::BigBird:
    return m.bigbird.block < 1 ? Mask::empty() : Mask::bigBird(m.bigbird);
  case Kind::GlobalRuntime:
    return Mask::globalRuntime(m.runtimeMax);
  default:
    return ofKind(m.kind);
  }
}

/// Sorts children into the canonical order and drops duplicates.
static void sortChildren(std::vector<Mask> &children) {
  std::sort(children.begin(), children.end(),
            [](const Mask &a, const Mask &b) { return compare(a, b) < 0; });
  children.erase(std::unique(children.begin(), children.end()), children.end());
}

/// Canonical children of a union or intersect: each canonicalized, nested
/// nodes of the same kind flattened.
static std::vector<Mask> flattenedChildren(const Mask &m) {
  std::vector<Mask> out;
  for (const Mask &child : m.children) {
    Mask c = canonicalize(child);
    if (c.kind == m.kind)
      for (Mask &grandchild : c.children)
        out.push_back(std::move(grandchild));
    else
      out.push_back(std::move(c));
  }
  return out;
}

/// A union or intersect node of already canonical children: none -> the
/// identity, one -> that child.
static Mask finishNary(Kind kind, std::vector<Mask> children) {
  sortChildren(children);
  if (children.empty())
    return kind == Kind::Union ? Mask::empty() : Mask::full();
  if (children.size() == 1)
    return std::move(children.front());
  return kind == Kind::Union ? Mask::unionOf(std::move(children))
                             : Mask::intersectOf(std::move(children));
}

static Mask canonicalUnion(const Mask &m) {
  std::vector<Mask> children;
  std::vector<int64_t> tokens;
  bool anyTokens = false;
  for (Mask &c : flattenedChildren(m)) {
    if (c.kind == Kind::Full)
      return Mask::full();
    if (c.kind == Kind::Empty)
      continue;
    if (c.kind == Kind::GlobalTokens) {
      tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
      anyTokens = true;
      continue;
    }
    children.push_back(std::move(c));
  }
  if (anyTokens) {
    sortUnique(tokens);
    children.push_back(Mask::globalTokens(std::move(tokens)));
  }
  return finishNary(Kind::Union, std::move(children));
}

static Mask canonicalIntersect(const Mask &m) {
  std::vector<Mask> children;
  // Windows grouped by dilation: (dilation, min left, min right).
  std::vector<std::tuple<int64_t, int64_t, int64_t>> windows;
  bool causal = false;
  for (Mask &c : flattenedChildren(m)) {
    if (c.kind == Kind::Empty)
      return Mask::empty();
    if (c.kind == Kind::Full)
      continue;
    if (c.kind == Kind::Causal) {
      causal = true;
      continue;
    }
    if (c.kind == Kind::Window) {
      auto same = std::find_if(windows.begin(), windows.end(),
                               [&](const auto &w) { return std::get<0>(w) == c.dilation; });
      if (same == windows.end()) {
        windows.emplace_back(c.dilation, c.left, c.right);
      } else {
        std::get<1>(*same) = std::min(std::get<1>(*same), c.left);
        std::get<2>(*same) = std::min(std::get<2>(*same), c.right);
      }
      continue;
    }
    children.push_back(std::move(c));
  }
  // causal is delta >= 0, so causal ∩ window{L, R, d} = window{L, min(R, 0), d}:
  // causal is absorbed into every window. A dilation-1 window may turn into
  // causal itself, but only when a causal child set `right` to 0 (a window
  // child {inf, 0, 1} arrives as causal): it is then implied by the other
  // windows, or re-added below if there is none.
  std::vector<Mask> merged;
  for (const auto &[dilation, left, right] : windows) {
    Mask w = canonicalWindow(left, causal ? std::min<int64_t>(right, 0) : right, dilation);
    if (w.kind == Kind::Empty)
      return w;
    if (w.kind == Kind::Window)
      merged.push_back(std::move(w));
  }
  if (causal && merged.empty())
    children.push_back(Mask::causal());
  for (Mask &w : merged)
    children.push_back(std::move(w));
  return finishNary(Kind::Intersect, std::move(children));
}

Mask canonicalize(const Mask &mask) {
  switch (mask.kind) {
  case Kind::Union:
    return canonicalUnion(mask);
  case Kind::Intersect:
    return canonicalIntersect(mask);
  default:
    return canonicalLeaf(mask);
  }
}

std::vector<int64_t> duplicateTokens(const std::vector<int64_t> &tokens) {
  std::vector<int64_t> sorted = tokens;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> dups;
  for (size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i] == sorted[i - 1] && (dups.empty() || dups.back() != sorted[i]))
      dups.push_back(sorted[i]);
  return dups;
}

//===----------------------------------------------------------------------===//
// Printing
//===----------------------------------------------------------------------===//

/// Layouts with more rows than this print as a summary.
static constexpr size_t kMaxPrintedRows = 16;

static void printSide(std::ostream &os, int64_t v) {
  if (v == kUnbounded)
    os << "inf";
  else
    os << v;
}

static void printList(std::ostream &os, const std::vector<int64_t> &v) {
  os << '[';
  for (size_t i = 0; i < v.size(); ++i)
    os << (i ? "," : "") << v[i];
  os << ']';
}

static void print(std::ostream &os, const Mask &m) {
  switch (m.kind) {
  case Kind::Empty:
    os << "empty";
    return;
  case Kind::Full:
    os << "full";
    return;
  case Kind::Causal:
    os << "causal";
    return;
  case Kind::Window:
    os << "window(left=";
    printSide(os, m.left);
    os << ",right=";
    printSide(os, m.right);
    os << ",dilation=" << m.dilation << ')';
    return;
  case Kind::GlobalTokens:
    os << "global(tokens=";
    printList(os, m.tokens);
    os << ')';
    return;
  case Kind::GlobalRanges:
    os << "global(ranges=[";
    for (size_t i = 0; i < m.ranges.size(); ++i)
      os << (i ? "," : "") << '[' << m.ranges[i].first << ',' << m.ranges[i].second << ')';
    os << "])";
    return;
  case Kind::GlobalStride:
    os << "global(stride=" << m.stride << ",offset=" << m.offset << ')';
    return;
  case Kind::GlobalRuntime:
    os << "global(runtime,max=" << m.runtimeMax << ')';
    return;
  case Kind::BlockSparse: {
    os << "block_sparse(block=" << m.block << ",layout=";
    if (m.layout.size() <= kMaxPrintedRows) {
      os << '[';
      for (size_t r = 0; r < m.layout.size(); ++r) {
        os << (r ? "," : "");
        printList(os, m.layout[r]);
      }
      os << ']';
    } else {
      size_t nnz = 0;
      for (const auto &row : m.layout)
        nnz += row.size();
      os << "<" << m.layout.size() << " rows, " << nnz << " blocks>";
    }
    os << ')';
    return;
  }
  case Kind::BigBird:
    os << "bigbird(block=" << m.bigbird.block << ",band=" << m.bigbird.band
       << ",random=" << m.bigbird.random << ",global=" << m.bigbird.global
       << ",seed=" << m.bigbird.seed << ')';
    return;
  case Kind::Union:
  case Kind::Intersect:
    os << (m.kind == Kind::Union ? "union(" : "intersect(");
    for (size_t i = 0; i < m.children.size(); ++i) {
      os << (i ? ", " : "");
      print(os, m.children[i]);
    }
    os << ')';
    return;
  }
}

std::string toString(const Mask &mask) {
  std::ostringstream os;
  print(os, mask);
  return os.str();
}

} // namespace attnc::mask
