//===- Schedule.cpp - Launch-time block schedule tables -------------------===//
//
// The tile list comes from mask::BlockSchedule (exact classes, no empty
// tile); the bits of a PARTIAL tile row by row from its Geometry (rowBits),
// which walks spans of allowed keys rather than testing every pair. The
// column table is the finished row table transposed (mask::transposeTiles),
// so that both list the same tiles and share one copy of the bits. Both get
// a longest-processing-time-first launch order (heaviestFirstOrder): blocks
// are dispatched in grid order, so the rows with the most tiles go first.
//
//===----------------------------------------------------------------------===//

#include "Schedule.h"

#include "attnc/Mask/Tiles.h"

#include <algorithm>

namespace attnc::runtime {

attnc_schedule_table ScheduleTable::view() const {
  attnc_schedule_table table;
  table.row_offsets = rowOffsets.data();
  table.col_tiles = colTiles.data();
  table.full = full.data();
  table.bit_offsets = bitOffsets.data();
  table.bits = bits.data();
  table.words_per_row = wordsPerRow;
  table.row_order = rowOrder.data();
  return table;
}

attnc_schedule_table ScheduleTable::columnsView() const {
  attnc_schedule_table table = view();
  table.row_offsets = columnOffsets.data();
  table.col_tiles = columnRowTiles.data();
  table.full = columnFull.data();
  table.bit_offsets = columnBitOffsets.data();
  table.row_order = columnOrder.data();
  return table;
}

std::vector<int64_t> heaviestFirstOrder(const std::vector<int64_t> &offsets) {
  const int64_t rows = offsets.empty() ? 0 : static_cast<int64_t>(offsets.size()) - 1;
  std::vector<int64_t> order(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    order[static_cast<size_t>(r)] = r;
  auto length = [&](int64_t r) {
    return offsets[static_cast<size_t>(r) + 1] - offsets[static_cast<size_t>(r)];
  };
  // Stable: rows of equal length keep their ascending order.
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return length(a) > length(b); });
  return order;
}

ScheduleTable buildScheduleTable(const mask::Mask &mask, const mask::Extent &extent, int64_t blockM,
                                 int64_t blockN) {
  // BlockSchedule::row() answers closed forms too, so "table" kernels of
  // banded masks get a table as well.
  mask::BlockSchedule schedule(mask, extent, blockM, blockN);
  const mask::Geometry &geometry = schedule.geometry();
  ScheduleTable table;
  table.wordsPerRow = (blockN + 63) / 64;
  const int64_t rowTiles = schedule.rowTiles();
  table.rowOffsets.reserve(static_cast<size_t>(rowTiles) + 1);
  table.rowOffsets.push_back(0);
  std::vector<mask::ScheduledTile> tiles;
  for (int64_t r = 0; r < rowTiles; ++r) {
    schedule.row(r, tiles);
    for (const mask::ScheduledTile &tile : tiles) {
      table.colTiles.push_back(tile.colTile);
      bool isFull = tile.cls == mask::TileClass::Full;
      table.full.push_back(isFull ? 1 : 0);
      if (isFull) {
        table.bitOffsets.push_back(-1);
        continue;
      }
      table.bitOffsets.push_back(static_cast<int64_t>(table.bits.size()));
      size_t base = table.bits.size();
      table.bits.resize(base + static_cast<size_t>(blockM * table.wordsPerRow), 0);
      const int64_t row0 = r * blockM, col0 = tile.colTile * blockN;
      const int64_t rows = std::min(blockM, extent.nq - row0);
      const int64_t col1 = std::min(col0 + blockN, extent.nk);
      for (int64_t i = 0; i < rows; ++i)
        geometry.rowBits(row0 + i, col0, col1,
                         &table.bits[base + static_cast<size_t>(i * table.wordsPerRow)]);
    }
    table.rowOffsets.push_back(static_cast<int64_t>(table.colTiles.size()));
  }
  mask::TransposedTiles columns =
      mask::transposeTiles(table.rowOffsets, table.colTiles, schedule.colTiles());
  table.columnOffsets = std::move(columns.offsets);
  table.columnRowTiles = std::move(columns.rows);
  table.columnFull.reserve(columns.entries.size());
  table.columnBitOffsets.reserve(columns.entries.size());
  for (int64_t entry : columns.entries) {
    table.columnFull.push_back(table.full[static_cast<size_t>(entry)]);
    table.columnBitOffsets.push_back(table.bitOffsets[static_cast<size_t>(entry)]);
  }
  table.rowOrder = heaviestFirstOrder(table.rowOffsets);
  table.columnOrder = heaviestFirstOrder(table.columnOffsets);
  return table;
}

} // namespace attnc::runtime
