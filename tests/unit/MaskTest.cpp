//===- MaskTest.cpp - The mask algebra: predicate, BigBird, canonicalize --===//
//
// Hand-checked predicate values for every kind, the BigBird generator, the
// canonicalization rules one by one, and a randomized property test: over
// random mask trees, canonicalize() preserves the predicate and is idempotent,
// and the prepared Predicate agrees with a naive evaluator written here
// straight from the semantics in ARCHITECTURE.md.
//
//===----------------------------------------------------------------------===//

#include "attnc/Mask/Mask.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

using namespace attnc::mask;

namespace {

/// The allowed keys of query row i, ascending.
std::vector<int64_t> rowKeys(const Mask &m, int64_t nq, int64_t nk, int64_t i,
                             const std::vector<int64_t> *runtime = nullptr) {
  Predicate pred(m, Extent{nq, nk, runtime});
  std::vector<int64_t> keys;
  for (int64_t k = 0; k < nk; ++k)
    if (pred.allowed(i, k))
      keys.push_back(k);
  return keys;
}

std::vector<int64_t> allKeys(int64_t nk) {
  std::vector<int64_t> keys(static_cast<size_t>(nk));
  for (int64_t k = 0; k < nk; ++k)
    keys[static_cast<size_t>(k)] = k;
  return keys;
}

using Keys = std::vector<int64_t>;

//===----------------------------------------------------------------------===//
// Predicate, kind by kind
//===----------------------------------------------------------------------===//

TEST(MaskPredicate, EmptyAndFull) {
  EXPECT_EQ(rowKeys(Mask::empty(), 4, 4, 2), Keys{});
  EXPECT_EQ(rowKeys(Mask::full(), 4, 4, 2), allKeys(4));
  // Full allows rows with p < 0 too.
  EXPECT_EQ(rowKeys(Mask::full(), 6, 3, 0), allKeys(3));
}

TEST(MaskPredicate, WindowWithDilation) {
  // window{2, 1, 2}: -2 <= p - k <= 4, p - k even.
  Mask w = Mask::window(2, 1, 2);
  EXPECT_EQ(rowKeys(w, 8, 8, 5), (Keys{1, 3, 5, 7}));
  EXPECT_EQ(rowKeys(w, 8, 8, 0), (Keys{0, 2}));
  EXPECT_EQ(rowKeys(w, 8, 8, 7), (Keys{3, 5, 7}));
  // Dilation 1, left only: a sliding window of 3 keys ending at p.
  EXPECT_EQ(rowKeys(Mask::window(2, 0), 8, 8, 5), (Keys{3, 4, 5}));
  EXPECT_EQ(rowKeys(Mask::window(2, 0), 8, 8, 1), (Keys{0, 1}));
  // Right only, dilation 3: k in {p, p+3, p+6}.
  EXPECT_EQ(rowKeys(Mask::window(0, 2, 3), 10, 10, 1), (Keys{1, 4, 7}));
  // A one-sided window that excludes the diagonal: 1 <= p - k <= 2.
  EXPECT_EQ(rowKeys(Mask::window(2, -1), 8, 8, 4), (Keys{2, 3}));
}

TEST(MaskPredicate, WindowBottomRightAlignment) {
  // nq = 4, nk = 2: p = i - 2. window{0, 2}: -2 <= p - k <= 0.
  Mask w = Mask::window(0, 2);
  EXPECT_EQ(rowKeys(w, 4, 2, 0), (Keys{0}));    // p = -2: k = 0 (delta -2)
  EXPECT_EQ(rowKeys(w, 4, 2, 1), (Keys{0, 1})); // p = -1
  EXPECT_EQ(rowKeys(w, 4, 2, 3), (Keys{1}));    // p = 1
  // nq = 5, nk = 3, window{1, 0}: rows with p < 0 are fully masked.
  Mask l = Mask::window(1, 0);
  EXPECT_EQ(rowKeys(l, 5, 3, 1), Keys{});
  EXPECT_EQ(rowKeys(l, 5, 3, 2), (Keys{0}));
  EXPECT_EQ(rowKeys(l, 5, 3, 3), (Keys{0, 1}));
}

TEST(MaskPredicate, CausalFewerQueries) {
  // nq = 3, nk = 5: p = i + 2.
  EXPECT_EQ(rowKeys(Mask::causal(), 3, 5, 0), (Keys{0, 1, 2}));
  EXPECT_EQ(rowKeys(Mask::causal(), 3, 5, 1), (Keys{0, 1, 2, 3}));
  EXPECT_EQ(rowKeys(Mask::causal(), 3, 5, 2), allKeys(5));
}

TEST(MaskPredicate, CausalMoreQueries) {
  // nq = 5, nk = 3: p = i - 2; rows 0 and 1 are fully masked.
  EXPECT_EQ(rowKeys(Mask::causal(), 5, 3, 0), Keys{});
  EXPECT_EQ(rowKeys(Mask::causal(), 5, 3, 1), Keys{});
  EXPECT_EQ(rowKeys(Mask::causal(), 5, 3, 2), (Keys{0}));
  EXPECT_EQ(rowKeys(Mask::causal(), 5, 3, 4), (Keys{0, 1, 2}));
  EXPECT_EQ(queryPosition(0, Extent{5, 3, nullptr}), -2);
}

TEST(MaskPredicate, GlobalTokensSymmetric) {
  // nq = 3, nk = 8: p = i + 5. Row 0 is token 5 itself: it sees every key.
  Mask g = Mask::globalTokens({5, 0});
  EXPECT_EQ(rowKeys(g, 3, 8, 0), allKeys(8));
  EXPECT_EQ(rowKeys(g, 3, 8, 1), (Keys{0, 5}));
  // nq = 6, nk = 4: p = i - 2; p = -2 is not token... and p < 0 never global.
  Mask h = Mask::globalTokens({0, 2});
  EXPECT_EQ(rowKeys(h, 6, 4, 0), (Keys{0, 2}));
  EXPECT_EQ(rowKeys(h, 6, 4, 2), allKeys(4));   // p = 0
  EXPECT_EQ(rowKeys(h, 6, 4, 3), (Keys{0, 2})); // p = 1
  EXPECT_EQ(rowKeys(h, 6, 4, 4), allKeys(4));   // p = 2
  // A negative token never makes a row with that (negative) position global.
  EXPECT_EQ(rowKeys(Mask::globalTokens({-2}), 6, 4, 0), Keys{});
  // Duplicates and disorder in the raw list do not matter.
  EXPECT_EQ(rowKeys(Mask::globalTokens({3, 1, 3}), 5, 5, 0), (Keys{1, 3}));
}

TEST(MaskPredicate, GlobalRanges) {
  Mask g = Mask::globalRanges({{1, 3}});
  EXPECT_EQ(rowKeys(g, 5, 5, 0), (Keys{1, 2}));
  EXPECT_EQ(rowKeys(g, 5, 5, 1), allKeys(5));
  EXPECT_EQ(rowKeys(g, 5, 5, 2), allKeys(5));
  EXPECT_EQ(rowKeys(g, 5, 5, 3), (Keys{1, 2}));
  // Unsorted, overlapping and empty ranges.
  Mask u = Mask::globalRanges({{4, 6}, {0, 1}, {5, 7}, {3, 3}});
  EXPECT_EQ(rowKeys(u, 8, 8, 1), (Keys{0, 4, 5, 6}));
  EXPECT_EQ(rowKeys(u, 8, 8, 3), (Keys{0, 4, 5, 6}));
  EXPECT_EQ(rowKeys(u, 8, 8, 6), allKeys(8));
  // A range over negative positions: p = -2 is never global.
  EXPECT_EQ(rowKeys(Mask::globalRanges({{-5, 1}}), 6, 4, 0), (Keys{0}));
}

TEST(MaskPredicate, GlobalStride) {
  // stride 3, offset 1: tokens 1, 4, 7.
  Mask g = Mask::globalStride(3, 1);
  EXPECT_EQ(rowKeys(g, 8, 8, 0), (Keys{1, 4, 7}));
  EXPECT_EQ(rowKeys(g, 8, 8, 4), allKeys(8));
  EXPECT_EQ(rowKeys(g, 8, 8, 5), (Keys{1, 4, 7}));
  // Tokens below the offset are not global.
  EXPECT_EQ(rowKeys(Mask::globalStride(2, 3), 8, 8, 0), (Keys{3, 5, 7}));
  EXPECT_EQ(rowKeys(Mask::globalStride(2, 3), 8, 8, 1), (Keys{3, 5, 7}));
  // offset -2 is the class of 1; row 0 has p = -2 (nq = 10, nk = 8), which
  // matches the rule arithmetically but is negative, hence not global.
  Mask n = Mask::globalStride(3, -2);
  EXPECT_EQ(rowKeys(n, 10, 8, 0), (Keys{1, 4, 7}));
  EXPECT_EQ(rowKeys(n, 10, 8, 3), allKeys(8)); // p = 1
}

TEST(MaskPredicate, GlobalRuntime) {
  std::vector<int64_t> tokens = {6, 2};
  Mask g = Mask::globalRuntime(4);
  EXPECT_EQ(rowKeys(g, 8, 8, 0, &tokens), (Keys{2, 6}));
  EXPECT_EQ(rowKeys(g, 8, 8, 2, &tokens), allKeys(8));
  EXPECT_EQ(rowKeys(g, 8, 8, 6, &tokens), allKeys(8));
  // nq = 4, nk = 8: p = i + 4, so row 2 is token 6.
  EXPECT_EQ(rowKeys(g, 4, 8, 2, &tokens), allKeys(8));
  EXPECT_EQ(rowKeys(g, 4, 8, 1, &tokens), (Keys{2, 6}));
  // No list at launch: no runtime tokens.
  EXPECT_EQ(rowKeys(g, 8, 8, 2, nullptr), Keys{});
}

TEST(MaskPredicate, BlockSparse) {
  // block 2, 3 query block rows.
  Mask b = Mask::blockSparse(2, {{0}, {1, 0}, {2}});
  EXPECT_EQ(rowKeys(b, 6, 6, 0), (Keys{0, 1}));
  EXPECT_EQ(rowKeys(b, 6, 6, 1), (Keys{0, 1}));
  EXPECT_EQ(rowKeys(b, 6, 6, 3), (Keys{0, 1, 2, 3}));
  EXPECT_EQ(rowKeys(b, 6, 6, 5), (Keys{4, 5}));
  // Rows past the layout are fully masked.
  EXPECT_EQ(rowKeys(Mask::blockSparse(2, {{0}}), 6, 6, 2), Keys{});
  // nq = 8, nk = 6: p = i - 2; p < 0 is fully masked.
  EXPECT_EQ(rowKeys(b, 8, 6, 1), Keys{});
  EXPECT_EQ(rowKeys(b, 8, 6, 2), (Keys{0, 1}));
  // A partial last key block (nk = 5).
  EXPECT_EQ(rowKeys(b, 5, 5, 4), (Keys{4}));
}

TEST(MaskPredicate, UnionAndIntersect) {
  Mask u = Mask::unionOf({Mask::window(1, 0), Mask::globalTokens({0})});
  EXPECT_EQ(rowKeys(u, 6, 6, 4), (Keys{0, 3, 4}));
  EXPECT_EQ(rowKeys(u, 6, 6, 0), allKeys(6));
  Mask x = Mask::intersectOf({Mask::causal(), Mask::window(2, 2, 2)});
  EXPECT_EQ(rowKeys(x, 6, 6, 4), (Keys{0, 2, 4}));
  EXPECT_EQ(rowKeys(Mask::unionOf({}), 3, 3, 1), Keys{});
  EXPECT_EQ(rowKeys(Mask::intersectOf({}), 3, 3, 1), allKeys(3));
  // The one-shot form agrees.
  EXPECT_TRUE(allowed(x, Extent{6, 6, nullptr}, 4, 2));
  EXPECT_FALSE(allowed(x, Extent{6, 6, nullptr}, 4, 3));
}

TEST(MaskPredicate, Unbounded) {
  // window{inf, 0, 1} is causal on every pair.
  Mask w = Mask::window(kUnbounded, 0);
  for (int64_t nq : {3, 7})
    for (int64_t i = 0; i < nq; ++i)
      EXPECT_EQ(rowKeys(w, nq, 5, i), rowKeys(Mask::causal(), nq, 5, i));
  // window{inf, inf, 3}: p - k divisible by 3.
  EXPECT_EQ(rowKeys(Mask::window(kUnbounded, kUnbounded, 3), 10, 10, 4), (Keys{1, 4, 7}));
  // window{inf, 2, 1}: k <= p + 2.
  EXPECT_EQ(rowKeys(Mask::window(kUnbounded, 2), 8, 8, 3), (Keys{0, 1, 2, 3, 4, 5}));
  // window{1, inf, 1}: k >= p - 1.
  EXPECT_EQ(rowKeys(Mask::window(1, kUnbounded), 8, 8, 5), (Keys{4, 5, 6, 7}));
  // Products far beyond int64 do not overflow.
  Mask huge = Mask::window(kUnbounded, kUnbounded, int64_t(1) << 40);
  EXPECT_EQ(rowKeys(huge, 4, 4, 2), (Keys{2}));
  Mask wide = Mask::window(kUnbounded - 1, kUnbounded - 1, kUnbounded);
  EXPECT_EQ(rowKeys(wide, 4, 4, 2), (Keys{2}));
}

TEST(MaskPredicate, DegenerateParametersAllowNothing) {
  EXPECT_EQ(rowKeys(Mask::window(3, 3, 0), 4, 4, 2), Keys{});
  EXPECT_EQ(rowKeys(Mask::globalStride(0, 0), 4, 4, 2), Keys{});
  EXPECT_EQ(rowKeys(Mask::blockSparse(0, {{0}}), 4, 4, 2), Keys{});
}

//===----------------------------------------------------------------------===//
// BigBird
//===----------------------------------------------------------------------===//

TEST(MaskBigBird, BandByHand) {
  BigBirdParams p;
  p.block = 1;
  p.band = 2; // [r, r + 1]
  EXPECT_EQ(expandBigBird(p, 4), (std::vector<Keys>{{0, 1}, {1, 2}, {2, 3}, {3}}));
  p.band = 3; // [r - 1, r + 1]
  EXPECT_EQ(expandBigBird(p, 4), (std::vector<Keys>{{0, 1}, {0, 1, 2}, {1, 2, 3}, {2, 3}}));
  p.band = 0;
  p.global = 1;
  EXPECT_EQ(expandBigBird(p, 3), (std::vector<Keys>{{0, 1, 2}, {0}, {0}}));
  p.block = 0;
  EXPECT_TRUE(expandBigBird(p, 3).empty());
}

TEST(MaskBigBird, StructureAndDeterminism) {
  BigBirdParams p;
  p.block = 4;
  p.band = 3;
  p.random = 2;
  p.global = 1;
  p.seed = 7;
  const int64_t nk = 77; // 20 blocks, the last one partial
  auto layout = expandBigBird(p, nk);
  ASSERT_EQ(layout.size(), 20u);
  EXPECT_EQ(layout, expandBigBird(p, nk));
  EXPECT_EQ(layout[0], allKeys(20)); // a global row
  for (int64_t r = 1; r < 20; ++r) {
    const Keys &row = layout[static_cast<size_t>(r)];
    EXPECT_TRUE(std::is_sorted(row.begin(), row.end()));
    EXPECT_EQ(std::adjacent_find(row.begin(), row.end()), row.end()) << "row " << r;
    EXPECT_TRUE(std::all_of(row.begin(), row.end(), [](int64_t c) { return c >= 0 && c < 20; }));
    Keys fixed = {0};
    for (int64_t c = std::max<int64_t>(1, r - 1); c <= std::min<int64_t>(19, r + 1); ++c)
      fixed.push_back(c);
    for (int64_t c : fixed)
      EXPECT_TRUE(std::binary_search(row.begin(), row.end(), c)) << "row " << r << " col " << c;
    EXPECT_EQ(row.size(), fixed.size() + 2) << "row " << r;
  }
  // Another seed draws other random columns somewhere.
  BigBirdParams q = p;
  q.seed = 8;
  EXPECT_NE(layout, expandBigBird(q, nk));
}

TEST(MaskBigBird, RandomSaturates) {
  BigBirdParams p;
  p.block = 2;
  p.band = 1;
  p.random = 100;
  for (const Keys &row : expandBigBird(p, 10))
    EXPECT_EQ(row, allKeys(5));
}

TEST(MaskBigBird, PredicateUsesExpandedLayout) {
  BigBirdParams p;
  p.block = 3;
  p.band = 1;
  p.random = 1;
  p.global = 1;
  p.seed = 42;
  for (auto [nq, nk] : {std::pair<int64_t, int64_t>{20, 20}, {11, 20}, {26, 20}}) {
    Predicate bb(Mask::bigBird(p), Extent{nq, nk, nullptr});
    Predicate bs(Mask::blockSparse(3, expandBigBird(p, nk)), Extent{nq, nk, nullptr});
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t k = 0; k < nk; ++k)
        ASSERT_EQ(bb.allowed(i, k), bs.allowed(i, k)) << nq << " " << i << " " << k;
  }
}

