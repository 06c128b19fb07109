//===- PlanLayout.cpp - attn-plan-layout ----------------------------------===//
//
// Dilation -> residue-class re-indexing (see Passes.td). Global-token
// compaction, the other half of the layout plan, is not done yet.
//
//===----------------------------------------------------------------------===//

#include "attnc/Passes/Passes.h"

namespace attnc::attn {
#define GEN_PASS_DEF_ATTNPLANLAYOUT
#include "attnc/Passes/Passes.h.inc"
} // namespace attnc::attn

using namespace mlir;
using namespace attnc::attn;

namespace {

struct AttnPlanLayoutPass : public attnc::attn::impl::AttnPlanLayoutBase<AttnPlanLayoutPass> {
  void runOnOperation() override {
    getOperation()->walk([](AttentionOp op) {
      auto window = dyn_cast<WindowAttr>(op.getMask());
      if (!window || window.getDilation() == 1 || op.getResidueClasses())
        return;
      // Within residue class r, p = r + d a and k = r + d b allow p - k = d (a - b)
      // iff -R <= a - b <= L: a plain window on the class indices.
      op.setMaskAttr(WindowAttr::get(op.getContext(), window.getLeft(), window.getRight(), 1));
      op.setResidueClassesAttr(
          IntegerAttr::get(IntegerType::get(op.getContext(), 64), window.getDilation()));
    });
  }
};

} // namespace
