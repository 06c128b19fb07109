//===- Passes.h - attnc passes ----------------------------------*- C++ -*-===//

#ifndef ATTNC_PASSES_PASSES_H
#define ATTNC_PASSES_PASSES_H

#include "attnc/Dialect/Attn/AttnOps.h"

#include "mlir/Pass/Pass.h"

namespace attnc::attn {

#define GEN_PASS_DECL
#include "attnc/Passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "attnc/Passes/Passes.h.inc"

} // namespace attnc::attn

#endif // ATTNC_PASSES_PASSES_H
