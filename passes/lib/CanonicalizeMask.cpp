//===- CanonicalizeMask.cpp - attn-canonicalize-mask ----------------------===//
//
// The rewriting rules live in the MLIR-free mask algebra (mask::canonicalize)
// so that the spec loader, the classifier and the runtime share them; this
// pass applies them to the IR.
//
//===----------------------------------------------------------------------===//

#include "attnc/Passes/Passes.h"

namespace attnc::attn {
#define GEN_PASS_DEF_ATTNCANONICALIZEMASK
#include "attnc/Passes/Passes.h.inc"
} // namespace attnc::attn

using namespace mlir;
using namespace attnc;
using namespace attnc::attn;

namespace {
struct AttnCanonicalizeMaskPass
    : public attn::impl::AttnCanonicalizeMaskBase<AttnCanonicalizeMaskPass> {
  void runOnOperation() override {
    getOperation()->walk([](AttentionOp op) {
      mask::Mask canonical = mask::canonicalize(op.getMask().toMask());
      op.setMaskAttr(maskToAttr(op.getContext(), canonical));
    });
  }
};
} // namespace
