//===- Pipeline.h - The attnc pass pipeline ---------------------*- C++ -*-===//

#ifndef ATTNC_COMPILER_PIPELINE_H
#define ATTNC_COMPILER_PIPELINE_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

#include <cstdint>
#include <string>

namespace attnc {

struct PipelineOptions {
  int64_t blockM = 0; ///< 0: the attn-tile heuristic
  int64_t blockN = 0;
  /// attn-schedule-recompute: dQ by the separate deterministic pass (always
  /// for the CPU target, which has no float32 atomics).
  bool deterministic = false;
  /// The GPU the kernels are for, e.g. "sm_80", "sm_90a" ("": none named).
  /// kWgmmaArch selects the Hopper wgmma forward tile (attn-tile mma=wgmma);
  /// every other arch mma.sync.
  std::string arch;
};

/// The architecture whose forward kernels run Hopper's warpgroup MMA (wgmma
/// needs the arch-specific features of sm_90a).
inline constexpr const char *kWgmmaArch = "sm_90a";

/// Runs attn-canonicalize-mask, attn-plan-layout, attn-tile,
/// attn-classify-blocks and attn-schedule-recompute (the stage `--emit=tiled`
/// prints). Diagnostics go through the context.
mlir::LogicalResult runTilingPipeline(mlir::ModuleOp module, const PipelineOptions &options);

/// runTilingPipeline, then attn-lower-to-loops and attn-prepare-for-emission
/// (the stage `--emit=loops` prints and the target printers read).
mlir::LogicalResult lowerToEmittableLoops(mlir::ModuleOp module, const PipelineOptions &options);

} // namespace attnc

#endif // ATTNC_COMPILER_PIPELINE_H