//===----------------------------------------------------------------------===//
// Equality, printing, duplicates
//===----------------------------------------------------------------------===//

TEST(MaskBasics, EqualityReadsOnlyMeaningfulFields) {
  Mask c = Mask::causal();
  c.left = 9;
  c.tokens = {1};
  EXPECT_EQ(c, Mask::causal());
  EXPECT_NE(Mask::window(1, 2, 1), Mask::window(1, 2, 2));
  EXPECT_NE(Mask::window(1, 2), Mask::window(2, 1));
  EXPECT_EQ(Mask::globalTokens({1, 2}), Mask::globalTokens({1, 2}));
  EXPECT_NE(Mask::globalTokens({1, 2}), Mask::globalTokens({2, 1}));
  EXPECT_NE(Mask::unionOf({Mask::causal()}), Mask::intersectOf({Mask::causal()}));
  EXPECT_NE(Mask::unionOf({Mask::causal()}), Mask::unionOf({Mask::causal(), Mask::full()}));
  BigBirdParams p;
  p.block = 2;
  BigBirdParams q = p;
  q.seed = 1;
  EXPECT_NE(Mask::bigBird(p), Mask::bigBird(q));
}

TEST(MaskBasics, ToString) {
  EXPECT_EQ(toString(Mask::window(256, 0, 2)), "window(left=256,right=0,dilation=2)");
  EXPECT_EQ(toString(Mask::window(kUnbounded, 3)), "window(left=inf,right=3,dilation=1)");
  EXPECT_EQ(toString(Mask::causal()), "causal");
  EXPECT_EQ(toString(Mask::globalTokens({0, 5})), "global(tokens=[0,5])");
  EXPECT_EQ(toString(Mask::unionOf({Mask::causal(), Mask::globalTokens({0, 5})})),
            "union(causal, global(tokens=[0,5]))");
  EXPECT_EQ(toString(Mask::intersectOf({Mask::empty(), Mask::full()})), "intersect(empty, full)");
  EXPECT_EQ(toString(Mask::globalRanges({{0, 4}, {8, 9}})), "global(ranges=[[0,4),[8,9)])");
  EXPECT_EQ(toString(Mask::globalStride(64, 1)), "global(stride=64,offset=1)");
  EXPECT_EQ(toString(Mask::globalRuntime(16)), "global(runtime,max=16)");
  EXPECT_EQ(toString(Mask::blockSparse(64, {{0}, {0, 1}})),
            "block_sparse(block=64,layout=[[0],[0,1]])");
  BigBirdParams p{64, 3, 2, 1, 9};
  EXPECT_EQ(toString(Mask::bigBird(p)), "bigbird(block=64,band=3,random=2,global=1,seed=9)");
}

