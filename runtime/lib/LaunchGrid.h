//===- LaunchGrid.h - The CUDA grids of a package's kernels -----*- C++ -*-===//
//
// The grid (x, y, z) each CUDA kernel of a package is launched with, for one
// launch's batch and lengths (runtime/README.md, "CUDA packages" and
// "Backward"): query-grid kernels tile seq_len.q by their own block_m (the
// backward of a Hopper wgmma forward keeps 64-row mma.sync tiles while the
// forward uses 128), the dK/dV kernels seq_len.kv by dkdv.block_n.
// Header-only: the unit tests check the arithmetic without a GPU.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_LAUNCHGRID_H
#define ATTNC_RUNTIME_LIB_LAUNCHGRID_H

#include "Package.h"

#include <cstdint>
#include <utility>

namespace attnc::runtime {

/// Blocks of a CUDA grid in x, y and z.
struct Grid {
  int64_t x = 0, y = 0, z = 0;
};

/// ceil(length / block): the tiles that cover `length` rows, `block` (>= 1) each.
inline int64_t tileCount(int64_t length, int64_t block) { return (length + block - 1) / block; }

/// The query rows per tile of a query-grid kernel (preprocess, dq,
/// dq_convert): its own block_m, else the forward's tile.block_m.
inline int64_t queryTileRows(const PackageData &package, const PackageData::CudaLaunch &launch) {
  return launch.blockM > 0 ? launch.blockM : package.blockM;
}

/// The forward kernel's grid: (ceil(nq / tile.block_m), heads.query, batch).
inline Grid forwardGrid(const PackageData &package, int64_t batch, int64_t nq) {
  return {tileCount(nq, package.blockM), package.queryHeads, batch};
}

/// The grids of one backward launch, by kernel.
struct BackwardGrids {
  Grid preprocess;  ///< (ceil(nq / preprocess block_m), heads.query, batch)
  Grid dkdv;        ///< (ceil(nk / dkdv.block_n), heads.kv x group_splits, batch)
  Grid dkdvConvert; ///< (ceil(nk / dkdv.block_n), heads.kv, batch)
  Grid dq;          ///< dq or dq_convert: (ceil(nq / its block_m), heads.query, batch)
};

/// The backward kernels' grids for `batch` sequences of `nq` queries and `nk` keys.
inline BackwardGrids backwardGrids(const PackageData &package, int64_t batch, int64_t nq,
                                   int64_t nk) {
  const PackageData::CudaLaunch &dq = package.deterministic ? package.dq : package.dqConvert;
  const int64_t kvTiles = tileCount(nk, package.dkdv.blockN);
  BackwardGrids grids;
  grids.preprocess = {tileCount(nq, queryTileRows(package, package.preprocess)), package.queryHeads,
                      batch};
  grids.dkdv = {kvTiles, package.kvHeads * package.dkdv.groupSplits, batch};
  grids.dkdvConvert = {kvTiles, package.kvHeads, batch};
  grids.dq = {tileCount(nq, queryTileRows(package, dq)), package.queryHeads, batch};
  return grids;
}

/// The (query rows, keys) tile of the backward's schedule table (table
/// schedules): the query-grid kernels' rows (preprocess block_m) by the dK/dV
/// kernel's keys (dkdv.block_n). It is the forward's tile for mma.sync
/// packages and CPU ones (one table serves both passes), and differs for a
/// Hopper forward (128 x 128) with its wgmma dK/dV kernel (64 x 128).
inline std::pair<int64_t, int64_t> backwardTableTile(const PackageData &package) {
  if (package.target != Target::Cuda || !package.hasBackward)
    return {package.blockM, package.blockN};
  return {queryTileRows(package, package.preprocess), package.dkdv.blockN};
}

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_LAUNCHGRID_H
