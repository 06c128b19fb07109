//===- TileHeuristic.h - The tiles attn-tile picks --------------*- C++ -*-===//
//
// attn-tile's choices, shared with attn-schedule-recompute: the backward of a
// Hopper (wgmma) forward runs mma.sync kernels, with the tile attn-tile would
// have picked without wgmma.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_PASSES_TILEHEURISTIC_H
#define ATTNC_PASSES_TILEHEURISTIC_H

#include "attnc/Dialect/Attn/AttnOps.h"

namespace attnc::attn {

/// The mma.sync tile for `headDim`, given sides where `blockM` or `blockN`
/// are non-zero (else the heuristic's): 16 query rows per warp (at most 8
/// warps), two kv tiles in flight. Null, after `emitError`, for an illegal
/// tile.
TileAttr getSyncTile(mlir::function_ref<mlir::InFlightDiagnostic()> emitError,
                     mlir::MLIRContext *context, int64_t headDim, int64_t blockM = 0,
                     int64_t blockN = 0);

/// Hopper's forward tile (sm_90a, wgmma): 128 x 128, two warpgroups (one
/// 64-row wgmma block each), two kv tiles in flight.
TileAttr getWgmmaTile(mlir::MLIRContext *context);

/// Whether attn-tile gives `op` the wgmma tile when asked to (mma=wgmma) and
/// no tile side is given: head_dim 64 or 128, a 2-byte element type, and,
/// with a backward pass, a closed-form band schedule or dQ by atomics
/// (`deterministic`: the option; the op's attribute counts too): the
/// deterministic dQ pass walks the forward's table on mma.sync tiles.
bool isWgmmaCandidate(AttentionOp op, bool deterministic);

} // namespace attnc::attn

#endif // ATTNC_PASSES_TILEHEURISTIC_H