TEST(MaskBasics, DuplicateTokens) {
  EXPECT_EQ(duplicateTokens({3, 1, 3, 2, 1, 3}), (Keys{1, 3}));
  EXPECT_EQ(duplicateTokens({4, 2, 0}), Keys{});
  EXPECT_EQ(duplicateTokens({}), Keys{});
}

//===----------------------------------------------------------------------===//
// Canonicalization rules, one by one
//===----------------------------------------------------------------------===//

TEST(MaskCanonicalize, DilationOneWindows) {
  EXPECT_EQ(canonicalize(Mask::window(kUnbounded, kUnbounded)), Mask::full());
  EXPECT_EQ(canonicalize(Mask::window(kUnbounded, 0)), Mask::causal());
  // Dilation > 1 or a finite side keeps the window.
  EXPECT_EQ(canonicalize(Mask::window(kUnbounded, 0, 2)), Mask::window(kUnbounded, 0, 2));
  EXPECT_EQ(canonicalize(Mask::window(kUnbounded, kUnbounded, 2)),
            Mask::window(kUnbounded, kUnbounded, 2));
  EXPECT_EQ(canonicalize(Mask::window(5, 0)), Mask::window(5, 0));
  // An empty interval or an invalid dilation allows nothing.
  EXPECT_EQ(canonicalize(Mask::window(-3, 2)), Mask::empty());
  EXPECT_EQ(canonicalize(Mask::window(2, 2, 0)), Mask::empty());
}

