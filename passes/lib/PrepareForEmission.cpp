//===- PrepareForEmission.cpp - attn-prepare-for-emission -----------------===//

#include "attnc/Passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

namespace attnc::attn {
#define GEN_PASS_DEF_ATTNPREPAREFOREMISSION
#include "attnc/Passes/Passes.h.inc"
} // namespace attnc::attn

using namespace mlir;
using namespace attnc::attn;

namespace {

/// Whether a target printer knows how to print `op`.
bool isEmittable(Operation *op) {
  if (isa<ModuleOp, func::FuncOp, func::ReturnOp, arith::DivUIOp>(op))
    return true;
  if (auto constant = dyn_cast<arith::ConstantOp>(op))
    return constant.getType().isIndex();
  return isa<FlashLoopOp, TileYieldOp, LoadTileOp, KvLoopOp, YieldOp, QKOp, MaskTileOp, RowMaxOp,
             Exp2DiffOp, RescaleOp, RowSumUpdateOp, PVUpdateOp, FinalizeOp, FillOp>(op);
}

struct AttnPrepareForEmissionPass
    : public attnc::attn::impl::AttnPrepareForEmissionBase<AttnPrepareForEmissionPass> {
  void runOnOperation() override {
    WalkResult result = getOperation()->walk([&](Operation *op) {
      if (!isEmittable(op)) {
        op->emitOpError("cannot be emitted: lower it with attn-lower-to-loops first");
        return WalkResult::interrupt();
      }
      if (auto mask = dyn_cast<MaskTileOp>(op)) {
        auto loop = mask->getParentOfType<KvLoopOp>();
        if (!loop) {
          mask.emitOpError("must be inside attn.kv_loop");
          return WalkResult::interrupt();
        }
        mask.setFormAttr(StringAttr::get(
            op->getContext(), isa<BandScheduleAttr>(loop.getSchedule()) ? "band" : "bitmask"));
      }
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
