//===- ScheduleTableTest.cpp - Launch-time column tables vs brute force ---===//
//
// The backward's transposed (column) schedule table that the runtime builds
// next to the forward table (runtime/lib/Schedule.h), against the brute-force
// predicate: per kv tile exactly the query tiles that see it, ascending, the
// class of each, and bit offsets that point at forward-layout bits equal to
// the mask; and both tables' heaviest-first launch orders (a stable sort of
// the tiles by descending length). Also the CPU kernels' closed form of the
// same columns for banded masks (attnc_cpu.h's bandRowTiles and bandTile).
//
//===----------------------------------------------------------------------===//

#include "RandomMasks.h"
#include "Schedule.h"

#include "attnc/Mask/Tiles.h"
#include "attnc_cpu.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <sstream>

using namespace attnc;
using namespace attnc::mask;
using namespace attnc::mask::testing;

namespace {

/// Tile sides of the backward kernels' range, odd ones included; those past
/// 64 keys give two words per bit row.
constexpr int64_t kSides[] = {16, 17, 31, 48, 64, 80, 100, 127, 128};
constexpr int64_t kNumSides = std::size(kSides);

std::string describe(const Mask &mask, const Extent &e, int64_t blockM, int64_t blockN) {
  std::ostringstream what;
  what << toString(mask) << " nq=" << e.nq << " nk=" << e.nk << " tile=" << blockM << "x" << blockN;
  if (e.runtimeTokens) {
    what << " runtime=[";
    for (int64_t t : *e.runtimeTokens)
      what << t << ",";
    what << "]";
  }
  return what.str();
}

/// Checks a launch order against its CSR offsets: a permutation of the rows,
/// non-increasing in length, and rows of equal length in ascending index
/// (the sort is stable).
void expectHeaviestFirst(const std::vector<int64_t> &offsets, const std::vector<int64_t> &order) {
  const int64_t rows = static_cast<int64_t>(offsets.size()) - 1;
  ASSERT_EQ(static_cast<int64_t>(order.size()), rows);
  std::vector<bool> seen(static_cast<size_t>(rows), false);
  for (int64_t r : order) {
    ASSERT_GE(r, 0);
    ASSERT_LT(r, rows);
    ASSERT_FALSE(seen[static_cast<size_t>(r)]) << "row " << r << " listed twice";
    seen[static_cast<size_t>(r)] = true;
  }
  auto length = [&](int64_t r) {
    return offsets[static_cast<size_t>(r) + 1] - offsets[static_cast<size_t>(r)];
  };
  for (size_t i = 1; i < order.size(); ++i) {
    const int64_t before = order[i - 1], after = order[i];
    ASSERT_GE(length(before), length(after)) << "rows " << before << ", " << after;
    if (length(before) == length(after)) {
      ASSERT_LT(before, after) << "equal rows out of index order";
    }
  }
}

/// Checks the column table of `mask` against the brute force, entry by
/// entry and bit by bit, and against the forward table it transposes; and
/// both launch orders.
void expectColumnsMatchBruteForce(const Mask &mask, const Extent &e, int64_t blockM,
                                  int64_t blockN) {
  SCOPED_TRACE(describe(mask, e, blockM, blockN));
  const Plane plane(mask, e);
  const runtime::ScheduleTable table =
      runtime::buildScheduleTable(canonicalize(mask), e, blockM, blockN);
  const int64_t rowTiles = (e.nq + blockM - 1) / blockM, colTiles = (e.nk + blockN - 1) / blockN;
  const size_t entries = table.colTiles.size();

  // The view: the column arrays, the forward table's bits.
  const attnc_schedule_table rows = table.view(), cols = table.columnsView();
  ASSERT_EQ(cols.row_offsets, table.columnOffsets.data());
  ASSERT_EQ(cols.col_tiles, table.columnRowTiles.data());
  ASSERT_EQ(cols.full, table.columnFull.data());
  ASSERT_EQ(cols.bit_offsets, table.columnBitOffsets.data());
  ASSERT_EQ(cols.bits, rows.bits);
  ASSERT_EQ(cols.words_per_row, rows.words_per_row);
  ASSERT_EQ(rows.row_order, table.rowOrder.data());
  ASSERT_EQ(cols.row_order, table.columnOrder.data());
  ASSERT_EQ(table.rowOffsets.size(), static_cast<size_t>(rowTiles) + 1);
  expectHeaviestFirst(table.rowOffsets, table.rowOrder);
  expectHeaviestFirst(table.columnOffsets, table.columnOrder);
  if (::testing::Test::HasFatalFailure())
    return;

  ASSERT_EQ(table.columnOffsets.size(), static_cast<size_t>(colTiles) + 1);
  ASSERT_EQ(table.columnOffsets.front(), 0);
  ASSERT_EQ(table.columnOffsets.back(), static_cast<int64_t>(entries));
  ASSERT_EQ(table.columnRowTiles.size(), entries);
  ASSERT_EQ(table.columnFull.size(), entries);
  ASSERT_EQ(table.columnBitOffsets.size(), entries);

  const int64_t words = table.wordsPerRow;
  for (int64_t kt = 0; kt < colTiles; ++kt) {
    const int64_t col0 = kt * blockN, col1 = std::min(e.nk, col0 + blockN);
    int64_t entry = table.columnOffsets[static_cast<size_t>(kt)];
    const int64_t end = table.columnOffsets[static_cast<size_t>(kt) + 1];
    for (int64_t qt = 0; qt < rowTiles; ++qt) {
      const Rect rect{qt * blockM, std::min(e.nq, qt * blockM + blockM), col0, col1};
      const TileClass cls = expectedClass(plane.count(rect), rect);
      if (cls == TileClass::Empty) {
        ASSERT_TRUE(entry == end || table.columnRowTiles[static_cast<size_t>(entry)] != qt)
            << "empty tile " << qt << "," << kt << " listed";
        continue;
      }
      ASSERT_LT(entry, end) << "tile " << qt << "," << kt << " missing";
      const auto at = static_cast<size_t>(entry++);
      ASSERT_EQ(table.columnRowTiles[at], qt) << "tile " << qt << "," << kt << " missing";
      ASSERT_EQ(table.columnFull[at], cls == TileClass::Full ? 1 : 0) << qt << "," << kt;

      // The forward entry of the same tile has the same class and bits.
      const auto first = table.colTiles.begin() + table.rowOffsets[static_cast<size_t>(qt)];
      const auto last = table.colTiles.begin() + table.rowOffsets[static_cast<size_t>(qt) + 1];
      const auto forward = std::lower_bound(first, last, kt);
      ASSERT_TRUE(forward != last && *forward == kt) << "tile " << qt << "," << kt;
      const auto f = static_cast<size_t>(forward - table.colTiles.begin());
      ASSERT_EQ(table.columnFull[at], table.full[f]) << qt << "," << kt;
      ASSERT_EQ(table.columnBitOffsets[at], table.bitOffsets[f]) << qt << "," << kt;

      const int64_t offset = table.columnBitOffsets[at];
      if (cls == TileClass::Full) {
        ASSERT_EQ(offset, -1) << qt << "," << kt;
        continue;
      }
      ASSERT_GE(offset, 0) << qt << "," << kt;
      ASSERT_LE(static_cast<size_t>(offset + blockM * words), table.bits.size());
      // BLOCK_M query rows of `words` words: bit c of row r is query row
      // qt * BLOCK_M + r and key kt * BLOCK_N + c; zero past nq and nk.
      for (int64_t r = 0; r < blockM; ++r)
        for (int64_t c = 0; c < blockN; ++c) {
          const uint64_t word = cols.bits[offset + r * words + c / 64];
          const bool set = (word >> (c % 64)) & 1;
          const int64_t i = qt * blockM + r, k = kt * blockN + c;
          const bool want = i < e.nq && k < e.nk && allowedIn(plane, i, k);
          ASSERT_EQ(set, want) << "row " << i << " key " << k;
        }
    }
    ASSERT_EQ(entry, end) << "kv tile " << kt << " lists extra tiles";
  }
}

TEST(ScheduleColumns, GlobalTokenCross) {
  // global{2} over 6 x 6 tokens, 2 x 2 tiles: forward entries (0, 1), (1, 0),
  // (1, 1), (1, 2), (2, 1), all partial, with bits at words 0, 2, 4, 6, 8.
  std::vector<int64_t> none;
  const Extent e{6, 6, &none};
  runtime::ScheduleTable t = runtime::buildScheduleTable(Mask::globalTokens({2}), e, 2, 2);
  EXPECT_EQ(t.bitOffsets, (std::vector<int64_t>{0, 2, 4, 6, 8}));
  EXPECT_EQ(t.columnOffsets, (std::vector<int64_t>{0, 1, 4, 5}));
  EXPECT_EQ(t.columnRowTiles, (std::vector<int64_t>{1, 0, 1, 2, 1}));
  EXPECT_EQ(t.columnFull, (std::vector<uint8_t>{0, 0, 0, 0, 0}));
  EXPECT_EQ(t.columnBitOffsets, (std::vector<int64_t>{2, 0, 4, 8, 6}));
  // The global row's tile (3 entries) and column's tile go first.
  EXPECT_EQ(t.rowOrder, (std::vector<int64_t>{1, 0, 2}));
  EXPECT_EQ(t.columnOrder, (std::vector<int64_t>{1, 0, 2}));
  expectColumnsMatchBruteForce(Mask::globalTokens({2}), e, 2, 2);
}

TEST(ScheduleColumns, FullTilesHaveNoBits) {
  // causal over 4 x 4 tokens, 2 x 2 tiles: kv tile 0 is seen by query tiles
  // 0 (partial, the forward's first bits) and 1 (full).
  std::vector<int64_t> none;
  runtime::ScheduleTable t = runtime::buildScheduleTable(Mask::causal(), Extent{4, 4, &none}, 2, 2);
  EXPECT_EQ(t.columnOffsets, (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ(t.columnRowTiles, (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(t.columnFull, (std::vector<uint8_t>{0, 1, 0}));
  EXPECT_EQ(t.columnBitOffsets, (std::vector<int64_t>{0, -1, 2}));
}

TEST(ScheduleColumns, DegenerateExtents) {
  std::vector<int64_t> none;
  for (Extent e : {Extent{0, 5, &none}, Extent{5, 0, &none}}) {
    runtime::ScheduleTable t = runtime::buildScheduleTable(Mask::globalTokens({1}), e, 16, 16);
    EXPECT_EQ(t.columnOffsets, (std::vector<int64_t>{0}));
    EXPECT_TRUE(t.columnRowTiles.empty());
    EXPECT_TRUE(t.columnFull.empty());
    EXPECT_TRUE(t.columnBitOffsets.empty());
    // No tiles on either side (as the offsets say), so nothing to order.
    EXPECT_EQ(t.rowOrder.size() + 1, t.rowOffsets.size());
    EXPECT_TRUE(t.columnOrder.empty());
  }
}

TEST(ScheduleOrder, HeaviestFirstIsStable) {
  // Lengths 2, 0, 3, 2, 1, 3: the two 3s, then the two 2s, each pair in
  // ascending index, then 1 and 0.
  EXPECT_EQ(runtime::heaviestFirstOrder({0, 2, 2, 5, 7, 8, 11}),
            (std::vector<int64_t>{2, 5, 0, 3, 4, 1}));
  EXPECT_EQ(runtime::heaviestFirstOrder({0, 0, 0, 0}), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_TRUE(runtime::heaviestFirstOrder({0}).empty());
  EXPECT_TRUE(runtime::heaviestFirstOrder({}).empty());
}

TEST(ScheduleOrder, GlobalBlockFirst) {
  // A BigBird-like layout over 8 blocks of 16 whose global block is the last
  // one: block row 7 sees every block, every row sees block 7, and row r < 7
  // also sees r and r + 1. With 16 x 16 tiles, query tile 7 visits 8 kv
  // tiles, tiles 0..5 visit 3 ({r, r + 1, 7}), tile 6 visits 2 ({6, 7}); kv
  // tile 7 is seen by 8 query tiles, tiles 1..6 by 3 ({c - 1, c, 7}), tile 0
  // by 2 ({0, 7}).
  const int64_t blocks = 8, side = 16, global = blocks - 1;
  std::vector<std::vector<int64_t>> layout(blocks);
  for (int64_t r = 0; r < blocks; ++r) {
    std::vector<int64_t> &row = layout[static_cast<size_t>(r)];
    if (r == global) {
      for (int64_t c = 0; c < blocks; ++c)
        row.push_back(c);
      continue;
    }
    row.push_back(r);
    if (r + 1 < global)
      row.push_back(r + 1);
    row.push_back(global);
  }
  std::vector<int64_t> none;
  const Extent e{blocks * side, blocks * side, &none};
  const runtime::ScheduleTable t =
      runtime::buildScheduleTable(canonicalize(Mask::blockSparse(side, layout)), e, side, side);
  EXPECT_EQ(t.rowOrder, (std::vector<int64_t>{7, 0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(t.columnOrder, (std::vector<int64_t>{7, 1, 2, 3, 4, 5, 6, 0}));
  expectColumnsMatchBruteForce(Mask::blockSparse(side, layout), e, side, side);
}

TEST(ScheduleColumns, MatchBruteForce) {
  // Random specs of every family and composition, 1 to 3000 tokens a side
  // with nq != nk, runtime tokens, odd and even tiles from 16 to 128.
  SpecGen gen(0x7ab1e);
  for (int n = 0; n < 600; ++n) {
    const int64_t nq = gen.logUniform(1, 3000);
    int64_t nk = gen.logUniform(1, 3000);
    if (nk == nq)
      nk = nq == 1 ? 2 : nq - 1;
    const Mask mask = gen.tree(3, std::max(nq, nk));
    std::vector<int64_t> runtime(static_cast<size_t>(gen.uniform(0, 6)));
    for (int64_t &t : runtime)
      t = gen.uniform(-1, nk + 1);
    expectColumnsMatchBruteForce(mask, Extent{nq, nk, &runtime},
                                 kSides[gen.uniform(0, kNumSides - 1)],
                                 kSides[gen.uniform(0, kNumSides - 1)]);
    if (HasFatalFailure())
      return;
  }
}

//===----------------------------------------------------------------------===//
// The CPU kernels' closed form of the columns
//===----------------------------------------------------------------------===//

/// Checks attnc_cpu.h's bandRowTiles and bandTile for every kv tile of a
/// banded mask against the brute force and ColumnSchedule::rowRange.
void expectBandColumnsMatchBruteForce(const Mask &mask, const Extent &e, int64_t blockM,
                                      int64_t blockN) {
  SCOPED_TRACE(describe(mask, e, blockM, blockN));
  const std::optional<Band> band = bandOf(canonicalize(mask));
  ASSERT_TRUE(band.has_value());
  const attnc_cpu::Band cpuBand = attnc_cpu::tightenBand(band->lo, band->hi, band->period);
  const Plane plane(mask, e);
  const BlockSchedule forward(mask, e, blockM, blockN);
  const ColumnSchedule columns(forward);
  ASSERT_TRUE(columns.isClosedForm());
  const int64_t rowTiles = (e.nq + blockM - 1) / blockM, colTiles = (e.nk + blockN - 1) / blockN;
  for (int64_t kt = 0; kt < colTiles; ++kt) {
    int64_t first = 0, last = -1;
    attnc_cpu::bandRowTiles(cpuBand, kt, blockM, blockN, e.nq, e.nk, first, last);
    const auto range = columns.rowRange(kt);
    if (first <= last || range.first <= range.second)
      ASSERT_EQ(std::make_pair(first, last), range) << "kv tile " << kt;
    int64_t seenFirst = rowTiles, seenLast = -1;
    for (int64_t qt = 0; qt < rowTiles; ++qt) {
      const Rect rect{qt * blockM, std::min(e.nq, qt * blockM + blockM), kt * blockN,
                      std::min(e.nk, kt * blockN + blockN)};
      const TileClass cls = expectedClass(plane.count(rect), rect);
      const auto cpuClass = attnc_cpu::bandTile(cpuBand, qt, kt, blockM, blockN, e.nq, e.nk);
      ASSERT_EQ(static_cast<int>(cpuClass), static_cast<int>(cls)) << qt << "," << kt;
      if (cls == TileClass::Empty)
        continue;
      seenFirst = std::min(seenFirst, qt);
      seenLast = qt;
    }
    if (seenLast < 0) {
      if (band->period == 1)
        ASSERT_GT(first, last) << "kv tile " << kt;
      continue;
    }
    // Exact for period 1; a superset of the non-empty tiles otherwise.
    ASSERT_LE(first, seenFirst) << "kv tile " << kt;
    ASSERT_GE(last, seenLast) << "kv tile " << kt;
    if (band->period == 1) {
      ASSERT_EQ(first, seenFirst) << "kv tile " << kt;
      ASSERT_EQ(last, seenLast) << "kv tile " << kt;
    }
  }
}

TEST(ScheduleColumns, BandRowTilesMatchBruteForce) {
  SpecGen gen(0xba4d);
  std::vector<int64_t> none;
  for (int n = 0; n < 400; ++n) {
    const int64_t nq = gen.logUniform(1, 3000), nk = gen.logUniform(1, 3000);
    std::vector<Mask> parts(static_cast<size_t>(gen.uniform(1, 3)));
    for (Mask &part : parts) {
      const int64_t d = gen.chance(40) ? gen.uniform(2, 5) : 1;
      const int64_t side = std::max(nq, nk) / d + 1;
      part = gen.chance(15) ? Mask::causal() : Mask::window(gen.side(side), gen.side(side), d);
    }
    const Mask mask = parts.size() == 1 ? parts.front() : Mask::intersectOf(parts);
    if (!bandOf(canonicalize(mask)))
      continue; // allows nothing
    expectBandColumnsMatchBruteForce(mask, Extent{nq, nk, &none},
                                     kSides[gen.uniform(0, kNumSides - 1)],
                                     kSides[gen.uniform(0, kNumSides - 1)]);
    if (HasFatalFailure())
      return;
  }
}

TEST(ScheduleColumns, BandRowTilesAtExtremes) {
  // Unbounded sides and huge periods: the bounds pass +-2^63 in 128 bits.
  const int64_t inf = kUnbounded;
  const std::vector<Mask> masks = {
      Mask::full(),
      Mask::causal(),
      Mask::window(inf, 2, 3),
      Mask::window(3, inf, 2),
      Mask::window(3, 3, int64_t(1) << 40),
      Mask::window(2, -1),
      Mask::window(-2, 5),
      // 1 <= p - k <= 2 and (p - k) % 3 == 0: banded, but allows nothing.
      Mask::intersectOf({Mask::window(2, -1), Mask::window(1, 1, 3)}),
      Mask::intersectOf({Mask::window(inf, inf, int64_t(1) << 40), Mask::window(5, 5, 2)}),
  };
  std::vector<int64_t> none;
  for (const Mask &m : masks) {
    expectBandColumnsMatchBruteForce(m, Extent{45, 160, &none}, 16, 17);
    expectBandColumnsMatchBruteForce(m, Extent{161, 30, &none}, 31, 16);
    if (HasFatalFailure())
      return;
  }
}

} // namespace