TEST(MaskCanonicalize, Flatten) {
  Mask a = Mask::window(4, 0), b = Mask::globalStride(8, 0), c = Mask::causal();
  Mask nested = Mask::unionOf({a, Mask::unionOf({b, Mask::unionOf({c})})});
  Mask flat = canonicalize(nested);
  ASSERT_EQ(flat.kind, Kind::Union);
  EXPECT_EQ(flat.children.size(), 3u);
  for (const Mask &child : flat.children)
    EXPECT_NE(child.kind, Kind::Union);
  EXPECT_EQ(flat, canonicalize(Mask::unionOf({c, b, a})));
  // A single child is the child.
  EXPECT_EQ(canonicalize(Mask::intersectOf({Mask::intersectOf({b})})), b);
  EXPECT_EQ(canonicalize(Mask::unionOf({a})), a);
}

TEST(MaskCanonicalize, IdentitiesAndAbsorbers) {
  Mask g = Mask::globalTokens({1});
  EXPECT_EQ(canonicalize(Mask::unionOf({g, Mask::full()})), Mask::full());
  EXPECT_EQ(canonicalize(Mask::intersectOf({g, Mask::empty()})), Mask::empty());
  EXPECT_EQ(canonicalize(Mask::unionOf({Mask::empty(), g, Mask::empty()})), g);
  EXPECT_EQ(canonicalize(Mask::intersectOf({Mask::full(), g})), g);
  EXPECT_EQ(canonicalize(Mask::unionOf({})), Mask::empty());
  EXPECT_EQ(canonicalize(Mask::intersectOf({})), Mask::full());
  EXPECT_EQ(canonicalize(Mask::unionOf({Mask::empty()})), Mask::empty());
  // Detected through a window that is full.
  EXPECT_EQ(canonicalize(Mask::unionOf({g, Mask::window(kUnbounded, kUnbounded)})), Mask::full());
  EXPECT_EQ(canonicalize(Mask::globalStride(1, 0)), Mask::full());
}

