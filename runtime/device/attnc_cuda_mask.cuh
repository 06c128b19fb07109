//===- attnc_cuda_mask.cuh - Mask math of generated CUDA kernels --*- CUDA -*-===//
//
// The closed form of banded masks (the same Band math as runtime/cpu/attnc_cpu.h:
// tightenBand, bandColumnTiles, bandTile) and the two kv-tile schedules of
// attn.kv_loop: BandSchedule (closed form, classified from indices) and
// TableSchedule (kernel_abi.h's attnc_schedule_table, built by the runtime),
// whose blocks run their tiles heaviest first, grid-wide (tableGridPoint).
// Everything here is uniform across a thread block: it decides which tiles a
// query tile visits and whether a tile is PARTIAL, never an element.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_CUDA_MASK_CUH
#define ATTNC_CUDA_MASK_CUH

#include "attnc_cuda_ptx.cuh"
#include "kernel_abi.h"

#include <cuda/std/cstdint>

namespace attnc_cuda {

/// A window side without bound (as in attnc_cpu.h and the manifest).
constexpr int64_t kUnbounded = INT64_MAX;

/// The closed form of a banded mask, bounds tightened to multiples of the
/// period: allowed iff lo <= p - k <= hi and (p - k) % period == 0; lo > hi
/// allows nothing. Unbounded sides are +-kUnbounded.
struct Band {
  int64_t lo, hi, period;
};

/// Floor division for any signs (b > 0).
__host__ __device__ constexpr int64_t floorDiv(int64_t a, int64_t b) {
  return a / b - (a % b < 0 ? 1 : 0);
}

/// Ceiling division for any signs (b > 0).
__host__ __device__ constexpr int64_t ceilDiv(int64_t a, int64_t b) {
  return a / b + (a % b > 0 ? 1 : 0);
}

/// The band of {lo, hi, period} with lo and hi moved inward to multiples of the period.
__host__ __device__ constexpr Band tightenBand(int64_t lo, int64_t hi, int64_t period) {
  const int64_t l = lo == -kUnbounded ? -kUnbounded : ceilDiv(lo, period) * period;
  const int64_t h = hi == kUnbounded ? kUnbounded : floorDiv(hi, period) * period;
  return l > h ? Band{kUnbounded, -kUnbounded, period} : Band{l, h, period};
}

/// a - b saturated to [INT64_MIN, INT64_MAX] (band bounds may be +-kUnbounded).
__host__ __device__ constexpr int64_t saturatingSub(int64_t a, int64_t b) {
  if (b > 0 && a < INT64_MIN + b)
    return INT64_MIN;
  if (b < 0 && a > INT64_MAX + b)
    return INT64_MAX;
  return a - b;
}

/// The min and max of two 64-bit integers.
__host__ __device__ constexpr int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ constexpr int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/// Classes of a tile (the values of mask::TileClass).
enum class TileClass { Empty = 0, Partial = 1, Full = 2 };

/// Multiples of d (> 0) in [a, b] (a <= b + 1).
__host__ __device__ constexpr int64_t countMultiples(int64_t a, int64_t b, int64_t d) {
  return d == 1 ? b - a + 1 : floorDiv(b, d) - ceilDiv(a, d) + 1;
}

/// Exact class of positions [p0, p1] x keys [k0, k1] under the band.
__host__ __device__ constexpr TileClass bandTileClass(const Band &band, int64_t p0, int64_t p1,
                                                      int64_t k0, int64_t k1) {
  const int64_t dmin = p0 - k1, dmax = p1 - k0;
  const int64_t a = max64(band.lo, dmin), b = min64(band.hi, dmax);
  if (a > b || countMultiples(a, b, band.period) == 0)
    return TileClass::Empty;
  if (dmin >= band.lo && dmax <= band.hi && (band.period == 1 || dmin == dmax))
    return TileClass::Full;
  return TileClass::Partial;
}

/// The absolute position of query row i: bottom-right alignment, p = i + Nk - Nq.
__host__ __device__ constexpr int64_t queryPosition(int64_t i, int64_t nq, int64_t nk) {
  return i + nk - nq;
}

/// The kv tiles [first, last] that query tile qt may touch under the band
/// (first > last when none), with M x N tiles over nq x nk.
__host__ __device__ constexpr void bandColumnTiles(const Band &band, int64_t qt, int64_t M,
                                                   int64_t N, int64_t nq, int64_t nk,
                                                   int64_t &first, int64_t &last) {
  const int64_t p0 = queryPosition(qt * M, nq, nk);
  const int64_t p1 = queryPosition(min64(nq, (qt + 1) * M) - 1, nq, nk);
  // Keys k with p - k in [lo, hi]: k in [p0 - hi, p1 - lo], clipped to [0, nk).
  const int64_t lowKey = saturatingSub(p0, band.hi);
  const int64_t highKey = saturatingSub(p1, band.lo);
  const int64_t k0 = lowKey < 0 ? 0 : min64(lowKey, nk);
  const int64_t k1 = highKey > nk - 1 ? nk - 1 : max64(highKey, -1);
  if (band.lo > band.hi || k0 > k1) {
    first = 0;
    last = -1;
    return;
  }
  first = k0 / N;
  last = k1 / N;
}

/// The class of kv tile kt for query tile qt under the band (clipped tiles).
__host__ __device__ constexpr TileClass bandTile(const Band &band, int64_t qt, int64_t kt,
                                                 int64_t M, int64_t N, int64_t nq, int64_t nk) {
  const int64_t p0 = queryPosition(qt * M, nq, nk);
  const int64_t p1 = queryPosition(min64(nq, (qt + 1) * M) - 1, nq, nk);
  return bandTileClass(band, p0, p1, kt * N, min64(nk, (kt + 1) * N) - 1);
}

//===----------------------------------------------------------------------===//
// Schedules of attn.kv_loop: a cursor over the visited kv tiles of one query
// tile. begin / valid / next walk it; kvTile and partial describe a step. The
// pipeline reads ahead with a second cursor, so cursors are plain values.
//===----------------------------------------------------------------------===//

/// attn.kv_loop with #attn.band_schedule: the band's non-empty kv tiles, classified from indices.
template <int BlockM, int BlockN> struct BandSchedule {
  Band band;
  int64_t qt, nq, nk;
  int64_t first, last; // kv tiles [first, last] may hold allowed pairs

  /// The schedule of query tile qt over nq x nk under `band`.
  __device__ __forceinline__ BandSchedule(const Band &band, int64_t qt, int64_t nq, int64_t nk)
      : band(band), qt(qt), nq(nq), nk(nk), first(0), last(-1) {
    bandColumnTiles(band, qt, BlockM, BlockN, nq, nk, first, last);
  }

  /// The class of kv tile kt.
  __device__ __forceinline__ TileClass tileClass(int64_t kt) const {
    return bandTile(band, qt, kt, BlockM, BlockN, nq, nk);
  }

  /// The first non-empty tile at or after kt (past `last` when none).
  __device__ __forceinline__ int64_t skipEmpty(int64_t kt) const {
    // Only a dilated band leaves empty tiles inside [first, last].
    while (band.period != 1 && kt <= last && tileClass(kt) == TileClass::Empty)
      ++kt;
    return kt;
  }

  /// The cursor of the first visited tile.
  __device__ __forceinline__ int64_t begin() const { return skipEmpty(first); }
  /// Whether the cursor names a tile.
  __device__ __forceinline__ bool valid(int64_t cursor) const { return cursor <= last; }
  /// The cursor after `cursor`.
  __device__ __forceinline__ int64_t next(int64_t cursor) const { return skipEmpty(cursor + 1); }
  /// The kv tile a cursor names.
  __device__ __forceinline__ int64_t kvTile(int64_t cursor) const { return cursor; }
  /// Whether the tile needs the element predicate (PARTIAL); FULL tiles do no mask arithmetic.
  __device__ __forceinline__ bool partial(int64_t cursor) const {
    return tileClass(cursor) == TileClass::Partial;
  }
};

/// A block's grid point under tableGridPoint: the table's row (column) tile, head and batch.
struct TableGridPoint {
  int64_t tile;
  int32_t head, batch; // grid y and z extents fit 32 bits: two registers fewer to keep live
};

/// This block's grid point in a grid-wide heaviest-first order: dispatch position p (x fastest)
/// runs row_order[p / (heads * batch)] of head p % heads in batch (p / heads) % batch, so that
/// the longest rows (columns: the kv-stationary kernels take the column table) of every head
/// start first, not only within each head's run of x. Head and batch must come from it too.
__device__ __forceinline__ TableGridPoint tableGridPoint(const attnc_schedule_table &table) {
  const int64_t heads = gridDim.y, points = heads * gridDim.z; // (head, batch) pairs
  const int64_t position =
      blockIdx.x + static_cast<int64_t>(gridDim.x) * (blockIdx.y + heads * blockIdx.z);
  const int64_t rest = position % points;
  return {__ldg(table.row_order + position / points), static_cast<int32_t>(rest % heads),
          static_cast<int32_t>(rest / heads)};
}

/// attn.kv_loop with a table schedule: the entries of query tile qt in kernel_abi.h's attnc_schedule_table.
struct TableSchedule {
  const attnc_schedule_table *table;
  int64_t firstEntry, endEntry; // entries [firstEntry, endEntry)

  /// The schedule of query tile qt (`table` lives in the kernel's __grid_constant__ arguments).
  __device__ __forceinline__ TableSchedule(const attnc_schedule_table &table, int64_t qt)
      : table(&table), firstEntry(__ldg(table.row_offsets + qt)),
        endEntry(__ldg(table.row_offsets + qt + 1)) {}

  /// The cursor (entry) of the first visited tile.
  __device__ __forceinline__ int64_t begin() const { return firstEntry; }
  /// Whether the cursor names an entry.
  __device__ __forceinline__ bool valid(int64_t entry) const { return entry < endEntry; }
  /// The entry after `entry`.
  __device__ __forceinline__ int64_t next(int64_t entry) const { return entry + 1; }
  /// The kv tile of an entry.
  __device__ __forceinline__ int64_t kvTile(int64_t entry) const {
    return __ldg(table->col_tiles + entry);
  }
  /// Whether the entry is PARTIAL (its bits hold the mask).
  __device__ __forceinline__ bool partial(int64_t entry) const {
    return __ldg(table->full + entry) == 0;
  }
};

} // namespace attnc_cuda

#endif // ATTNC_CUDA_MASK_CUH
