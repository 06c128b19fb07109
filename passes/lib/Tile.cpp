//===- Tile.cpp - attn-tile -----------------------------------------------===//

#include "attnc/Passes/BlockClassification.h"
#include "attnc/Passes/Passes.h"
#include "attnc/Passes/TileHeuristic.h"

#include <algorithm>

namespace attnc::attn {
#define GEN_PASS_DEF_ATTNTILE
#include "attnc/Passes/Passes.h.inc"
} // namespace attnc::attn

using namespace mlir;
using namespace attnc::attn;

namespace {

/// GPU warps own 16 query rows each (one mma row block), at most 8 per
/// thread block; two kv tiles are in flight.
constexpr int64_t kRowsPerWarp = 16, kMaxWarps = 8, kStages = 2;

/// Hopper's forward tile: two warpgroups of 4 warps, each one 64-row wgmma
/// block, over 128-key kv tiles.
constexpr int64_t kWgmmaBlockM = 128, kWgmmaBlockN = 128, kWgmmaWarps = 8;

/// How many more pairs the wgmma tile may visit than the mma.sync one under
/// a table: about its speed per pair (H100, D 128: 422 TFLOP/s dense against
/// 305 to 364 for mma.sync kernels, bench/results).
constexpr double kWgmmaMaxAreaRatio = 1.25;
/// The length that stands for a length given at launch in that comparison.
constexpr int64_t kReferenceLength = 4096;

/// BLOCK_M x BLOCK_N by head_dim (bf16 and fp16 alike): the Q fragments and
/// the float32 O accumulator of 16 rows per warp must stay in registers.
/// Measured on an H100 (tests/gpu/NOTES.md): 64x64 with 4 warps reached the
/// best causal D128 throughput of the shapes tried (128x128, 128x64, 64x32).
std::pair<int64_t, int64_t> heuristicTile(int64_t headDim) {
  if (headDim <= 128)
    return {64, 64};
  return {64, 32};
}

struct AttnTilePass : public attnc::attn::impl::AttnTileBase<AttnTilePass> {
  using AttnTileBase::AttnTileBase;

  void runOnOperation() override {
    if (mma != TileAttr::kMmaSync && mma != TileAttr::kMmaWgmma) {
      getOperation()->emitError() << "attn-tile: mma must be sync or wgmma, got '" << mma << "'";
      return signalPassFailure();
    }
    // Explicit tile sides keep mma.sync: the wgmma tile is one shape.
    const bool wantWgmma = mma == TileAttr::kMmaWgmma && blockM == 0 && blockN == 0;
    WalkResult result = getOperation()->walk([&](AttentionOp op) {
      TileAttr tile;
      if (wantWgmma && isWgmmaCandidate(op, deterministic))
        tile = getWgmmaTile(op.getContext());
      else
        tile = getSyncTile([&]() { return op.emitOpError(); }, op.getContext(),
                           op.getQuery().getType().getDimSize(3), blockM, blockN);
      if (!tile)
        return WalkResult::interrupt();
      op.setTileAttr(tile);
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace

TileAttr attnc::attn::getSyncTile(function_ref<InFlightDiagnostic()> emitError,
                                  MLIRContext *context, int64_t headDim, int64_t blockM,
                                  int64_t blockN) {
  auto [m, n] = heuristicTile(headDim);
  if (blockM != 0)
    m = blockM;
  if (blockN != 0)
    n = blockN;
  int64_t warps = std::clamp<int64_t>(m / kRowsPerWarp, 1, kMaxWarps);
  return TileAttr::getChecked(emitError, context, m, n, warps, kStages);
}

TileAttr attnc::attn::getWgmmaTile(MLIRContext *context) {
  return TileAttr::get(context, kWgmmaBlockM, kWgmmaBlockN, kWgmmaWarps, kStages,
                       TileAttr::kMmaWgmma);
}

bool attnc::attn::isWgmmaCandidate(AttentionOp op, bool deterministic) {
  // The Hopper mainloop keeps Q and the float32 O accumulator of a
  // warpgroup's 64 rows in registers: head_dim 64 and 128.
  auto query = op.getQuery().getType();
  int64_t headDim = query.getDimSize(3);
  Type element = query.getElementType();
  if ((headDim != 64 && headDim != 128) || !(element.isBF16() || element.isF16()))
    return false;
  // A band's closed form serves any tile, and a band visits about the same
  // area with either.
  if (getScheduleBand(op))
    return true;
  // A table is built for one tile: the atomic-dQ backward gets its own (its
  // wgmma dK/dV kernel's), but the deterministic dQ pass walks the forward's
  // on mma.sync tiles.
  if (op.getBackward() && (deterministic || op.getDeterministic()))
    return false;
  // Scattered masks (global tokens, small blocks) make 128x128 tiles visit
  // far more pairs than 64x64 ones: wgmma only where the extra area stays
  // within what its speed buys.
  const auto [m, n] = heuristicTile(headDim);
  const double area = static_cast<double>(computedPairs(op, kWgmmaBlockM, kWgmmaBlockN,
                                                        kReferenceLength));
  const double syncArea = static_cast<double>(computedPairs(op, m, n, kReferenceLength));
  return area <= kWgmmaMaxAreaRatio * syncArea;
}