TEST(MaskCanonicalize, CausalFoldsIntoWindows) {
  EXPECT_EQ(canonicalize(Mask::intersectOf({Mask::causal(), Mask::window(5, 3, 2)})),
            Mask::window(5, 0, 2));
  EXPECT_EQ(canonicalize(Mask::intersectOf({Mask::window(5, 3), Mask::causal()})),
            Mask::window(5, 0));
  // A window already in the past keeps its right side.
  EXPECT_EQ(canonicalize(Mask::intersectOf({Mask::causal(), Mask::window(5, -2)})),
            Mask::window(5, -2));
  EXPECT_EQ(canonicalize(Mask::intersectOf({Mask::causal(), Mask::causal()})), Mask::causal());
  // causal ∩ window{inf, 4} is causal again.
  EXPECT_EQ(canonicalize(Mask::intersectOf({Mask::causal(), Mask::window(kUnbounded, 4)})),
            Mask::causal());
  // A window entirely in the future is empty under causal.
  EXPECT_EQ(canonicalize(Mask::intersectOf({Mask::causal(), Mask::window(-1, 4)})), Mask::empty());
}

TEST(MaskCanonicalize, SameDilationWindowsIntersect) {
  EXPECT_EQ(canonicalize(Mask::intersectOf({Mask::window(5, 3, 2), Mask::window(4, 6, 2)})),
            Mask::window(4, 3, 2));
  // Different dilations stay separate (in the canonical order).
  Mask x = canonicalize(Mask::intersectOf({Mask::window(5, 3, 3), Mask::window(4, 6, 2)}));
  ASSERT_EQ(x.kind, Kind::Intersect);
  EXPECT_EQ(x.children, (std::vector<Mask>{Mask::window(4, 6, 2), Mask::window(5, 3, 3)}));
}

