//===- Tiles.cpp - Exact geometry of a mask over tiles --------------------===//
//
// Geometry prepares a canonical mask as a tree of Nodes and answers three
// questions about it: the class of a rectangle, the number of allowed pairs in
// it, and the column tiles that may hold an allowed pair for a band of rows.
//
// Rectangles are handled as Boxes in absolute coordinates: query positions
// [p0, p1] (p = row + nk - nq) and keys [k0, k1], both inclusive. Every
// difference p - k in [p0 - k1, p1 - k0] occurs in the box, which is what makes
// the banded formulas exact.
//
// Classification and counting are exact everywhere. Every leaf kind has a
// closed form (O(1), logarithmic, or O(rows) for band counts). A union or
// intersect is decided by its children when one child decides it, or when
// all but one are neutral (empty in a union, full in an intersect); otherwise
// it is classified row by row from sorted lists of allowed key spans, stopping
// at the first row that shows both an allowed and a masked pair, and counted
// row by row, or by inclusion-exclusion when the undecided children of a
// union are all bands (unions of dilated windows would enumerate every
// allowed key).
//
// Sizes: lengths, positions and block sizes are assumed below 2^62, so that
// differences of positions and keys never overflow; the unbounded sides of
// windows (kUnbounded) are handled in 128 bits where they meet a position.
//
//===----------------------------------------------------------------------===//

#include "attnc/Mask/Tiles.h"

#include <algorithm>
#include <numeric>

