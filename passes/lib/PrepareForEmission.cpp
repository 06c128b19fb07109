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
             Exp2DiffOp, RescaleOp, RowSumUpdateOp, PVUpdateOp, FinalizeOp, FillOp,
             GradPreprocessOp, GradKvLoopOp, QLoopOp, GradQLoopOp, GradYieldOp, DqConvertOp,
             LoadRowOp, RecomputePOp, DsOp, MatmulAccOp, DqAtomicAddOp>(op);
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
        Attribute schedule;
        if (auto loop = dyn_cast<KvLoopOp>(mask->getParentOp()))
          schedule = loop.getSchedule();
        else if (auto loop = dyn_cast<QLoopOp>(mask->getParentOp()))
          schedule = loop.getSchedule();
        if (!schedule) {
          mask.emitOpError("must be inside attn.kv_loop or attn.q_loop");
          return WalkResult::interrupt();
        }
        mask.setFormAttr(StringAttr::get(op->getContext(),
                                         isa<BandScheduleAttr>(schedule) ? "band" : "bitmask"));
      }
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
