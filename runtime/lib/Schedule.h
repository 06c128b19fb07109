//===- Schedule.h - Launch-time block schedule tables -----------*- C++ -*-===//
//
// For masks without a closed form, the runtime builds kernel_abi.h's
// attnc_schedule_table at launch from the spec's mask, the actual lengths and
// the runtime token list: the CSR list of kv tiles per query tile from
// mask::BlockSchedule, and a bitmask of BLOCK_M rows per PARTIAL tile. Next
// to it, the backward's transposed (column) table: the same entries listed
// per kv tile, pointing into the same bits. Each comes with its launch order,
// the heaviest rows (columns) first.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_SCHEDULE_H
#define ATTNC_RUNTIME_LIB_SCHEDULE_H

#include "attnc/Mask/Mask.h"
#include "attnc/runtime/kernel_abi.h"

#include <cstdint>
#include <vector>

namespace attnc::runtime {

/// An attnc_schedule_table with the storage it points into.
struct ScheduleTable {
  std::vector<int64_t> rowOffsets; ///< [row tiles + 1]
  std::vector<int64_t> colTiles;   ///< [entries]
  std::vector<uint8_t> full;       ///< [entries]: 1 FULL, 0 PARTIAL
  std::vector<int64_t> bitOffsets; ///< [entries]: word offset into bits, -1 for FULL
  std::vector<uint64_t> bits;      ///< blockM x wordsPerRow words per PARTIAL tile
  int64_t wordsPerRow = 0;         ///< ceil(blockN / 64)
  /// kernel_abi.h's row_order: the query tiles by descending entry count,
  /// ties by ascending index (the grid's launch order, heaviest first).
  std::vector<int64_t> rowOrder; ///< [row tiles]

  /// The transposed table (kernel_abi.h's `columns`): for kv tile c, the
  /// entries [columnOffsets[c], columnOffsets[c + 1]), ascending by query
  /// tile, each the same tile as a forward entry, with its class and bit
  /// offset (into `bits`, forward layout).
  std::vector<int64_t> columnOffsets;    ///< [col tiles + 1]
  std::vector<int64_t> columnRowTiles;   ///< [entries]: query tiles
  std::vector<uint8_t> columnFull;       ///< [entries]: 1 FULL, 0 PARTIAL
  std::vector<int64_t> columnBitOffsets; ///< [entries]: word offset into bits, -1 for FULL
  /// The kv tiles by descending column length, ties by ascending index.
  std::vector<int64_t> columnOrder; ///< [col tiles]

  /// The view a kernel reads (valid while this table lives).
  attnc_schedule_table view() const;
  /// The view of the transposed table; its bits are view()'s.
  attnc_schedule_table columnsView() const;
};

/// The longest-processing-time-first order of a CSR table's rows: the row
/// indices 0 .. offsets.size() - 2 sorted by descending length
/// (offsets[r + 1] - offsets[r]), equal lengths by ascending index.
std::vector<int64_t> heaviestFirstOrder(const std::vector<int64_t> &offsets);

/// The table of `mask` (canonical) at `extent` for tiles of blockM x blockN,
/// and its transpose, each with its heaviest-first launch order. Bits of rows
/// past nq and keys past nk are zero.
ScheduleTable buildScheduleTable(const mask::Mask &mask, const mask::Extent &extent, int64_t blockM,
                                 int64_t blockN);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_SCHEDULE_H