TEST(MaskCanonicalize, DuplicatesDrop) {
  Mask w = Mask::window(3, 1);
  EXPECT_EQ(canonicalize(Mask::unionOf({w, w, w})), w);
  EXPECT_EQ(canonicalize(Mask::unionOf({Mask::causal(), Mask::causal()})), Mask::causal());
  Mask g = Mask::globalStride(4, 1);
  EXPECT_EQ(canonicalize(Mask::intersectOf({g, g})), g);
}

TEST(MaskCanonicalize, Tokens) {
  EXPECT_EQ(canonicalize(Mask::globalTokens({5, 0, 5, 3})), Mask::globalTokens({0, 3, 5}));
  EXPECT_EQ(canonicalize(Mask::globalTokens({})), Mask::empty());
  // Negative tokens are never global.
  EXPECT_EQ(canonicalize(Mask::globalTokens({-1, 2})), Mask::globalTokens({2}));
  // A union merges its token lists into one.
  Mask u = canonicalize(
      Mask::unionOf({Mask::globalTokens({3}), Mask::causal(), Mask::globalTokens({1, 3})}));
  EXPECT_EQ(u, Mask::unionOf({Mask::causal(), Mask::globalTokens({1, 3})}));
  EXPECT_EQ(canonicalize(Mask::unionOf({Mask::globalTokens({4}), Mask::globalTokens({2})})),
            Mask::globalTokens({2, 4}));
}

TEST(MaskCanonicalize, Ranges) {
  EXPECT_EQ(canonicalize(Mask::globalRanges({{5, 7}, {0, 2}, {1, 3}, {4, 4}})),
            Mask::globalRanges({{0, 3}, {5, 7}}));
  EXPECT_EQ(canonicalize(Mask::globalRanges({{2, 4}, {0, 2}})), Mask::globalRanges({{0, 4}}));
  EXPECT_EQ(canonicalize(Mask::globalRanges({{0, 10}, {2, 3}})), Mask::globalRanges({{0, 10}}));
  EXPECT_EQ(canonicalize(Mask::globalRanges({{3, 3}, {5, 1}})), Mask::empty());
  EXPECT_EQ(canonicalize(Mask::globalRanges({{-4, 2}})), Mask::globalRanges({{0, 2}}));
}

TEST(MaskCanonicalize, StrideOffset) {
  EXPECT_EQ(canonicalize(Mask::globalStride(3, -2)), Mask::globalStride(3, 1));
  EXPECT_EQ(canonicalize(Mask::globalStride(3, 7)), Mask::globalStride(3, 7));
  EXPECT_EQ(canonicalize(Mask::globalStride(1, -5)), Mask::full());
  // Stride 1 from a positive offset is not full: tokens below it are local.
  EXPECT_EQ(canonicalize(Mask::globalStride(1, 3)), Mask::globalStride(1, 3));
  EXPECT_EQ(canonicalize(Mask::globalStride(0, 0)), Mask::empty());
}

TEST(MaskCanonicalize, BlockLayout) {
  EXPECT_EQ(canonicalize(Mask::blockSparse(4, {{2, 0, 2}, {}, {1}})),
            Mask::blockSparse(4, {{0, 2}, {}, {1}}));
  EXPECT_EQ(canonicalize(Mask::blockSparse(4, {{}, {}})), Mask::empty());
  EXPECT_EQ(canonicalize(Mask::blockSparse(4, {})), Mask::empty());
  EXPECT_EQ(canonicalize(Mask::blockSparse(0, {{0}})), Mask::empty());
}

TEST(MaskCanonicalize, DeterministicOrder) {
  Mask a = Mask::window(8, 8, 2), b = Mask::globalRuntime(4), c = Mask::globalTokens({0});
  Mask x = canonicalize(Mask::unionOf({a, b, c}));
  Mask y = canonicalize(Mask::unionOf({c, b, a}));
  Mask z = canonicalize(Mask::unionOf({b, Mask::unionOf({c, a})}));
  EXPECT_EQ(x, y);
  EXPECT_EQ(x, z);
  EXPECT_EQ(toString(x), toString(y));
}