namespace attnc::mask {

namespace {

using Int128 = __int128;

/// floor(a / b) and ceil(a / b) for b > 0.
template <typename T> T floorDiv(T a, T b) {
  T q = a / b;
  return a % b < 0 ? q - 1 : q;
}
template <typename T> T ceilDiv(T a, T b) {
  T q = a / b;
  return a % b > 0 ? q + 1 : q;
}

/// Clamps a 128-bit value into [lo, hi].
int64_t clampTo(Int128 v, int64_t lo, int64_t hi) {
  return static_cast<int64_t>(std::clamp<Int128>(v, lo, hi));
}

/// Clamps a 128-bit value into [-kUnbounded, kUnbounded].
int64_t saturate(Int128 v) { return clampTo(v, -kUnbounded, kUnbounded); }

/// The number of multiples of d (> 0) in [a, b], a <= b + 1.
int64_t countMultiples(int64_t a, int64_t b, int64_t d) {
  return d == 1 ? b - a + 1 : floorDiv(b, d) - ceilDiv(a, d) + 1;
}

/// A rectangle in absolute coordinates: positions [p0, p1], keys [k0, k1].
struct Box {
  int64_t p0, p1, k0, k1;
  int64_t rows() const { return p1 - p0 + 1; }
  int64_t keys() const { return k1 - k0 + 1; }
  int64_t area() const { return rows() * keys(); }
};

/// A half-open span of keys [begin, end).
struct Span {
  int64_t begin, end;
};

/// A band with its bounds tightened to the least and the greatest allowed
/// delta (both multiples of the period); lo = kUnbounded > hi = -kUnbounded
/// when the band allows no delta at all.
struct BandForm {
  int64_t lo, hi, period;
};

BandForm tighten(const Band &b) {
  Int128 d = b.period;
  Int128 lo = ceilDiv<Int128>(b.lo, d) * d, hi = floorDiv<Int128>(b.hi, d) * d;
  if (lo > hi)
    return {kUnbounded, -kUnbounded, b.period};
  return {static_cast<int64_t>(lo), static_cast<int64_t>(hi), b.period};
}

/// Exact class of a box under a band: O(1).
TileClass classifyBand(const BandForm &f, const Box &x) {
  int64_t dmin = x.p0 - x.k1, dmax = x.p1 - x.k0;
  int64_t a = std::max(f.lo, dmin), b = std::min(f.hi, dmax);
  if (a > b || countMultiples(a, b, f.period) == 0)
    return TileClass::Empty;
  if (dmin >= f.lo && dmax <= f.hi && (f.period == 1 || dmin == dmax))
    return TileClass::Full;
  return TileClass::Partial;
}

/// Exact number of allowed pairs of a box under a band: O(rows).
int64_t countBand(const BandForm &f, const Box &x) {
  // Clamped to the deltas of the box, the bounds are ordinary integers.
  int64_t lo = std::max(f.lo, x.p0 - x.k1), hi = std::min(f.hi, x.p1 - x.k0);
  if (lo > hi)
    return 0;
  int64_t total = 0;
  for (int64_t p = x.p0; p <= x.p1; ++p) {
    int64_t a = std::max(lo, p - x.k1), b = std::min(hi, p - x.k0);
    if (a <= b)
      total += countMultiples(a, b, f.period);
  }
  return total;
}

/// The keys [first, second] in [0, nk) that positions [p0, p1] may reach
/// under a band; first > second when none.
std::pair<int64_t, int64_t> bandKeyRange(const BandForm &f, int64_t p0, int64_t p1, int64_t nk) {
  return {clampTo(static_cast<Int128>(p0) - f.hi, 0, nk),
          clampTo(static_cast<Int128>(p1) - f.lo, -1, nk - 1)};
}

/// The query rows [first, second] in [0, nq) whose positions (row + shift)
/// may reach a key of [k0, k1] under a band, the mirror of bandKeyRange;
/// first > second when none.
std::pair<int64_t, int64_t> bandRowRange(const BandForm &f, int64_t k0, int64_t k1, int64_t nq,
                                         int64_t shift) {
  // Positions p with p - k in [lo, hi] for a key k in [k0, k1]: [k0 + lo, k1 + hi].
  return {clampTo(static_cast<Int128>(k0) + f.lo - shift, 0, nq),
          clampTo(static_cast<Int128>(k1) + f.hi - shift, -1, nq - 1)};
}

/// The kinds of prepared nodes: banded masks (full, causal, windows and their
/// intersections) become Band; global tokens, ranges and runtime tokens all
/// become GlobalSet; BigBird becomes BlockSparse.
enum class NodeKind { Empty, Band, GlobalSet, GlobalStride, BlockSparse, Union, Intersect };

/// The result of the fast recursive classification: Unknown when a union or
/// intersect cannot decide without counting.
enum class Cls { Empty, Partial, Full, Unknown };

Cls toCls(TileClass c) {
  return c == TileClass::Empty ? Cls::Empty : c == TileClass::Full ? Cls::Full : Cls::Partial;
}

/// One node of a prepared mask. Global tokens are restricted to [0, nk), the
/// only positions and keys that occur; block sizes to at most nk.
struct Node {
  NodeKind kind = NodeKind::Empty;
  // Band.
  BandForm band{};
  // GlobalSet: sorted disjoint non-adjacent spans, prefix[i] = the total
  // length of spans[0, i).
  std::vector<Span> spans;
  std::vector<int64_t> prefix;
  // GlobalStride: the tokens offset + j * stride, j >= 0.
  int64_t stride = 1, offset = 0;
  // BlockSparse: layout rows sorted, unique, with columns below the number of
  // key blocks.
  int64_t block = 1;
  std::vector<std::vector<int64_t>> layout;
  // Union, Intersect.
  std::vector<Node> children;
};

//===----------------------------------------------------------------------===//
// Preparation
//===----------------------------------------------------------------------===//

/// A GlobalSet node of spans clipped to [0, nk) (Empty if none is left).
Node globalSetNode(std::vector<Span> spans, int64_t nk) {
  for (Span &s : spans) {
    s.begin = std::max<int64_t>(s.begin, 0);
    s.end = std::min(s.end, nk);
  }
  spans.erase(
      std::remove_if(spans.begin(), spans.end(), [](const Span &s) { return s.begin >= s.end; }),
      spans.end());
  std::sort(spans.begin(), spans.end(),
            [](const Span &a, const Span &b) { return a.begin < b.begin; });
  Node n;
  for (const Span &s : spans) {
    if (!n.spans.empty() && s.begin <= n.spans.back().end)
      n.spans.back().end = std::max(n.spans.back().end, s.end);
    else
      n.spans.push_back(s);
  }
  if (n.spans.empty())
    return n;
  n.kind = NodeKind::GlobalSet;
  n.prefix.push_back(0);
  for (const Span &s : n.spans)
    n.prefix.push_back(n.prefix.back() + (s.end - s.begin));
  return n;
}

Node tokenNode(const std::vector<int64_t> &tokens, int64_t nk) {
  std::vector<Span> spans;
  for (int64_t t : tokens)
    if (t >= 0 && t < nk)
      spans.push_back({t, t + 1});
  return globalSetNode(std::move(spans), nk);
}

Node blockNode(int64_t block, const std::vector<std::vector<int64_t>> &layout, int64_t nk) {
  Node n;
  if (block < 1 || nk < 1)
    return n;
  // A block of nk or more keys puts every position and key in block 0.
  n.block = std::min(block, nk);
  const int64_t blocks = ceilDiv(nk, n.block);
  const size_t rows = std::min(layout.size(), static_cast<size_t>(blocks));
  n.layout.resize(rows);
  bool any = false;
  for (size_t r = 0; r < rows; ++r) {
    for (int64_t c : layout[r])
      if (c >= 0 && c < blocks)
        n.layout[r].push_back(c);
    std::sort(n.layout[r].begin(), n.layout[r].end());
    n.layout[r].erase(std::unique(n.layout[r].begin(), n.layout[r].end()), n.layout[r].end());
    any = any || !n.layout[r].empty();
  }
  if (any)
    n.kind = NodeKind::BlockSparse;
  return n;
}

/// Builds the node of a canonical mask.
Node build(const Mask &m, const Extent &e, const std::vector<int64_t> &runtime) {
  Node n;
  if (std::optional<Band> band = bandOf(m)) {
    n.kind = NodeKind::Band;
    n.band = tighten(*band);
    return n;
  }
  switch (m.kind) {
  case Kind::GlobalTokens:
    return tokenNode(m.tokens, e.nk);
  case Kind::GlobalRuntime:
    return tokenNode(runtime, e.nk);
  case Kind::GlobalRanges: {
    std::vector<Span> spans;
    for (const auto &r : m.ranges)
      spans.push_back({r.first, r.second});
    return globalSetNode(std::move(spans), e.nk);
  }
  case Kind::GlobalStride:
    if (m.stride >= 1 && m.offset >= 0 && m.offset < e.nk) {
      n.kind = NodeKind::GlobalStride;
      n.stride = m.stride;
      n.offset = m.offset;
    }
    return n;
  case Kind::BlockSparse:
    return blockNode(m.block, m.layout, e.nk);
  case Kind::BigBird:
    return blockNode(m.bigbird.block, expandBigBird(m.bigbird, e.nk), e.nk);
  case Kind::Union:
  case Kind::Intersect:
    n.kind = m.kind == Kind::Union ? NodeKind::Union : NodeKind::Intersect;
    for (const Mask &child : m.children)
      n.children.push_back(build(child, e, runtime));
    return n;
  default:
    // Empty, and windows that canonicalize never leaves (dilation < 1).
    return n;
  }
}

//===----------------------------------------------------------------------===//
// Global tokens
//===----------------------------------------------------------------------===//

/// The number of global tokens in [a, b] (negative positions never are).
int64_t globalCount(const Node &n, int64_t a, int64_t b) {
  a = std::max<int64_t>(a, 0);
  if (a > b)
    return 0;
  if (n.kind == NodeKind::GlobalStride) {
    int64_t first = std::max(a, n.offset);
    if (first > b)
      return 0;
    return floorDiv(b - n.offset, n.stride) - ceilDiv(first - n.offset, n.stride) + 1;
  }
  // The number of global tokens below x.
  auto below = [&](int64_t x) {
    size_t i = std::lower_bound(n.spans.begin(), n.spans.end(), x,
                                [](const Span &s, int64_t v) { return s.begin < v; }) -
               n.spans.begin();
    int64_t count = n.prefix[i];
    if (i > 0)
      count -= std::max<int64_t>(0, n.spans[i - 1].end - x);
    return count;
  };
  return below(b + 1) - below(a);
}

bool isGlobal(const Node &n, int64_t p) { return globalCount(n, p, p) > 0; }

/// Appends the global keys in [c0, c1) as spans.
void globalSpans(const Node &n, int64_t c0, int64_t c1, std::vector<Span> &out) {
  if (n.kind == NodeKind::GlobalStride) {
    // The first token at or after max(c0, offset), then every stride-th one,
    // in 128 bits: the stride may be close to 2^63.
    int64_t from = std::max(c0, n.offset);
    Int128 t = n.offset + static_cast<Int128>(ceilDiv(from - n.offset, n.stride)) * n.stride;
    for (; t < c1; t += n.stride)
      out.push_back({static_cast<int64_t>(t), static_cast<int64_t>(t) + 1});
    return;
  }
  auto it = std::upper_bound(n.spans.begin(), n.spans.end(), c0,
                             [](int64_t v, const Span &s) { return v < s.end; });
  for (; it != n.spans.end() && it->begin < c1; ++it)
    out.push_back({std::max(it->begin, c0), std::min(it->end, c1)});
}

/// Appends, ascending, the tiles among [t0, t1] that hold a global key in
/// [kw0, kw1] (the keys of those tiles).
void globalTiles(const Node &n, int64_t t0, int64_t t1, int64_t kw0, int64_t kw1, int64_t blockN,
                 std::vector<int64_t> &out) {
  const size_t start = out.size();
  auto add = [&](int64_t first, int64_t last) {
    if (out.size() > start)
      first = std::max(first, out.back() + 1);
    for (int64_t t = first; t <= last; ++t)
      out.push_back(t);
  };
  if (n.kind == NodeKind::GlobalStride) {
    if (n.offset > kw1)
      return;
    // Every full-width tile from the offset's on holds a token.
    if (n.stride <= blockN) {
      add(std::max(t0, n.offset / blockN), t1);
      return;
    }
    std::vector<Span> tokens;
    globalSpans(n, kw0, kw1 + 1, tokens);
    for (const Span &s : tokens)
      add(s.begin / blockN, s.begin / blockN);
    return;
  }
  auto it = std::upper_bound(n.spans.begin(), n.spans.end(), kw0,
                             [](int64_t v, const Span &s) { return v < s.end; });
  for (; it != n.spans.end() && it->begin <= kw1; ++it)
    add(std::max(it->begin, kw0) / blockN, std::min(it->end - 1, kw1) / blockN);
}

//===----------------------------------------------------------------------===//
// Block-sparse layouts
//===----------------------------------------------------------------------===//

/// The layout rows [first, last] that positions [p0, p1] read (p < 0 reads
/// none); first > last when none.
std::pair<int64_t, int64_t> layoutRows(const Node &n, int64_t p0, int64_t p1) {
  int64_t pa = std::max<int64_t>(p0, 0);
  if (pa > p1)
    return {0, -1};
  return {pa / n.block, std::min(p1 / n.block, static_cast<int64_t>(n.layout.size()) - 1)};
}

/// The listed columns of a layout row in [c0, c1].
std::pair<const int64_t *, const int64_t *> columnsIn(const std::vector<int64_t> &row, int64_t c0,
                                                      int64_t c1) {
  const int64_t *first = std::lower_bound(row.data(), row.data() + row.size(), c0);
  const int64_t *last = std::upper_bound(first, row.data() + row.size(), c1);
  return {first, last};
}

Cls classifyBlocks(const Node &n, const Box &x) {
  auto [r0, r1] = layoutRows(n, x.p0, x.p1);
  const int64_t c0 = x.k0 / n.block, c1 = x.k1 / n.block;
  // Rows with p < 0 and rows past the layout allow nothing.
  bool all = x.p0 >= 0 && x.p1 / n.block <= r1, any = false;
  for (int64_t r = r0; r <= r1; ++r) {
    auto [first, last] = columnsIn(n.layout[static_cast<size_t>(r)], c0, c1);
    any = any || first != last;
    all = all && last - first == c1 - c0 + 1;
    if (any && !all)
      return Cls::Partial;
  }
  return all ? Cls::Full : any ? Cls::Partial : Cls::Empty;
}

int64_t countBlocks(const Node &n, const Box &x) {
  auto [r0, r1] = layoutRows(n, x.p0, x.p1);
  const int64_t b = n.block, c0 = x.k0 / b, c1 = x.k1 / b;
  int64_t total = 0;
  for (int64_t r = r0; r <= r1; ++r) {
    auto [first, last] = columnsIn(n.layout[static_cast<size_t>(r)], c0, c1);
    if (first == last)
      continue;
    // Whole blocks, less what sticks out of [k0, k1] at both ends.
    int64_t keys = (last - first) * b;
    if (*first == c0)
      keys -= x.k0 - c0 * b;
    if (*(last - 1) == c1)
      keys -= c1 * b + b - 1 - x.k1;
    int64_t rows = std::min(x.p1, r * b + b - 1) - std::max(x.p0, r * b) + 1;
    total += rows * keys;
  }
  return total;
}

//===----------------------------------------------------------------------===//
// Recursive queries
//===----------------------------------------------------------------------===//

Cls classifyNode(const Node &n, const Box &x) {
  switch (n.kind) {
  case NodeKind::Empty:
    return Cls::Empty;
  case NodeKind::Band:
    return toCls(classifyBand(n.band, x));
  case NodeKind::GlobalSet:
  case NodeKind::GlobalStride: {
    int64_t rows = globalCount(n, x.p0, x.p1), keys = globalCount(n, x.k0, x.k1);
    if (rows == 0 && keys == 0)
      return Cls::Empty;
    return rows == x.rows() || keys == x.keys() ? Cls::Full : Cls::Partial;
  }
  case NodeKind::BlockSparse:
    return classifyBlocks(n, x);
  case NodeKind::Union:
  case NodeKind::Intersect: {
    // For a union, Full decides and Empty is neutral; for an intersect the
    // other way round. One non-neutral child decides the node.
    const bool isUnion = n.kind == NodeKind::Union;
    const Cls decisive = isUnion ? Cls::Full : Cls::Empty;
    const Cls neutral = isUnion ? Cls::Empty : Cls::Full;
    int others = 0;
    Cls other = neutral;
    for (const Node &child : n.children) {
      Cls c = classifyNode(child, x);
      if (c == decisive)
        return decisive;
      if (c != neutral) {
        ++others;
        other = c;
      }
    }
    return others <= 1 ? other : Cls::Unknown;
  }
  }
  return Cls::Unknown;
}

/// Appends the allowed keys of position p in [c0, c1) as sorted disjoint
/// spans (adjacent spans may touch).
void spansNode(const Node &n, int64_t p, int64_t c0, int64_t c1, std::vector<Span> &buf) {
  switch (n.kind) {
  case NodeKind::Empty:
    return;
  case NodeKind::Band: {
    int64_t a = clampTo(static_cast<Int128>(p) - n.band.hi, c0, c1);
    int64_t b = clampTo(static_cast<Int128>(p) - n.band.lo, c0 - 1, c1 - 1);
    if (a > b)
      return;
    const int64_t d = n.band.period;
    if (d == 1) {
      buf.push_back({a, b + 1});
      return;
    }
    // The keys congruent to p, in 128 bits: d may be close to 2^63.
    for (Int128 k = a + ((p - a) % d + static_cast<Int128>(d)) % d; k <= b; k += d)
      buf.push_back({static_cast<int64_t>(k), static_cast<int64_t>(k) + 1});
    return;
  }
  case NodeKind::GlobalSet:
  case NodeKind::GlobalStride:
    if (isGlobal(n, p))
      buf.push_back({c0, c1});
    else
      globalSpans(n, c0, c1, buf);
    return;
  case NodeKind::BlockSparse: {
    if (p < 0 || p / n.block >= static_cast<int64_t>(n.layout.size()))
      return;
    const int64_t b = n.block;
    auto [first, last] = columnsIn(n.layout[static_cast<size_t>(p / b)], c0 / b, (c1 - 1) / b);
    for (; first != last; ++first)
      buf.push_back({std::max(c0, *first * b), std::min(c1, *first * b + b)});
    return;
  }
  case NodeKind::Union: {
    // Each child's list is sorted: merge them, then fuse overlapping spans.
    const size_t start = buf.size();
    for (const Node &child : n.children) {
      const size_t mid = buf.size();
      spansNode(child, p, c0, c1, buf);
      std::inplace_merge(buf.begin() + start, buf.begin() + mid, buf.end(),
                         [](const Span &a, const Span &b) { return a.begin < b.begin; });
    }
    size_t w = start;
    for (size_t i = start; i < buf.size(); ++i) {
      if (w > start && buf[i].begin <= buf[w - 1].end)
        buf[w - 1].end = std::max(buf[w - 1].end, buf[i].end);
      else
        buf[w++] = buf[i];
    }
    buf.resize(w);
    return;
  }
  case NodeKind::Intersect: {
    // The running intersection lives in buf[start, mid); each child's spans
    // are appended after it and the intersection of both after those.
    const size_t start = buf.size();
    bool first = true;
    for (const Node &child : n.children) {
      const size_t mid = buf.size();
      if (!first && mid == start)
        return;
      spansNode(child, p, c0, c1, buf);
      if (first) {
        first = false;
        continue;
      }
      const size_t end = buf.size();
      for (size_t i = start, j = mid; i < mid && j < end;) {
        Span s{std::max(buf[i].begin, buf[j].begin), std::min(buf[i].end, buf[j].end)};
        if (buf[i].end < buf[j].end)
          ++i;
        else
          ++j;
        if (s.begin < s.end)
          buf.push_back(s);
      }
      std::copy(buf.begin() + end, buf.end(), buf.begin() + start);
      buf.resize(start + (buf.size() - end));
    }
    return;
  }
  }
}

/// Visits the allowed key count of every row of a box, through the allowed
/// spans, until `visit` returns false.
template <typename Visit> void forEachRowCount(const Node &n, const Box &x, Visit visit) {
  std::vector<Span> buf;
  for (int64_t p = x.p0; p <= x.p1; ++p) {
    buf.clear();
    spansNode(n, p, x.k0, x.k1 + 1, buf);
    int64_t count = 0;
    for (const Span &s : buf)
      count += s.end - s.begin;
    if (!visit(count))
      return;
  }
}

/// Classifies a box row by row, stopping at the first row that shows both an
/// allowed and a masked pair (most partial boxes stop at their first row).
Cls scanRows(const Node &n, const Box &x) {
  bool any = false, all = true;
  forEachRowCount(n, x, [&](int64_t count) {
    any = any || count > 0;
    all = all && count == x.keys();
    return !any || all;
  });
  return any && all ? Cls::Full : any ? Cls::Partial : Cls::Empty;
}

/// The most children of a union of bands counted by inclusion-exclusion.
constexpr size_t kMaxInclusionExclusion = 6;

/// The allowed pairs of a box under a union of bands, by inclusion-exclusion:
/// every intersection of bands is a band (periods beyond int64 are capped,
/// which keeps delta 0, the only multiple a box can hold).
int64_t countUnionOfBands(const std::vector<const Node *> &bands, const Box &x) {
  int64_t total = 0;
  for (uint32_t subset = 1; subset < (1u << bands.size()); ++subset) {
    Band meet{-kUnbounded, kUnbounded, 1};
    int terms = 0;
    for (size_t i = 0; i < bands.size(); ++i) {
      if (!(subset >> i & 1))
        continue;
      const BandForm &b = bands[i]->band;
      meet.lo = std::max(meet.lo, b.lo);
      meet.hi = std::min(meet.hi, b.hi);
      Int128 lcm = static_cast<Int128>(meet.period / std::gcd(meet.period, b.period)) * b.period;
      meet.period = static_cast<int64_t>(std::min<Int128>(lcm, kUnbounded));
      ++terms;
    }
    int64_t count = countBand(tighten(meet), x);
    total += terms % 2 ? count : -count;
  }
  return total;
}

int64_t countNode(const Node &n, const Box &x) {
  switch (n.kind) {
  case NodeKind::Empty:
    return 0;
  case NodeKind::Band:
    return countBand(n.band, x);
  case NodeKind::GlobalSet:
  case NodeKind::GlobalStride: {
    // Every pair but those of a non-global row and a non-global key.
    int64_t rows = globalCount(n, x.p0, x.p1), keys = globalCount(n, x.k0, x.k1);
    return x.area() - (x.rows() - rows) * (x.keys() - keys);
  }
  case NodeKind::BlockSparse:
    return countBlocks(n, x);
  case NodeKind::Union:
  case NodeKind::Intersect: {
    // As in classifyNode; a single undecided child is counted alone.
    const bool isUnion = n.kind == NodeKind::Union;
    const Cls decisive = isUnion ? Cls::Full : Cls::Empty;
    const Cls neutral = isUnion ? Cls::Empty : Cls::Full;
    std::vector<const Node *> others;
    for (const Node &child : n.children) {
      Cls c = classifyNode(child, x);
      if (c == decisive)
        return isUnion ? x.area() : 0;
      if (c != neutral)
        others.push_back(&child);
    }
    if (others.empty())
      return isUnion ? 0 : x.area();
    if (others.size() == 1)
      return countNode(*others.front(), x);
    // Unions of dilated windows would enumerate every allowed key otherwise.
    if (isUnion && others.size() <= kMaxInclusionExclusion &&
        std::all_of(others.begin(), others.end(),
                    [](const Node *c) { return c->kind == NodeKind::Band; }))
      return countUnionOfBands(others, x);
    int64_t total = 0;
    forEachRowCount(n, x, [&](int64_t count) {
      total += count;
      return true;
    });
    return total;
  }
  }
  return 0;
}

/// Context of a candidate-tile query: the key length and the tile width.
struct TileGrid {
  int64_t nk, blockN;
  /// The keys of tiles [t0, t1].
  int64_t firstKey(int64_t t0) const { return t0 * blockN; }
  int64_t lastKey(int64_t t1) const { return std::min(nk - 1, t1 * blockN + blockN - 1); }
};

/// Appends, ascending and unique, a superset of the tiles among [t0, t1]
/// that hold an allowed pair for positions [p0, p1].
void candidatesNode(const Node &n, int64_t p0, int64_t p1, int64_t t0, int64_t t1,
                    const TileGrid &g, std::vector<int64_t> &out) {
  if (t0 > t1)
    return;
  const int64_t kw0 = g.firstKey(t0), kw1 = g.lastKey(t1);
  switch (n.kind) {
  case NodeKind::Empty:
    return;
  case NodeKind::Band: {
    auto [a, b] = bandKeyRange(n.band, p0, p1, g.nk);
    if (a > b)
      return;
    for (int64_t t = std::max(t0, a / g.blockN); t <= std::min(t1, b / g.blockN); ++t)
      out.push_back(t);
    return;
  }
  case NodeKind::GlobalSet:
  case NodeKind::GlobalStride:
    // A global row sees every key; otherwise only global keys are seen.
    if (globalCount(n, p0, p1) > 0) {
      for (int64_t t = t0; t <= t1; ++t)
        out.push_back(t);
      return;
    }
    globalTiles(n, t0, t1, kw0, kw1, g.blockN, out);
    return;
  case NodeKind::BlockSparse: {
    auto [r0, r1] = layoutRows(n, p0, p1);
    const int64_t b = n.block;
    std::vector<int64_t> tiles;
    for (int64_t r = r0; r <= r1; ++r) {
      auto [first, last] = columnsIn(n.layout[static_cast<size_t>(r)], kw0 / b, kw1 / b);
      for (; first != last; ++first) {
        int64_t a = std::max(kw0, *first * b), e = std::min(kw1, *first * b + b - 1);
        for (int64_t t = a / g.blockN; t <= e / g.blockN; ++t)
          tiles.push_back(t);
      }
    }
    std::sort(tiles.begin(), tiles.end());
    tiles.erase(std::unique(tiles.begin(), tiles.end()), tiles.end());
    out.insert(out.end(), tiles.begin(), tiles.end());
    return;
  }
  case NodeKind::Union: {
    const size_t start = out.size();
    for (const Node &child : n.children)
      candidatesNode(child, p0, p1, t0, t1, g, out);
    std::sort(out.begin() + start, out.end());
    out.erase(std::unique(out.begin() + start, out.end()), out.end());
    return;
  }
  case NodeKind::Intersect: {
    // Banded children narrow the range for the others at no cost.
    for (const Node &child : n.children) {
      if (child.kind != NodeKind::Band)
        continue;
      auto [a, b] = bandKeyRange(child.band, p0, p1, g.nk);
      if (a > b)
        return;
      t0 = std::max(t0, a / g.blockN);
      t1 = std::min(t1, b / g.blockN);
    }
    std::vector<int64_t> acc, next, meet;
    for (size_t i = 0; i < n.children.size() && t0 <= t1; ++i) {
      if (i == 0) {
        candidatesNode(n.children[i], p0, p1, t0, t1, g, acc);
      } else {
        next.clear();
        meet.clear();
        candidatesNode(n.children[i], p0, p1, t0, t1, g, next);
        std::set_intersection(acc.begin(), acc.end(), next.begin(), next.end(),
                              std::back_inserter(meet));
        acc.swap(meet);
      }
      if (acc.empty())
        return;
    }
    out.insert(out.end(), acc.begin(), acc.end());
    return;
  }
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// bandOf
//===----------------------------------------------------------------------===//

std::optional<Band> bandOf(const Mask &mask) {
  switch (mask.kind) {
  case Kind::Full:
    return Band{-kUnbounded, kUnbounded, 1};
  case Kind::Causal:
    return Band{0, kUnbounded, 1};
  case Kind::Window:
    if (mask.dilation < 1)
      return std::nullopt;
    return Band{saturate(-static_cast<Int128>(mask.right) * mask.dilation),
                saturate(static_cast<Int128>(mask.left) * mask.dilation), mask.dilation};
  case Kind::Intersect: {
    Band acc{-kUnbounded, kUnbounded, 1};
    for (const Mask &child : mask.children) {
      std::optional<Band> b = bandOf(child);
      if (!b)
        return std::nullopt;
      acc.lo = std::max(acc.lo, b->lo);
      acc.hi = std::min(acc.hi, b->hi);
      Int128 lcm = static_cast<Int128>(acc.period / std::gcd(acc.period, b->period)) * b->period;
      if (lcm > kUnbounded)
        return std::nullopt;
      acc.period = static_cast<int64_t>(lcm);
    }
    return acc;
  }
  default:
    return std::nullopt;
  }
}

//===----------------------------------------------------------------------===//
// Geometry
//===----------------------------------------------------------------------===//

struct Geometry::Impl {
  Extent extent;
  std::optional<Band> band;
  Node root;

  /// The box of a non-empty rectangle.
  Box box(const Rect &r) const {
    const int64_t shift = extent.nk - extent.nq;
    return {r.row0 + shift, r.row1 - 1 + shift, r.col0, r.col1 - 1};
  }
};

Geometry::Geometry(const Mask &mask, const Extent &extent) : impl_(std::make_unique<Impl>()) {
  Mask canonical = canonicalize(mask);
  impl_->extent = extent;
  impl_->band = bandOf(canonical);
  std::vector<int64_t> runtime;
  if (extent.runtimeTokens)
    runtime = *extent.runtimeTokens;
  impl_->root = build(canonical, extent, runtime);
}

Geometry::~Geometry() = default;
Geometry::Geometry(Geometry &&) noexcept = default;
Geometry &Geometry::operator=(Geometry &&) noexcept = default;

const Extent &Geometry::extent() const { return impl_->extent; }
const std::optional<Band> &Geometry::band() const { return impl_->band; }

TileClass Geometry::classify(const Rect &rect) const {
  if (rect.row0 >= rect.row1 || rect.col0 >= rect.col1)
    return TileClass::Empty;
  const Box x = impl_->box(rect);
  Cls c = classifyNode(impl_->root, x);
  if (c == Cls::Unknown)
    c = scanRows(impl_->root, x);
  return c == Cls::Empty ? TileClass::Empty : c == Cls::Full ? TileClass::Full : TileClass::Partial;
}

int64_t Geometry::countAllowed(const Rect &rect) const {
  if (rect.row0 >= rect.row1 || rect.col0 >= rect.col1)
    return 0;
  return countNode(impl_->root, impl_->box(rect));
}

int64_t Geometry::countRow(int64_t i, int64_t col0, int64_t col1) const {
  return countAllowed(Rect{i, i + 1, col0, col1});
}

void Geometry::rowBits(int64_t i, int64_t col0, int64_t col1, uint64_t *bits) const {
  std::fill(bits, bits + (col1 - col0 + 63) / 64, 0);
  if (col0 >= col1)
    return;
  std::vector<Span> spans;
  spansNode(impl_->root, queryPosition(i, impl_->extent), col0, col1, spans);
  for (const Span &span : spans)
    for (int64_t k = span.begin; k < span.end; ++k)
      bits[(k - col0) / 64] |= uint64_t{1} << ((k - col0) % 64);
}

void Geometry::candidateColumnTiles(int64_t row0, int64_t row1, int64_t blockN,
                                    std::vector<int64_t> &out) const {
  out.clear();
  const Extent &e = impl_->extent;
  if (row0 >= row1 || blockN < 1 || e.nk < 1)
    return;
  const Box x = impl_->box(Rect{row0, row1, 0, e.nk});
  candidatesNode(impl_->root, x.p0, x.p1, 0, ceilDiv(e.nk, blockN) - 1, TileGrid{e.nk, blockN},
                 out);
}

//===----------------------------------------------------------------------===//
// BlockSchedule
//===----------------------------------------------------------------------===//

BlockSchedule::BlockSchedule(const Mask &mask, const Extent &extent, int64_t blockM, int64_t blockN)
    : geometry_(mask, extent), blockM_(blockM), blockN_(blockN) {
  if (isClosedForm())
    return;
  const int64_t rows = rowTiles();
  const Extent &e = geometry_.extent();
  rowOffsets_.reserve(static_cast<size_t>(rows) + 1);
  rowOffsets_.push_back(0);
  std::vector<int64_t> candidates;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row0 = r * blockM, row1 = std::min(e.nq, row0 + blockM);
    geometry_.candidateColumnTiles(row0, row1, blockN, candidates);
    for (int64_t c : candidates) {
      Rect rect{row0, row1, c * blockN, std::min(e.nk, c * blockN + blockN)};
      TileClass cls = geometry_.classify(rect);
      if (cls != TileClass::Empty)
        tiles_.push_back({c, cls});
    }
    rowOffsets_.push_back(static_cast<int64_t>(tiles_.size()));
  }
}

int64_t BlockSchedule::rowTiles() const {
  const Extent &e = geometry_.extent();
  if (e.nq < 1 || e.nk < 1 || blockM_ < 1 || blockN_ < 1)
    return 0;
  return ceilDiv(e.nq, blockM_);
}

int64_t BlockSchedule::colTiles() const {
  const Extent &e = geometry_.extent();
  if (e.nq < 1 || e.nk < 1 || blockM_ < 1 || blockN_ < 1)
    return 0;
  return ceilDiv(e.nk, blockN_);
}

std::pair<int64_t, int64_t> BlockSchedule::columnRange(int64_t r) const {
  if (r < 0 || r >= rowTiles())
    return {0, -1};
  if (!isClosedForm()) {
    int64_t begin = rowOffsets_[static_cast<size_t>(r)];
    int64_t end = rowOffsets_[static_cast<size_t>(r) + 1];
    if (begin == end)
      return {0, -1};
    return {tiles_[static_cast<size_t>(begin)].colTile,
            tiles_[static_cast<size_t>(end) - 1].colTile};
  }
  const Extent &e = geometry_.extent();
  const int64_t shift = e.nk - e.nq;
  const int64_t p0 = r * blockM_ + shift, p1 = std::min(e.nq, (r + 1) * blockM_) - 1 + shift;
  auto [a, b] = bandKeyRange(tighten(*geometry_.band()), p0, p1, e.nk);
  if (a > b)
    return {0, -1};
  return {a / blockN_, b / blockN_};
}

void BlockSchedule::row(int64_t r, std::vector<ScheduledTile> &out) const {
  out.clear();
  if (r < 0 || r >= rowTiles())
    return;
  if (!isClosedForm()) {
    out.assign(tiles_.begin() + rowOffsets_[static_cast<size_t>(r)],
               tiles_.begin() + rowOffsets_[static_cast<size_t>(r) + 1]);
    return;
  }
  const Extent &e = geometry_.extent();
  const BandForm f = tighten(*geometry_.band());
  const int64_t row0 = r * blockM_, row1 = std::min(e.nq, row0 + blockM_);
  auto [first, last] = columnRange(r);
  for (int64_t c = first; c <= last; ++c) {
    Box x{row0 + e.nk - e.nq, row1 - 1 + e.nk - e.nq, c * blockN_,
          std::min(e.nk, c * blockN_ + blockN_) - 1};
    TileClass cls = classifyBand(f, x);
    if (cls != TileClass::Empty)
      out.push_back({c, cls});
  }
}

TileTotals BlockSchedule::totals() const {
  TileTotals t;
  t.rowTiles = rowTiles();
  t.colTiles = colTiles();
  if (t.rowTiles == 0 || t.colTiles == 0)
    return t;
  const Extent &e = geometry_.extent();
  const int64_t shift = e.nk - e.nq;
  if (isClosedForm()) {
    const BandForm f = tighten(*geometry_.band());
    for (int64_t r = 0; r < t.rowTiles; ++r) {
      const int64_t row0 = r * blockM_, row1 = std::min(e.nq, row0 + blockM_);
      const int64_t p0 = row0 + shift, p1 = row1 - 1 + shift;
      auto [first, last] = columnRange(r);
      if (first > last)
        continue;
      if (f.period == 1) {
        // Every tile of the range is non-empty; the full ones are those with
        // keys [K0, K1] inside [p1 - hi, p0 - lo], a contiguous run.
        int64_t fullFirst =
            std::max(first, ceilDiv(clampTo(static_cast<Int128>(p1) - f.hi, 0, e.nk), blockN_));
        int64_t maxKey = clampTo(static_cast<Int128>(p0) - f.lo, -1, e.nk - 1);
        int64_t fullLast =
            maxKey == e.nk - 1 ? last : std::min(last, floorDiv(maxKey + 1, blockN_) - 1);
        int64_t full = std::max<int64_t>(0, fullLast - fullFirst + 1);
        t.full += full;
        t.partial += last - first + 1 - full;
        t.computedPairs +=
            (row1 - row0) * (std::min(e.nk, last * blockN_ + blockN_) - first * blockN_);
        continue;
      }
      for (int64_t c = first; c <= last; ++c) {
        Box x{p0, p1, c * blockN_, std::min(e.nk, c * blockN_ + blockN_) - 1};
        TileClass cls = classifyBand(f, x);
        if (cls == TileClass::Empty)
          continue;
        ++(cls == TileClass::Full ? t.full : t.partial);
        t.computedPairs += x.area();
      }
    }
    t.allowedPairs = countBand(f, Box{shift, e.nq - 1 + shift, 0, e.nk - 1});
  } else {
    for (int64_t r = 0; r < t.rowTiles; ++r) {
      const int64_t row0 = r * blockM_, row1 = std::min(e.nq, row0 + blockM_);
      for (int64_t i = rowOffsets_[static_cast<size_t>(r)];
           i < rowOffsets_[static_cast<size_t>(r) + 1]; ++i) {
        const ScheduledTile &tile = tiles_[static_cast<size_t>(i)];
        Rect rect{row0, row1, tile.colTile * blockN_,
                  std::min(e.nk, tile.colTile * blockN_ + blockN_)};
        t.computedPairs += rect.area();
        if (tile.cls == TileClass::Full) {
          ++t.full;
          t.allowedPairs += rect.area();
        } else {
          ++t.partial;
          t.allowedPairs += geometry_.countAllowed(rect);
        }
      }
    }
  }
  t.skipped = t.rowTiles * t.colTiles - t.full - t.partial;
  return t;
}

//===----------------------------------------------------------------------===//
// ColumnSchedule
//===----------------------------------------------------------------------===//

TransposedTiles transposeTiles(const std::vector<int64_t> &rowOffsets,
                               const std::vector<int64_t> &cols, int64_t columns) {
  TransposedTiles t;
  t.offsets.assign(static_cast<size_t>(std::max<int64_t>(columns, 0)) + 1, 0);
  for (int64_t c : cols)
    ++t.offsets[static_cast<size_t>(c) + 1];
  std::partial_sum(t.offsets.begin(), t.offsets.end(), t.offsets.begin());
  t.rows.resize(cols.size());
  t.entries.resize(cols.size());
  // Rows in ascending order fill each column's slots in ascending order.
  std::vector<int64_t> next(t.offsets.begin(), t.offsets.end() - 1);
  for (size_t r = 0; r + 1 < rowOffsets.size(); ++r) {
    for (int64_t e = rowOffsets[r]; e < rowOffsets[r + 1]; ++e) {
      const int64_t c = cols[static_cast<size_t>(e)];
      const auto slot = static_cast<size_t>(next[static_cast<size_t>(c)]++);
      t.rows[slot] = static_cast<int64_t>(r);
      t.entries[slot] = e;
    }
  }
  return t;
}

ColumnSchedule::ColumnSchedule(const BlockSchedule &forward) : forward_(&forward) {
  if (isClosedForm())
    return;
  const std::vector<ScheduledTile> &rowTiles = forward.tiles();
  std::vector<int64_t> cols;
  cols.reserve(rowTiles.size());
  for (const ScheduledTile &tile : rowTiles)
    cols.push_back(tile.colTile);
  TransposedTiles t = transposeTiles(forward.rowOffsets(), cols, colTiles());
  colOffsets_ = std::move(t.offsets);
  tiles_.reserve(t.entries.size());
  for (size_t i = 0; i < t.entries.size(); ++i)
    tiles_.push_back({t.rows[i], rowTiles[static_cast<size_t>(t.entries[i])].cls, t.entries[i]});
}

std::pair<int64_t, int64_t> ColumnSchedule::rowRange(int64_t c) const {
  if (c < 0 || c >= colTiles())
    return {0, -1};
  if (!isClosedForm()) {
    int64_t begin = colOffsets_[static_cast<size_t>(c)];
    int64_t end = colOffsets_[static_cast<size_t>(c) + 1];
    if (begin == end)
      return {0, -1};
    return {tiles_[static_cast<size_t>(begin)].rowTile,
            tiles_[static_cast<size_t>(end) - 1].rowTile};
  }
  const Extent &e = forward_->geometry().extent();
  const int64_t blockM = forward_->blockM(), blockN = forward_->blockN();
  const int64_t k0 = c * blockN, k1 = std::min(e.nk, k0 + blockN) - 1;
  auto [a, b] = bandRowRange(tighten(*forward_->geometry().band()), k0, k1, e.nq, e.nk - e.nq);
  if (a > b)
    return {0, -1};
  return {a / blockM, b / blockM};
}

void ColumnSchedule::column(int64_t c, std::vector<ColumnTile> &out) const {
  out.clear();
  if (c < 0 || c >= colTiles())
    return;
  if (!isClosedForm()) {
    out.assign(tiles_.begin() + colOffsets_[static_cast<size_t>(c)],
               tiles_.begin() + colOffsets_[static_cast<size_t>(c) + 1]);
    return;
  }
  const Extent &e = forward_->geometry().extent();
  const BandForm f = tighten(*forward_->geometry().band());
  const int64_t blockM = forward_->blockM(), blockN = forward_->blockN();
  const int64_t shift = e.nk - e.nq;
  const int64_t k0 = c * blockN, k1 = std::min(e.nk, k0 + blockN) - 1;
  auto [first, last] = rowRange(c);
  for (int64_t r = first; r <= last; ++r) {
    Box x{r * blockM + shift, std::min(e.nq, r * blockM + blockM) - 1 + shift, k0, k1};
    TileClass cls = classifyBand(f, x);
    if (cls != TileClass::Empty)
      out.push_back({r, cls, -1});
  }
}

TileTotals ColumnSchedule::totals() const {
  TileTotals t;
  t.rowTiles = rowTiles();
  t.colTiles = colTiles();
  if (t.rowTiles == 0 || t.colTiles == 0)
    return t;
  const Geometry &g = forward_->geometry();
  const Extent &e = g.extent();
  const int64_t blockM = forward_->blockM(), blockN = forward_->blockN();
  const int64_t shift = e.nk - e.nq;
  if (isClosedForm()) {
    const BandForm f = tighten(*g.band());
    for (int64_t c = 0; c < t.colTiles; ++c) {
      const int64_t k0 = c * blockN, k1 = std::min(e.nk, k0 + blockN) - 1;
      auto [first, last] = rowRange(c);
      if (first > last)
        continue;
      if (f.period == 1) {
        // Every tile of the range is non-empty; the full ones are those with
        // rows [I0, I1] inside [k1 + lo, k0 + hi] - shift, a contiguous run.
        int64_t fullFirst = std::max(
            first, ceilDiv(clampTo(static_cast<Int128>(k1) + f.lo - shift, 0, e.nq), blockM));
        int64_t maxRow = clampTo(static_cast<Int128>(k0) + f.hi - shift, -1, e.nq - 1);
        int64_t fullLast =
            maxRow == e.nq - 1 ? last : std::min(last, floorDiv(maxRow + 1, blockM) - 1);
        int64_t full = std::max<int64_t>(0, fullLast - fullFirst + 1);
        t.full += full;
        t.partial += last - first + 1 - full;
        t.computedPairs +=
            (std::min(e.nq, last * blockM + blockM) - first * blockM) * (k1 - k0 + 1);
        continue;
      }
      for (int64_t r = first; r <= last; ++r) {
        Box x{r * blockM + shift, std::min(e.nq, r * blockM + blockM) - 1 + shift, k0, k1};
        TileClass cls = classifyBand(f, x);
        if (cls == TileClass::Empty)
          continue;
        ++(cls == TileClass::Full ? t.full : t.partial);
        t.computedPairs += x.area();
      }
    }
    t.allowedPairs = g.countAllowed(Rect{0, e.nq, 0, e.nk});
  } else {
    for (int64_t c = 0; c < t.colTiles; ++c) {
      for (int64_t i = colOffsets_[static_cast<size_t>(c)];
           i < colOffsets_[static_cast<size_t>(c) + 1]; ++i) {
        const ColumnTile &tile = tiles_[static_cast<size_t>(i)];
        Rect rect{tile.rowTile * blockM, std::min(e.nq, tile.rowTile * blockM + blockM), c * blockN,
                  std::min(e.nk, c * blockN + blockN)};
        t.computedPairs += rect.area();
        if (tile.cls == TileClass::Full) {
          ++t.full;
          t.allowedPairs += rect.area();
        } else {
          ++t.partial;
          t.allowedPairs += g.countAllowed(rect);
        }
      }
    }
  }
  t.skipped = t.rowTiles * t.colTiles - t.full - t.partial;
  return t;
}

} // namespace attnc::mask
