//===- TilesTest.cpp - Tile geometry and block schedules vs brute force ---===//
//
// The closed forms of banded masks, hand-checked schedules, a randomized
// property test of Geometry and BlockSchedule against the brute-force
// predicate over the whole plane (every mask family and composition, lengths
// 1 to 3000, nq != nk both ways, tiles 16 to 128), the same for the
// transposed (column) schedule of the backward pass, and the speed of the
// closed form and of tables at a million tokens.
//
//===----------------------------------------------------------------------===//

#include "RandomMasks.h"

#include "attnc/Mask/Tiles.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <random>
#include <sstream>

using namespace attnc::mask;
using namespace attnc::mask::testing;

namespace {

using Tiles = std::vector<std::pair<int64_t, TileClass>>;
using Range = std::pair<int64_t, int64_t>;

/// The tiles of query tile r as (column, class) pairs.
Tiles rowOf(const BlockSchedule &s, int64_t r) {
  std::vector<ScheduledTile> tiles;
  s.row(r, tiles);
  Tiles out;
  for (const ScheduledTile &t : tiles)
    out.emplace_back(t.colTile, t.cls);
  return out;
}

/// The tiles of kv tile c of a column schedule as (query tile, class) pairs.
Tiles columnOf(const ColumnSchedule &s, int64_t c) {
  std::vector<ColumnTile> tiles;
  s.column(c, tiles);
  Tiles out;
  for (const ColumnTile &t : tiles)
    out.emplace_back(t.rowTile, t.cls);
  return out;
}

constexpr TileClass F = TileClass::Full;
constexpr TileClass P = TileClass::Partial;

void expectTotals(const TileTotals &t, int64_t full, int64_t partial, int64_t skipped,
                  int64_t computed, int64_t allowed) {
  EXPECT_EQ(t.full, full);
  EXPECT_EQ(t.partial, partial);
  EXPECT_EQ(t.skipped, skipped);
  EXPECT_EQ(t.computedPairs, computed);
  EXPECT_EQ(t.allowedPairs, allowed);
}

//===----------------------------------------------------------------------===//
// bandOf
//===----------------------------------------------------------------------===//

TEST(TilesBand, LeavesAndIntersections) {
  EXPECT_EQ(bandOf(Mask::full()), (Band{-kUnbounded, kUnbounded, 1}));
  EXPECT_EQ(bandOf(Mask::causal()), (Band{0, kUnbounded, 1}));
  EXPECT_EQ(bandOf(Mask::window(3, 5)), (Band{-5, 3, 1}));
  EXPECT_EQ(bandOf(Mask::window(4, 2, 3)), (Band{-6, 12, 3}));
  // A one-sided window that excludes the diagonal: 1 <= p - k <= 2.
  EXPECT_EQ(bandOf(Mask::window(2, -1)), (Band{1, 2, 1}));
  EXPECT_EQ(bandOf(Mask::window(kUnbounded, 0)), (Band{0, kUnbounded, 1}));
  // Unbounded sides saturate, dilated or not.
  EXPECT_EQ(bandOf(Mask::window(kUnbounded, kUnbounded, 2)), (Band{-kUnbounded, kUnbounded, 2}));
  EXPECT_EQ(bandOf(Mask::window(kUnbounded / 2, 0, 4)), (Band{0, kUnbounded, 4}));

  // max lo, min hi, lcm of the periods: hi = min(24, 20), period lcm(3, 2).
  Mask m = Mask::intersectOf({Mask::causal(), Mask::window(8, 8, 3), Mask::window(10, 0, 2)});
  EXPECT_EQ(bandOf(m), (Band{0, 20, 6}));
  EXPECT_EQ(bandOf(canonicalize(m)), (Band{0, 20, 6}));
  EXPECT_EQ(bandOf(Mask::intersectOf({Mask::window(5, 7), Mask::window(9, 2, 2)})),
            (Band{-4, 5, 2}));
}

TEST(TilesBand, NotBanded) {
  EXPECT_FALSE(bandOf(Mask::empty()));
  EXPECT_FALSE(bandOf(Mask::window(3, 3, 0)));
  EXPECT_FALSE(bandOf(Mask::globalTokens({0})));
  EXPECT_FALSE(bandOf(Mask::globalStride(4, 0)));
  EXPECT_FALSE(bandOf(Mask::blockSparse(2, {{0}})));
  EXPECT_FALSE(bandOf(Mask::unionOf({Mask::causal(), Mask::window(2, 2)})));
  EXPECT_FALSE(bandOf(Mask::intersectOf({Mask::causal(), Mask::globalTokens({0})})));
  // The lcm of two primes near 2^32 overflows int64: not banded.
  EXPECT_FALSE(
      bandOf(Mask::intersectOf({Mask::window(1, 1, 4294967291), Mask::window(1, 1, 4294967279)})));
}

//===----------------------------------------------------------------------===//
// Hand-checked schedules
//===----------------------------------------------------------------------===//

TEST(TilesSchedule, CausalSquare) {
  // 4 x 4 tokens, 2 x 2 tiles: the diagonal tiles are partial, (1, 0) full.
  BlockSchedule s(Mask::causal(), Extent{4, 4, nullptr}, 2, 2);
  EXPECT_TRUE(s.isClosedForm());
  EXPECT_TRUE(s.rowOffsets().empty());
  EXPECT_TRUE(s.tiles().empty());
  EXPECT_EQ(s.rowTiles(), 2);
  EXPECT_EQ(s.colTiles(), 2);
  EXPECT_EQ(rowOf(s, 0), (Tiles{{0, P}}));
  EXPECT_EQ(rowOf(s, 1), (Tiles{{0, F}, {1, P}}));
  EXPECT_EQ(s.columnRange(0), Range(0, 0));
  EXPECT_EQ(s.columnRange(1), Range(0, 1));
  expectTotals(s.totals(), /*full=*/1, /*partial=*/2, /*skipped=*/1, /*computed=*/12,
               /*allowed=*/10);
}

TEST(TilesSchedule, CausalFewerQueriesClipped) {
  // nq = 2, nk = 5: rows sit at p = 3, 4; the last column tile is 1 key wide.
  BlockSchedule s(Mask::causal(), Extent{2, 5, nullptr}, 2, 2);
  EXPECT_EQ(rowOf(s, 0), (Tiles{{0, F}, {1, F}, {2, P}}));
  expectTotals(s.totals(), 2, 1, 0, 10, 9);
}

TEST(TilesSchedule, WindowMoreQueries) {
  // nq = 4, nk = 2, window{1, 0}: rows at p = -2, -1 see nothing.
  BlockSchedule s(Mask::window(1, 0), Extent{4, 2, nullptr}, 2, 2);
  EXPECT_EQ(rowOf(s, 0), Tiles{});
  EXPECT_GT(s.columnRange(0).first, s.columnRange(0).second);
  EXPECT_EQ(rowOf(s, 1), (Tiles{{0, P}}));
  expectTotals(s.totals(), 0, 1, 1, 4, 3);
}

TEST(TilesSchedule, DilatedWindowSinglePairs) {
  // window{1, 1, 2}: deltas -2, 0, 2. With 1 x 1 tiles every tile is full or
  // empty, although the band has holes.
  BlockSchedule s(Mask::window(1, 1, 2), Extent{3, 3, nullptr}, 1, 1);
  EXPECT_EQ(rowOf(s, 0), (Tiles{{0, F}, {2, F}}));
  EXPECT_EQ(rowOf(s, 1), (Tiles{{1, F}}));
  EXPECT_EQ(rowOf(s, 2), (Tiles{{0, F}, {2, F}}));
  expectTotals(s.totals(), 5, 0, 4, 5, 5);
  // With 2 x 2 tiles every tile holds an allowed and a masked pair.
  BlockSchedule t(Mask::window(2, 2, 2), Extent{4, 4, nullptr}, 2, 2);
  EXPECT_EQ(rowOf(t, 0), (Tiles{{0, P}, {1, P}}));
  EXPECT_EQ(rowOf(t, 1), (Tiles{{0, P}, {1, P}}));
  expectTotals(t.totals(), 0, 4, 0, 16, 8);
}

TEST(TilesSchedule, GlobalTokenCross) {
  // global{2} over 6 x 6 tokens, 2 x 2 tiles: row 2 and column 2 light up.
  BlockSchedule s(Mask::globalTokens({2}), Extent{6, 6, nullptr}, 2, 2);
  EXPECT_FALSE(s.isClosedForm());
  EXPECT_EQ(rowOf(s, 0), (Tiles{{1, P}}));
  EXPECT_EQ(rowOf(s, 1), (Tiles{{0, P}, {1, P}, {2, P}}));
  EXPECT_EQ(rowOf(s, 2), (Tiles{{1, P}}));
  EXPECT_EQ(s.rowOffsets(), (std::vector<int64_t>{0, 1, 4, 5}));
  EXPECT_EQ(s.columnRange(1), Range(0, 2));
  expectTotals(s.totals(), 0, 5, 4, 20, 11);
  std::vector<int64_t> candidates;
  s.geometry().candidateColumnTiles(0, 2, 2, candidates);
  EXPECT_EQ(candidates, (std::vector<int64_t>{1}));
  s.geometry().candidateColumnTiles(2, 4, 2, candidates);
  EXPECT_EQ(candidates, (std::vector<int64_t>{0, 1, 2}));
}

TEST(TilesSchedule, BlockSparseShifted) {
  // block 2, layout [[0], [1]], nq = 3, nk = 4: rows at p = 1, 2, 3 straddle
  // the block rows.
  BlockSchedule s(Mask::blockSparse(2, {{0}, {1}}), Extent{3, 4, nullptr}, 2, 2);
  EXPECT_EQ(rowOf(s, 0), (Tiles{{0, P}, {1, P}}));
  EXPECT_EQ(rowOf(s, 1), (Tiles{{1, F}}));
  expectTotals(s.totals(), 1, 2, 1, 10, 6);
}

TEST(TilesSchedule, SmallLongformer) {
  // union[window{1, 1}, global{0}], 4 x 4 tokens, 2 x 2 tiles.
  Mask m = Mask::unionOf({Mask::window(1, 1), Mask::globalTokens({0})});
  BlockSchedule s(m, Extent{4, 4, nullptr}, 2, 2);
  EXPECT_EQ(rowOf(s, 0), (Tiles{{0, F}, {1, P}}));
  EXPECT_EQ(rowOf(s, 1), (Tiles{{0, P}, {1, F}}));
  expectTotals(s.totals(), 2, 2, 0, 16, 14);
  EXPECT_EQ(s.geometry().countRow(3, 0, 4), 3);
  EXPECT_EQ(s.geometry().countRow(0, 1, 3), 2);
}

TEST(TilesColumns, CausalSquare) {
  // The transpose of TilesSchedule.CausalSquare: kv tile 0 is seen by query
  // tiles 0 (partial) and 1 (full), kv tile 1 by query tile 1 (partial).
  BlockSchedule s(Mask::causal(), Extent{4, 4, nullptr}, 2, 2);
  ColumnSchedule c(s);
  EXPECT_TRUE(c.isClosedForm());
  EXPECT_TRUE(c.colOffsets().empty());
  EXPECT_EQ(columnOf(c, 0), (Tiles{{0, P}, {1, F}}));
  EXPECT_EQ(columnOf(c, 1), (Tiles{{1, P}}));
  EXPECT_EQ(columnOf(c, 2), Tiles{});
  EXPECT_EQ(c.rowRange(0), Range(0, 1));
  EXPECT_EQ(c.rowRange(1), Range(1, 1));
  expectTotals(c.totals(), 1, 2, 1, 12, 10);
}

TEST(TilesColumns, WindowMoreQueries) {
  // nq = 4, nk = 2, window{1, 0}: rows 2, 3 sit at p = 0, 1; keys 0, 1 are
  // seen by query tile 1 only.
  BlockSchedule s(Mask::window(1, 0), Extent{4, 2, nullptr}, 2, 2);
  ColumnSchedule c(s);
  EXPECT_EQ(columnOf(c, 0), (Tiles{{1, P}}));
  EXPECT_EQ(c.rowRange(0), Range(1, 1));
  expectTotals(c.totals(), 0, 1, 1, 4, 3);
}

TEST(TilesColumns, DilatedWindowWithHoles) {
  // window{1, 1, 2} over 3 x 3 tokens with 1 x 1 tiles: key 1 is seen by
  // query 1 only, although the band's row range [0, 2] covers all three.
  BlockSchedule s(Mask::window(1, 1, 2), Extent{3, 3, nullptr}, 1, 1);
  ColumnSchedule c(s);
  EXPECT_EQ(columnOf(c, 0), (Tiles{{0, F}, {2, F}}));
  EXPECT_EQ(columnOf(c, 1), (Tiles{{1, F}}));
  EXPECT_EQ(c.rowRange(1), Range(0, 2));
  expectTotals(c.totals(), 5, 0, 4, 5, 5);
}

TEST(TilesColumns, GlobalTokenCrossTable) {
  // The transpose of TilesSchedule.GlobalTokenCross: kv tile 1 (key 2) is
  // seen by every query tile; entries point back into the forward table.
  BlockSchedule s(Mask::globalTokens({2}), Extent{6, 6, nullptr}, 2, 2);
  ColumnSchedule c(s);
  EXPECT_FALSE(c.isClosedForm());
  EXPECT_EQ(c.colOffsets(), (std::vector<int64_t>{0, 1, 4, 5}));
  EXPECT_EQ(columnOf(c, 0), (Tiles{{1, P}}));
  EXPECT_EQ(columnOf(c, 1), (Tiles{{0, P}, {1, P}, {2, P}}));
  EXPECT_EQ(columnOf(c, 2), (Tiles{{1, P}}));
  std::vector<int64_t> entries;
  for (const ColumnTile &t : c.tiles())
    entries.push_back(t.entry);
  // Forward entries: (0, 1), (1, 0), (1, 1), (1, 2), (2, 1).
  EXPECT_EQ(entries, (std::vector<int64_t>{1, 0, 2, 4, 3}));
  EXPECT_EQ(c.rowRange(1), Range(0, 2));
  expectTotals(c.totals(), 0, 5, 4, 20, 11);
}

TEST(TilesColumns, TransposeTiles) {
  // Rows of columns {0, 2}, {}, {1, 2}: the second row is empty, column 3 too.
  TransposedTiles t = transposeTiles({0, 2, 2, 4}, {0, 2, 1, 2}, 4);
  EXPECT_EQ(t.offsets, (std::vector<int64_t>{0, 1, 2, 4, 4}));
  EXPECT_EQ(t.rows, (std::vector<int64_t>{0, 2, 0, 2}));
  EXPECT_EQ(t.entries, (std::vector<int64_t>{0, 2, 1, 3}));
  TransposedTiles none = transposeTiles({0}, {}, 0);
  EXPECT_EQ(none.offsets, (std::vector<int64_t>{0}));
  EXPECT_TRUE(none.rows.empty());
}

TEST(TilesSchedule, DegenerateExtents) {
  for (Extent e : {Extent{0, 5, nullptr}, Extent{5, 0, nullptr}}) {
    BlockSchedule s(Mask::causal(), e, 16, 16);
    EXPECT_EQ(s.rowTiles(), 0);
    EXPECT_EQ(s.colTiles(), 0);
    expectTotals(s.totals(), 0, 0, 0, 0, 0);
    ColumnSchedule c(s);
    EXPECT_EQ(columnOf(c, 0), Tiles{});
    EXPECT_GT(c.rowRange(0).first, c.rowRange(0).second);
    expectTotals(c.totals(), 0, 0, 0, 0, 0);
    BlockSchedule table(Mask::globalTokens({1}), e, 16, 16);
    ColumnSchedule t(table);
    EXPECT_EQ(t.colOffsets(), (std::vector<int64_t>{0}));
    expectTotals(t.totals(), 0, 0, 0, 0, 0);
  }
  // Runtime global tokens that are not given: no global token.
  BlockSchedule r(Mask::globalRuntime(4), Extent{40, 40, nullptr}, 16, 16);
  expectTotals(r.totals(), 0, 0, 9, 0, 0);
}

//===----------------------------------------------------------------------===//
// Property test against the brute-force predicate
//===----------------------------------------------------------------------===//

/// Checks the column schedule of `s` tile by tile against the brute force,
/// its row ranges against the listed tiles (exact for bands of period 1),
/// its entries against the forward table, and its totals against `want`.
void checkColumns(const BlockSchedule &s, const Plane &plane, const TileTotals &want) {
  const ColumnSchedule cs(s);
  const Extent &e = s.geometry().extent();
  const int64_t blockM = s.blockM(), blockN = s.blockN();
  const int64_t rowTiles = s.rowTiles(), colTiles = s.colTiles();
  ASSERT_EQ(cs.isClosedForm(), s.isClosedForm());
  ASSERT_EQ(cs.rowTiles(), rowTiles);
  ASSERT_EQ(cs.colTiles(), colTiles);
  if (cs.isClosedForm()) {
    ASSERT_TRUE(cs.colOffsets().empty());
    ASSERT_TRUE(cs.tiles().empty());
  } else {
    ASSERT_EQ(cs.colOffsets().size(), static_cast<size_t>(colTiles) + 1);
    ASSERT_EQ(cs.tiles().size(), s.tiles().size());
  }
  const bool exactRange = cs.isClosedForm() && s.geometry().band()->period == 1;
  std::vector<ColumnTile> column;
  for (int64_t c = 0; c < colTiles; ++c) {
    const int64_t col0 = c * blockN, col1 = std::min(e.nk, col0 + blockN);
    cs.column(c, column);
    size_t next = 0;
    for (int64_t r = 0; r < rowTiles; ++r) {
      const Rect rect{r * blockM, std::min(e.nq, r * blockM + blockM), col0, col1};
      const TileClass cls = expectedClass(plane.count(rect), rect);
      if (cls == TileClass::Empty)
        continue;
      ASSERT_LT(next, column.size()) << "c=" << c << " r=" << r << " not scheduled";
      const ColumnTile &tile = column[next++];
      ASSERT_EQ(tile.rowTile, r) << "c=" << c;
      ASSERT_EQ(tile.cls, cls) << "c=" << c << " r=" << r;
      if (cs.isClosedForm()) {
        ASSERT_EQ(tile.entry, -1) << "c=" << c << " r=" << r;
        continue;
      }
      // The same tile of the forward table.
      ASSERT_GE(tile.entry, s.rowOffsets()[static_cast<size_t>(r)]) << "c=" << c << " r=" << r;
      ASSERT_LT(tile.entry, s.rowOffsets()[static_cast<size_t>(r) + 1]) << "c=" << c << " r=" << r;
      ASSERT_EQ(s.tiles()[static_cast<size_t>(tile.entry)].colTile, c) << "r=" << r;
    }
    ASSERT_EQ(next, column.size()) << "c=" << c << " schedules an empty tile";
    auto [first, last] = cs.rowRange(c);
    if (column.empty()) {
      if (!cs.isClosedForm() || exactRange)
        ASSERT_GT(first, last) << "c=" << c;
    } else if (cs.isClosedForm() && !exactRange) {
      ASSERT_LE(first, column.front().rowTile) << "c=" << c;
      ASSERT_GE(last, column.back().rowTile) << "c=" << c;
    } else {
      ASSERT_EQ(first, column.front().rowTile) << "c=" << c;
      ASSERT_EQ(last, column.back().rowTile) << "c=" << c;
    }
  }
  const TileTotals got = cs.totals();
  ASSERT_EQ(got.rowTiles, want.rowTiles);
  ASSERT_EQ(got.colTiles, want.colTiles);
  ASSERT_EQ(got.full, want.full);
  ASSERT_EQ(got.partial, want.partial);
  ASSERT_EQ(got.skipped, want.skipped);
  ASSERT_EQ(got.computedPairs, want.computedPairs);
  ASSERT_EQ(got.allowedPairs, want.allowedPairs);
}

/// Checks every tile, the schedule, the candidates, the totals, the column
/// schedule, and random rectangles and rows of one spec against the brute
/// force.
void checkSpec(const Mask &mask, const Extent &e, int64_t blockM, int64_t blockN, SpecGen &gen) {
  std::ostringstream what;
  what << toString(mask) << " nq=" << e.nq << " nk=" << e.nk << " tile=" << blockM << "x" << blockN
       << " runtime=[";
  for (int64_t t : *e.runtimeTokens)
    what << t << ",";
  what << "]";
  SCOPED_TRACE(what.str());

  const Plane plane(mask, e);
  const BlockSchedule s(mask, e, blockM, blockN);
  const Geometry &g = s.geometry();
  const int64_t rowTiles = (e.nq + blockM - 1) / blockM, colTiles = (e.nk + blockN - 1) / blockN;
  ASSERT_EQ(s.rowTiles(), rowTiles);
  ASSERT_EQ(s.colTiles(), colTiles);
  ASSERT_EQ(s.isClosedForm(), bandOf(canonicalize(mask)).has_value());
  if (s.isClosedForm()) {
    ASSERT_TRUE(s.rowOffsets().empty());
    ASSERT_TRUE(s.tiles().empty());
  } else {
    ASSERT_EQ(s.rowOffsets().size(), static_cast<size_t>(rowTiles) + 1);
  }

  TileTotals want;
  std::vector<ScheduledTile> row;
  std::vector<int64_t> candidates;
  for (int64_t r = 0; r < rowTiles; ++r) {
    const int64_t row0 = r * blockM, row1 = std::min(e.nq, row0 + blockM);
    s.row(r, row);
    g.candidateColumnTiles(row0, row1, blockN, candidates);
    for (size_t j = 0; j < candidates.size(); ++j) {
      ASSERT_TRUE(candidates[j] >= 0 && candidates[j] < colTiles) << "r=" << r;
      ASSERT_TRUE(j == 0 || candidates[j - 1] < candidates[j]) << "r=" << r;
    }
    size_t next = 0;
    for (int64_t c = 0; c < colTiles; ++c) {
      const Rect rect{row0, row1, c * blockN, std::min(e.nk, c * blockN + blockN)};
      const int64_t count = plane.count(rect);
      const TileClass cls = expectedClass(count, rect);
      ASSERT_EQ(g.classify(rect), cls) << "r=" << r << " c=" << c;
      ASSERT_EQ(g.countAllowed(rect), count) << "r=" << r << " c=" << c;
      if (cls == TileClass::Empty)
        continue;
      ASSERT_LT(next, row.size()) << "r=" << r << " c=" << c << " not scheduled";
      ASSERT_EQ(row[next].colTile, c) << "r=" << r;
      ASSERT_EQ(row[next].cls, cls) << "r=" << r << " c=" << c;
      ++next;
      ASSERT_TRUE(std::binary_search(candidates.begin(), candidates.end(), c))
          << "r=" << r << " c=" << c << " not a candidate";
      ++(cls == TileClass::Full ? want.full : want.partial);
      want.computedPairs += rect.area();
      want.allowedPairs += count;
    }
    ASSERT_EQ(next, row.size()) << "r=" << r << " schedules an empty tile";
    auto [first, last] = s.columnRange(r);
    if (row.empty()) {
      if (!s.isClosedForm())
        ASSERT_GT(first, last) << "r=" << r;
    } else if (s.isClosedForm()) {
      ASSERT_LE(first, row.front().colTile) << "r=" << r;
      ASSERT_GE(last, row.back().colTile) << "r=" << r;
    } else {
      ASSERT_EQ(first, row.front().colTile) << "r=" << r;
      ASSERT_EQ(last, row.back().colTile) << "r=" << r;
    }
  }
  const TileTotals got = s.totals();
  ASSERT_EQ(got.rowTiles, rowTiles);
  ASSERT_EQ(got.colTiles, colTiles);
  ASSERT_EQ(got.full, want.full);
  ASSERT_EQ(got.partial, want.partial);
  ASSERT_EQ(got.skipped, rowTiles * colTiles - want.full - want.partial);
  ASSERT_EQ(got.computedPairs, want.computedPairs);
  ASSERT_EQ(got.allowedPairs, want.allowedPairs);
  ASSERT_EQ(got.allowedPairs, plane.count(Rect{0, e.nq, 0, e.nk}));
  checkColumns(s, plane, got);
  if (::testing::Test::HasFatalFailure())
    return;

  // Arbitrary rectangles, not aligned to tiles, and single rows.
  for (int n = 0; n < 12; ++n) {
    int64_t row0 = gen.uniform(0, e.nq - 1), col0 = gen.uniform(0, e.nk - 1);
    const Rect rect{row0, gen.uniform(row0 + 1, e.nq), col0, gen.uniform(col0 + 1, e.nk)};
    const int64_t count = plane.count(rect);
    ASSERT_EQ(g.classify(rect), expectedClass(count, rect))
        << "rect " << rect.row0 << ".." << rect.row1 << " x " << rect.col0 << ".." << rect.col1;
    ASSERT_EQ(g.countAllowed(rect), count)
        << "rect " << rect.row0 << ".." << rect.row1 << " x " << rect.col0 << ".." << rect.col1;
    const int64_t i = gen.uniform(0, e.nq - 1);
    ASSERT_EQ(g.countRow(i, col0, rect.col1), plane.count(Rect{i, i + 1, col0, rect.col1}))
        << "row " << i << " keys " << col0 << ".." << rect.col1;
  }
}

TEST(TilesProperties, MatchBruteForce) {
  SpecGen gen(20240917);
  const int64_t sides[] = {16, 32, 64, 128};
  for (int n = 0; n < 3000; ++n) {
    // Log-uniform lengths: mostly small planes, some up to 3000 a side.
    const int64_t nq = gen.logUniform(1, 3000), nk = gen.logUniform(1, 3000);
    const Mask mask = gen.tree(3, std::max(nq, nk));
    std::vector<int64_t> runtime(static_cast<size_t>(gen.uniform(0, 6)));
    for (int64_t &t : runtime)
      t = gen.uniform(-1, nk + 1);
    const int64_t blockM = sides[gen.uniform(0, 3)], blockN = sides[gen.uniform(0, 3)];
    checkSpec(mask, Extent{nq, nk, &runtime}, blockM, blockN, gen);
    if (HasFatalFailure())
      return;
  }
}

TEST(TilesProperties, OddTileSizes) {
  // The geometry serves any rectangle (the mask picture uses cells of any
  // size): tiles of 1 to 100 tokens, not powers of two.
  SpecGen gen(424242);
  const int64_t sides[] = {1, 2, 3, 5, 7, 24, 100};
  for (int n = 0; n < 1500; ++n) {
    const int64_t nq = gen.logUniform(1, 600), nk = gen.logUniform(1, 600);
    const Mask mask = gen.tree(3, std::max(nq, nk));
    std::vector<int64_t> runtime(static_cast<size_t>(gen.uniform(0, 6)));
    for (int64_t &t : runtime)
      t = gen.uniform(-1, nk + 1);
    const int64_t blockM = sides[gen.uniform(0, 6)], blockN = sides[gen.uniform(0, 6)];
    checkSpec(mask, Extent{nq, nk, &runtime}, blockM, blockN, gen);
    if (HasFatalFailure())
      return;
  }
}

TEST(TilesProperties, ColumnsWithOddTilesMatchBruteForce) {
  // The backward's tiles: 16 to 128 tokens a side, odd and even, over planes
  // of 1 to 3000 tokens a side with nq != nk (checkSpec checks the columns).
  SpecGen gen(0xc01);
  const int64_t sides[] = {16, 17, 31, 48, 63, 64, 80, 100, 127, 128};
  constexpr int64_t kSides = std::size(sides);
  for (int n = 0; n < 800; ++n) {
    const int64_t nq = gen.logUniform(1, 3000);
    int64_t nk = gen.logUniform(1, 3000);
    if (nk == nq)
      nk = nq == 1 ? 2 : nq - 1;
    const Mask mask = gen.tree(3, std::max(nq, nk));
    std::vector<int64_t> runtime(static_cast<size_t>(gen.uniform(0, 6)));
    for (int64_t &t : runtime)
      t = gen.uniform(-1, nk + 1);
    const int64_t blockM = sides[gen.uniform(0, kSides - 1)];
    const int64_t blockN = sides[gen.uniform(0, kSides - 1)];
    checkSpec(mask, Extent{nq, nk, &runtime}, blockM, blockN, gen);
    if (HasFatalFailure())
      return;
  }
}

TEST(TilesProperties, BandColumnsMatchBruteForce) {
  // Banded masks only (windows, dilated windows, causal and their
  // intersections): the closed form of the columns, rowRange included.
  SpecGen gen(0xba2d);
  const int64_t sides[] = {16, 17, 31, 48, 64, 100, 127, 128};
  constexpr int64_t kSides = std::size(sides);
  std::vector<int64_t> none;
  int banded = 0;
  for (int n = 0; n < 400; ++n) {
    const int64_t nq = gen.logUniform(1, 3000), nk = gen.logUniform(1, 3000);
    std::vector<Mask> parts(static_cast<size_t>(gen.uniform(1, 3)));
    for (Mask &part : parts) {
      const int64_t d = gen.chance(40) ? gen.uniform(2, 5) : 1;
      const int64_t side = std::max(nq, nk) / d + 1;
      part = gen.chance(15) ? Mask::causal() : Mask::window(gen.side(side), gen.side(side), d);
    }
    const Mask mask = parts.size() == 1 ? parts.front() : Mask::intersectOf(parts);
    banded += bandOf(canonicalize(mask)).has_value();
    checkSpec(mask, Extent{nq, nk, &none}, sides[gen.uniform(0, kSides - 1)],
              sides[gen.uniform(0, kSides - 1)], gen);
    if (HasFatalFailure())
      return;
  }
  // Only empty masks (windows that allow no delta) are not banded.
  EXPECT_GT(banded, 300);
}

TEST(TilesProperties, OverflowingPeriods) {
  // Not banded (the lcm overflows), still exact: only the diagonal remains.
  SpecGen gen(5);
  std::vector<int64_t> none;
  Mask m = Mask::intersectOf({Mask::window(1, 1, 4294967291), Mask::window(1, 1, 4294967279)});
  checkSpec(m, Extent{70, 50, &none}, 16, 32, gen);
  BlockSchedule s(m, Extent{64, 64, &none}, 16, 16);
  expectTotals(s.totals(), 0, 4, 12, 4 * 256, 64);
  // Their union, counted by inclusion-exclusion through the same intersection.
  Mask u = Mask::unionOf(
      {Mask::window(1, 1, 4294967291), Mask::window(1, 1, 4294967279), Mask::window(2, 0, 5)});
  checkSpec(u, Extent{90, 70, &none}, 32, 16, gen);
}

TEST(TilesProperties, ExtremeParameters) {
  // Sides, dilations, strides, offsets, tokens and blocks at the ends of
  // int64: the geometry stays exact (and free of overflow under UBSan).
  const int64_t inf = kUnbounded;
  const std::vector<Mask> masks = {
      Mask::window(inf, -inf),
      Mask::window(-inf, inf),
      Mask::window(inf, inf, inf),
      Mask::window(3, 3, int64_t(1) << 40),
      Mask::window(inf, 2, 3),
      Mask::globalStride(inf, 0),
      Mask::globalStride(1, inf),
      Mask::globalStride(3, -inf),
      Mask::globalRanges({{-inf, 2}, {40, inf}}),
      Mask::globalTokens({inf, 3, -inf}),
      Mask::blockSparse(inf, {{0}}),
      Mask::blockSparse(int64_t(1) << 62, {{0, inf}, {0}}),
      Mask::blockSparse(7, {{inf, 0}, {-inf}, {1, 2}}),
      Mask::bigBird(BigBirdParams{inf, 1, 1, 1, 3}),
      Mask::intersectOf({Mask::window(inf, inf, inf), Mask::window(5, 5, 2)}),
      Mask::unionOf({Mask::window(inf, inf, inf), Mask::window(5, 5, 2), Mask::window(inf, 0, 3)}),
      Mask::unionOf({Mask::window(inf, -inf), Mask::globalStride(inf, 7)}),
  };
  SpecGen gen(9);
  std::vector<int64_t> runtime = {inf, -inf, 0};
  for (const Mask &m : masks) {
    checkSpec(m, Extent{45, 60, &runtime}, 16, 32, gen);
    checkSpec(m, Extent{61, 30, &runtime}, 32, 16, gen);
    if (HasFatalFailure())
      return;
  }
}

//===----------------------------------------------------------------------===//
// Speed at a million tokens
//===----------------------------------------------------------------------===//

constexpr int64_t kMillion = 1048576;

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Allowed pairs of window{256, 256} over N x N tokens: 513 keys per row, less
/// 256 + 255 + ... + 1 missing at each end.
constexpr int64_t kWindowAllowed = 513 * kMillion - 256 * 257;

TEST(TilesProperties, RowBitsMatchBruteForce) {
  // The bits the runtime hands kernels for PARTIAL tiles, against the predicate.
  SpecGen gen(0xb175);
  std::vector<int64_t> runtimeTokens = {0, 3, 40};
  for (int spec = 0; spec < 300; ++spec) {
    Extent e{gen.logUniform(1, 200), gen.logUniform(1, 200), &runtimeTokens};
    Mask mask = gen.tree(2, std::max(e.nq, e.nk));
    Geometry g(mask, e);
    Predicate pred(mask, e);
    for (int64_t i = 0; i < e.nq; ++i) {
      int64_t c0 = gen.uniform(0, e.nk - 1), c1 = gen.uniform(c0, e.nk);
      std::vector<uint64_t> bits(static_cast<size_t>((c1 - c0 + 63) / 64 + 1), ~uint64_t{0});
      g.rowBits(i, c0, c1, bits.data());
      for (int64_t k = c0; k < c1; ++k)
        ASSERT_EQ(((bits[(k - c0) / 64] >> ((k - c0) % 64)) & 1) != 0, pred.allowed(i, k))
            << "spec " << spec << " row " << i << " key " << k << ": " << toString(mask);
      // Bits past col1 in the last word are clear.
      if ((c1 - c0) % 64)
        ASSERT_EQ(bits[(c1 - c0) / 64] >> ((c1 - c0) % 64), 0u);
    }
  }
}

TEST(TilesSpeed, Window256AtAMillionTokens) {
  auto start = std::chrono::steady_clock::now();
  BlockSchedule s(Mask::window(256, 256), Extent{kMillion, kMillion, nullptr}, 128, 64);
  TileTotals t = s.totals();
  double seconds = secondsSince(start);
  RecordProperty("seconds", std::to_string(seconds));
  std::printf("window 256 at 2^20 tokens, 128x64 tiles: schedule + totals in %.4f s\n", seconds);
  EXPECT_LT(seconds, 1.0);
  EXPECT_TRUE(s.isClosedForm());

  // Row tile r covers p in [128r, 128r + 127], keys [128r - 256, 128r + 383]:
  // column tiles 2r-4 .. 2r+5 (10), of which 2r-2 .. 2r+3 are full (keys
  // within [p1 - 256, p0 + 256]). Rows 2 .. 8189 are interior: 6 full, 4
  // partial; rows 0 and 8191 have 4 + 2, rows 1 and 8190 have 6 + 2.
  const int64_t interior = 8189 - 2 + 1;
  const int64_t full = interior * 6 + 4 + 6 + 6 + 4;
  const int64_t partial = interior * 4 + 4 * 2;
  EXPECT_EQ(t.rowTiles, 8192);
  EXPECT_EQ(t.colTiles, 16384);
  expectTotals(t, full, partial, 8192 * 16384 - full - partial, (full + partial) * 128 * 64,
               kWindowAllowed);
  EXPECT_EQ(rowOf(s, 1000), (Tiles{{1996, P},
                                   {1997, P},
                                   {1998, F},
                                   {1999, F},
                                   {2000, F},
                                   {2001, F},
                                   {2002, F},
                                   {2003, F},
                                   {2004, P},
                                   {2005, P}}));
  EXPECT_EQ(s.columnRange(1000), Range(1996, 2005));

  // The transpose: kv tile 2000 covers keys [128000, 128063], seen by
  // positions [127744, 128319]: query tiles 998 .. 1002, of which 999 .. 1001
  // are full (positions within [k1 - 256, k0 + 256]).
  start = std::chrono::steady_clock::now();
  ColumnSchedule c(s);
  TileTotals ct = c.totals();
  seconds = secondsSince(start);
  std::printf("window 256 at 2^20 tokens, 128x64 tiles: column totals in %.4f s\n", seconds);
  EXPECT_LT(seconds, 1.0);
  expectTotals(ct, full, partial, 8192 * 16384 - full - partial, (full + partial) * 128 * 64,
               kWindowAllowed);
  EXPECT_EQ(columnOf(c, 2000), (Tiles{{998, P}, {999, F}, {1000, F}, {1001, F}, {1002, P}}));
  EXPECT_EQ(c.rowRange(2000), Range(998, 1002));
}

TEST(TilesSpeed, LongformerAtAMillionTokens) {
  // union[window{256, 256}, global{0}]: the window's tiles, plus all of row
  // tile 0 (token 0 sees every key) and column tile 0 (every query sees key 0).
  Mask m = Mask::unionOf({Mask::window(256, 256), Mask::globalTokens({0})});
  auto start = std::chrono::steady_clock::now();
  BlockSchedule s(m, Extent{kMillion, kMillion, nullptr}, 128, 64);
  TileTotals t = s.totals();
  double seconds = secondsSince(start);
  std::printf("longformer at 2^20 tokens, 128x64 tiles: schedule + totals in %.4f s\n", seconds);
  EXPECT_LT(seconds, 5.0);
  EXPECT_FALSE(s.isClosedForm());

  // The window's 81908 tiles (49148 full), row tile 0's 16384 - 6 others,
  // column tile 0 for row tiles 3 .. 8191. No window tile changes class.
  const int64_t visited = 81908 + (16384 - 6) + (8191 - 3 + 1);
  expectTotals(t, 49148, visited - 49148, 8192 * 16384 - visited, visited * 128 * 64,
               kWindowAllowed + 2 * (kMillion - 257));

  // The transposed table lists the same tiles: kv tile 0 is seen by every
  // query tile, kv tile 1000 by query tile 0 (row 0 only: partial) and the
  // window's 498 .. 502.
  start = std::chrono::steady_clock::now();
  ColumnSchedule c(s);
  TileTotals ct = c.totals();
  seconds = secondsSince(start);
  std::printf("longformer at 2^20 tokens, 128x64 tiles: column table + totals in %.4f s\n",
              seconds);
  EXPECT_LT(seconds, 5.0);
  expectTotals(ct, t.full, t.partial, t.skipped, t.computedPairs, t.allowedPairs);
  EXPECT_EQ(c.rowRange(0), Range(0, 8191));
  EXPECT_EQ(columnOf(c, 1000), (Tiles{{0, P}, {498, P}, {499, F}, {500, F}, {501, F}, {502, P}}));
}

} // namespace
