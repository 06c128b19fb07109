//===- Tiles.h - Exact geometry of a mask over tiles ------------*- C++ -*-===//
//
// Which tiles of the (query row x key) plane a kernel must visit, and which of
// them need no mask arithmetic. Free of MLIR: the compiler classifies at
// compile time, the runtime at launch time (dynamic lengths, runtime tokens).
//
// Exactness contract (tested against brute force):
//   - a tile is Full iff every pair in it (clipped at the sequence ends) is
//     allowed, Empty iff none is, Partial otherwise;
//   - a schedule lists every non-empty tile and no empty one;
//   - a column schedule lists the same tiles with the same classes, by kv
//     tile (the backward's kv-stationary pass).
//
// Cost contract: nothing proportional to nq x nk; for banded masks (full,
// causal, windows, dilated windows and their intersections) the schedule is
// a closed form of O(1) size.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_MASK_TILES_H
#define ATTNC_MASK_TILES_H

#include "attnc/Mask/Mask.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace attnc::mask {

enum class TileClass : uint8_t { Empty = 0, Partial = 1, Full = 2 };

/// A rectangle of the plane: query rows [row0, row1) and keys [col0, col1),
/// already clipped to [0, nq) x [0, nk) by the caller.
struct Rect {
  int64_t row0 = 0, row1 = 0, col0 = 0, col1 = 0;
  int64_t area() const { return (row1 - row0) * (col1 - col0); }
};

/// The closed form of a banded mask: with delta = p - k, a pair is allowed iff
/// lo <= delta <= hi and delta % period == 0 (lo may be -kUnbounded, hi
/// kUnbounded). full = {-inf, inf, 1}, causal = {0, inf, 1},
/// window{L, R, d} = {-R*d, L*d, d}; an intersection takes max lo, min hi and
/// the lcm of the periods.
struct Band {
  int64_t lo = 0;
  int64_t hi = 0;
  int64_t period = 1;
  bool operator==(const Band &o) const {
    return lo == o.lo && hi == o.hi && period == o.period;
  }
};

/// The band of a mask if it is banded (Full, Causal, Window, or an Intersect
/// of banded masks, after canonicalize), else nullopt. Empty is not banded.
std::optional<Band> bandOf(const Mask &mask);

/// A mask prepared for geometric queries at one extent.
class Geometry {
public:
  Geometry(const Mask &mask, const Extent &extent);
  ~Geometry();
  Geometry(Geometry &&) noexcept;
  Geometry &operator=(Geometry &&) noexcept;

  const Extent &extent() const;
  /// The band, if the (canonicalized) mask is banded.
  const std::optional<Band> &band() const;

  /// Exact class of a rectangle.
  TileClass classify(const Rect &rect) const;
  /// Exact number of allowed pairs in a rectangle.
  int64_t countAllowed(const Rect &rect) const;
  /// Exact number of allowed keys in [col0, col1) for query row i.
  int64_t countRow(int64_t i, int64_t col0, int64_t col1) const;

  /// The allowed keys of query row i in [col0, col1) as bits: bit c of
  /// bits[c / 64] is set iff key col0 + c is allowed. Writes
  /// ceil((col1 - col0) / 64) words.
  void rowBits(int64_t i, int64_t col0, int64_t col1, uint64_t *bits) const;

  /// The column tiles (of width blockN) that may hold an allowed pair for
  /// query rows [row0, row1): a sorted superset of the non-empty ones, small
  /// (never every column unless a row sees every column).
  void candidateColumnTiles(int64_t row0, int64_t row1, int64_t blockN,
                            std::vector<int64_t> &out) const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// One visited tile of a schedule.
struct ScheduledTile {
  int64_t colTile;
  TileClass cls; ///< Full or Partial, never Empty
};

/// Totals over the whole plane.
struct TileTotals {
  int64_t rowTiles = 0, colTiles = 0;
  int64_t full = 0, partial = 0, skipped = 0;
  int64_t computedPairs = 0; ///< visited tiles' areas, clipped at the ends
  int64_t allowedPairs = 0;  ///< exact
};

/// The block schedule of a mask for a tile size: per query tile, the kv tiles
/// to visit with their class. Banded masks keep only the band (no table); the
/// others get a CSR table (rowOffsets, tiles).
class BlockSchedule {
public:
  BlockSchedule(const Mask &mask, const Extent &extent, int64_t blockM, int64_t blockN);