//===----------------------------------------------------------------------===//
// Randomized properties
//===----------------------------------------------------------------------===//

/// A naive evaluator written from ARCHITECTURE.md "Semantics", sharing no code
/// with Predicate except expandBigBird.
bool naiveAllowed(const Mask &m, int64_t p, int64_t k, int64_t nk,
                  const std::vector<int64_t> &runtime) {
  auto eitherGlobal = [&](auto isGlobal) { return (p >= 0 && isGlobal(p)) || isGlobal(k); };
  switch (m.kind) {
  case Kind::Empty:
    return false;
  case Kind::Full:
    return true;
  case Kind::Causal:
    return k <= p;
  case Kind::Window: {
    if (m.dilation < 1)
      return false;
    long double delta = p - k, d = m.dilation;
    long double lo = m.right == kUnbounded ? -1e30L : -static_cast<long double>(m.right) * d;
    long double hi = m.left == kUnbounded ? 1e30L : static_cast<long double>(m.left) * d;
    return lo <= delta && delta <= hi && (p - k) % m.dilation == 0;
  }
  case Kind::GlobalTokens:
    return eitherGlobal([&](int64_t t) {
      return std::find(m.tokens.begin(), m.tokens.end(), t) != m.tokens.end();
    });
  case Kind::GlobalRanges:
    return eitherGlobal([&](int64_t t) {
      for (const auto &r : m.ranges)
        if (r.first <= t && t < r.second)
          return true;
      return false;
    });
  case Kind::GlobalStride:
    return eitherGlobal([&](int64_t t) {
      return m.stride >= 1 && t >= m.offset && (t - m.offset) % m.stride == 0;
    });
  case Kind::GlobalRuntime:
    return eitherGlobal(
        [&](int64_t t) { return std::find(runtime.begin(), runtime.end(), t) != runtime.end(); });
  case Kind::BlockSparse:
  case Kind::BigBird: {
    int64_t block = m.kind == Kind::BigBird ? m.bigbird.block : m.block;
    auto layout = m.kind == Kind::BigBird ? expandBigBird(m.bigbird, nk) : m.layout;
    if (p < 0 || block < 1 || p / block >= static_cast<int64_t>(layout.size()))
      return false;
    const auto &row = layout[static_cast<size_t>(p / block)];
    return std::find(row.begin(), row.end(), k / block) != row.end();
  }
  case Kind::Union:
    return std::any_of(m.children.begin(), m.children.end(),
                       [&](const Mask &c) { return naiveAllowed(c, p, k, nk, runtime); });
  case Kind::Intersect:
    return std::all_of(m.children.begin(), m.children.end(),
                       [&](const Mask &c) { return naiveAllowed(c, p, k, nk, runtime); });
  }
  return false;
}

/// Random mask trees of every kind, biased towards the shapes that the
/// canonicalization rules rewrite.
class MaskGen {
public:
  explicit MaskGen(uint64_t seed) : rng_(seed) {}

