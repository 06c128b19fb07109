//===- Tile.cpp - attn-tile -----------------------------------------------===//

#include "attnc/Passes/Passes.h"

#include <algorithm>

namespace attnc::attn {
#define GEN_PASS_DEF_ATTNTILE
#include "attnc/Passes/Passes.h.inc"
} // namespace attnc::attn

using namespace mlir;
using namespace attnc::attn;

namespace {

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
    WalkResult result = getOperation()->walk([&](AttentionOp op) {
      auto [m, n] = heuristicTile(op.getQuery().getType().getDimSize(3));
      if (blockM != 0)
        m = blockM;
      if (blockN != 0)
        n = blockN;
      // GPU targets: 16 rows per warp up to 8 warps, two kv tiles in flight.
      int64_t warps = std::clamp<int64_t>(m / 16, 1, 8), stages = 2;
      auto emitError = [&]() { return op.emitOpError(); };
      TileAttr tile = TileAttr::getChecked(emitError, op.getContext(), m, n, warps, stages);
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