  bool isClosedForm() const { return geometry_.band().has_value(); }
  const Geometry &geometry() const { return geometry_; }
  int64_t blockM() const { return blockM_; }
  int64_t blockN() const { return blockN_; }
  int64_t rowTiles() const;
  int64_t colTiles() const;
  /// The tiles of query tile r in ascending column order (computed on the fly
  /// for closed forms, read from the table otherwise).
  void row(int64_t r, std::vector<ScheduledTile> &out) const;
  /// For closed forms: the column tile range [first, last] query tile r may
  /// touch (tiles inside it can still be empty when period > 1); for tables,
  /// the first and last listed columns. first > last means none.
  std::pair<int64_t, int64_t> columnRange(int64_t r) const;
  /// The CSR table (empty for closed forms).
  const std::vector<int64_t> &rowOffsets() const { return rowOffsets_; }
  const std::vector<ScheduledTile> &tiles() const { return tiles_; }
  /// Totals over the plane; allowed pairs are counted exactly.
  TileTotals totals() const;

private:
  Geometry geometry_;
  int64_t blockM_, blockN_;
  std::vector<int64_t> rowOffsets_;
  std::vector<ScheduledTile> tiles_;
};

/// A row-major tile list (CSR: the entries of row r are [rowOffsets[r],
/// rowOffsets[r + 1]), each in a column below the column count) listed by
/// column: the entries of column c are [offsets[c], offsets[c + 1]) of rows
/// and entries, ascending by row.
struct TransposedTiles {
  std::vector<int64_t> offsets; ///< [columns + 1]
  std::vector<int64_t> rows;    ///< [entries]: the row of each entry
  std::vector<int64_t> entries; ///< [entries]: its index in the row-major list
};

/// Transposes a row-major tile list whose entry e lies in column cols[e], in
/// [0, columns): a stable counting sort, O(entries + columns).
TransposedTiles transposeTiles(const std::vector<int64_t> &rowOffsets,
                               const std::vector<int64_t> &cols, int64_t columns);

/// One visited query tile of a column schedule.
struct ColumnTile {
  int64_t rowTile;
  TileClass cls; ///< Full or Partial, never Empty
  /// The same tile's index in the forward table (BlockSchedule::tiles()); -1
  /// for closed forms, which have no table.
  int64_t entry;
};

/// The transpose of a BlockSchedule, which the backward's kv-stationary pass
/// reads: per kv tile, the query tiles that see it, ascending, with the class
/// the forward gives the same tile (so the totals agree). Banded masks keep
/// only the band (rowRange is then the mirror of columnRange); the others get
/// the forward table transposed (colOffsets, tiles). Views `forward`, which
/// must outlive it.
class ColumnSchedule {
public:
  explicit ColumnSchedule(const BlockSchedule &forward);

  const BlockSchedule &forward() const { return *forward_; }
  bool isClosedForm() const { return forward_->isClosedForm(); }
  int64_t rowTiles() const { return forward_->rowTiles(); }
  int64_t colTiles() const { return forward_->colTiles(); }
  /// The tiles of kv tile c in ascending query tile order (computed on the
  /// fly for closed forms, read from the table otherwise).
  void column(int64_t c, std::vector<ColumnTile> &out) const;
  /// For closed forms: the query tile range [first, last] that may see kv
  /// tile c (exact for period 1; tiles inside it can be empty when period >
  /// 1); for tables, the first and last listed query tiles. first > last
  /// means none.
  std::pair<int64_t, int64_t> rowRange(int64_t c) const;
  /// The transposed table (empty for closed forms): the tiles of column c are
  /// tiles()[colOffsets()[c] .. colOffsets()[c + 1]).
  const std::vector<int64_t> &colOffsets() const { return colOffsets_; }
  const std::vector<ColumnTile> &tiles() const { return tiles_; }
  /// Totals over the plane, column by column; equal to forward().totals().
  TileTotals totals() const;

private:
  const BlockSchedule *forward_;
  std::vector<int64_t> colOffsets_;
  std::vector<ColumnTile> tiles_;
};

} // namespace attnc::mask

#endif // ATTNC_MASK_TILES_H
