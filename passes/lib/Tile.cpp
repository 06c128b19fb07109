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

/// BLOCK_M x BLOCK_N by head_dim (bf16 and fp16 alike): the Q tile, the K and
/// V tiles and the float32 accumulator of BLOCK_M x head_dim must fit the
/// registers and shared memory of one thread block.
std::pair<int64_t, int64_t> heuristicTile(int64_t headDim) {
  if (headDim <= 64)
    return {128, 128};
  if (headDim <= 128)
    return {128, 64};
  return {64, 64};
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
