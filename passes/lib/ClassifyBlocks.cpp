//===- ClassifyBlocks.cpp - attn-classify-blocks --------------------------===//

#include "attnc/Passes/BlockClassification.h"
#include "attnc/Passes/Passes.h"

namespace attnc::attn {
#define GEN_PASS_DEF_ATTNCLASSIFYBLOCKS
#include "attnc/Passes/Passes.h.inc"
} // namespace attnc::attn

using namespace mlir;
using namespace attnc::attn;

namespace {

struct AttnClassifyBlocksPass : public attnc::attn::impl::AttnClassifyBlocksBase<AttnClassifyBlocksPass> {
  void runOnOperation() override {
    WalkResult result = getOperation()->walk([&](AttentionOp op) {
      if (!op.getTile()) {
        op.emitOpError("needs a tile configuration: run attn-tile first");
        return WalkResult::interrupt();
      }
      BlockClassification classes(op);
      op.setScheduleAttr(classes.getScheduleAttr(op.getContext()));
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