  int64_t uniform(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  bool chance(int percent) { return uniform(0, 99) < percent; }

  int64_t side() {
    if (chance(15))
      return kUnbounded;
    return chance(10) ? uniform(-3, -1) : uniform(0, 8);
  }

  Mask leaf() {
    int64_t pick = uniform(0, 99);
    if (pick < 3)
      return Mask::empty();
    if (pick < 6)
      return Mask::full();
    if (pick < 16)
      return Mask::causal();
    if (pick < 20)
      return Mask::window(kUnbounded, chance(75) ? 0 : kUnbounded, 1);
    if (pick < 35)
      return Mask::window(side(), side(), chance(5) ? 0 : uniform(1, 3));
    if (pick < 45) {
      std::vector<int64_t> tokens(static_cast<size_t>(uniform(0, 4)));
      for (int64_t &t : tokens)
        t = uniform(-2, 72);
      return Mask::globalTokens(tokens);
    }
    if (pick < 53) {
      // Clustered, so that ranges overlap, touch and contain one another.
      std::vector<std::pair<int64_t, int64_t>> ranges(static_cast<size_t>(uniform(0, 3)));
      int64_t base = uniform(-5, 60);
      for (auto &r : ranges) {
        r.first = base + uniform(0, 8);
        r.second = r.first + uniform(-2, 10);
      }
      return Mask::globalRanges(ranges);
    }
    if (pick < 61)
      return Mask::globalStride(chance(30) ? 1 : uniform(0, 9), uniform(-12, 12));
    if (pick < 69)
      return Mask::globalRuntime(uniform(0, 8));
    if (pick < 85) {
      int64_t block = uniform(0, 16);
      std::vector<std::vector<int64_t>> layout(static_cast<size_t>(uniform(0, 10)));
      for (auto &row : layout) {
        row.resize(static_cast<size_t>(uniform(0, 4)));
        for (int64_t &c : row)
          c = uniform(-1, 10);
      }
      return Mask::blockSparse(block, layout);
    }
    BigBirdParams p;
    p.block = uniform(0, 12);
    p.band = uniform(0, 4);
    p.random = uniform(0, 3);
    p.global = uniform(0, 2);
    p.seed = static_cast<uint64_t>(uniform(0, 1000));
    return Mask::bigBird(p);
  }

  Mask tree(int depth) {
    if (depth == 0 || chance(35))
      return leaf();
    std::vector<Mask> children(static_cast<size_t>(chance(5) ? 0 : uniform(1, 4)));
    for (Mask &c : children)
      c = tree(depth - 1);
    return chance(50) ? Mask::unionOf(children) : Mask::intersectOf(children);
  }

private:
  std::mt19937_64 rng_;
};

/// Checks that canonicalize(m) is idempotent and that m, canonicalize(m) and
/// the naive evaluator agree on every (row, key) pair.
void expectCanonicalEquivalent(const Mask &m, int64_t nq, int64_t nk,
                               const std::vector<int64_t> &runtime) {
  Mask c = canonicalize(m);
  ASSERT_EQ(canonicalize(c), c) << "not idempotent: " << toString(m) << " -> " << toString(c);
  Extent extent{nq, nk, &runtime};
  Predicate original(m, extent), canonical(c, extent);
  for (int64_t i = 0; i < nq; ++i) {
    for (int64_t k = 0; k < nk; ++k) {
      bool want = naiveAllowed(m, queryPosition(i, extent), k, nk, runtime);
      ASSERT_EQ(original.allowed(i, k), want)
          << toString(m) << " nq=" << nq << " nk=" << nk << " i=" << i << " k=" << k;
      ASSERT_EQ(canonical.allowed(i, k), want)
          << toString(m) << " -> " << toString(c) << " nq=" << nq << " nk=" << nk << " i=" << i
          << " k=" << k;
    }
  }
}

/// Random lengths with nq != nk.
std::pair<int64_t, int64_t> randomLengths(MaskGen &gen) {
  int64_t nq = gen.uniform(1, 70), nk = gen.uniform(1, 70);
  if (nq == nk)
    nq = nq == 70 ? 69 : nq + 1;
  return {nq, nk};
}

TEST(MaskProperties, CanonicalizePreservesPredicateAndIsIdempotent) {
  MaskGen gen(20240601);
  for (int n = 0; n < 300; ++n) {
    Mask m = gen.tree(3);
    auto [nq, nk] = randomLengths(gen);
    std::vector<int64_t> runtime(static_cast<size_t>(gen.uniform(0, 5)));
    for (int64_t &t : runtime)
      t = gen.uniform(0, 70);
    expectCanonicalEquivalent(m, nq, nk, runtime);
    if (HasFatalFailure())
      return;
  }
}

TEST(MaskProperties, WindowAlgebra) {
  // Intersections and unions of windows and causal only: the rules that fold
  // them (same-dilation minimum, causal absorbed into right sides).
  MaskGen gen(99);
  for (int n = 0; n < 300; ++n) {
    std::vector<Mask> children(static_cast<size_t>(gen.uniform(2, 4)));
    for (Mask &c : children)
      c = gen.chance(20) ? Mask::causal() : Mask::window(gen.side(), gen.side(), gen.uniform(1, 3));
    Mask m = gen.chance(75) ? Mask::intersectOf(children) : Mask::unionOf(children);
    auto [nq, nk] = randomLengths(gen);
    expectCanonicalEquivalent(m, nq, nk, {});
    if (HasFatalFailure())
      return;
  }
}

TEST(MaskProperties, CanonicalFormIsOrderIndependent) {
  MaskGen gen(77);
  for (int n = 0; n < 100; ++n) {
    std::vector<Mask> children(static_cast<size_t>(gen.uniform(2, 4)));
    for (Mask &c : children)
      c = gen.tree(2);
    Mask u = canonicalize(Mask::unionOf(children));
    Mask x = canonicalize(Mask::intersectOf(children));
    std::reverse(children.begin(), children.end());
    EXPECT_EQ(canonicalize(Mask::unionOf(children)), u);
    EXPECT_EQ(canonicalize(Mask::intersectOf(children)), x);
  }
}

} // namespace

TEST(MaskCanonicalize, KeepsRuntimeCapacity) {
  // The launch-time list's capacity survives canonicalization, alone and in a union.
  Mask alone = canonicalize(Mask::globalRuntime(64));
  ASSERT_EQ(alone.kind, Kind::GlobalRuntime);
  EXPECT_EQ(alone.runtimeMax, 64);
  Mask inUnion = canonicalize(Mask::unionOf({Mask::causal(), Mask::globalRuntime(3)}));
  ASSERT_EQ(inUnion.kind, Kind::Union);
  bool found = false;
  for (const Mask &child : inUnion.children)
    if (child.kind == Kind::GlobalRuntime) {
      found = true;
      EXPECT_EQ(child.runtimeMax, 3);
    }
  EXPECT_TRUE(found);
}
