//===- Pipeline.cpp - The attnc pass pipeline -----------------------------===//

#include "attnc/Compiler/Pipeline.h"
#include "attnc/Passes/Passes.h"

#include "mlir/Pass/PassManager.h"

namespace attnc {

mlir::LogicalResult runTilingPipeline(mlir::ModuleOp module, const PipelineOptions &options) {
  mlir::PassManager pm(module->getContext());
  pm.addPass(attn::createAttnCanonicalizeMask());
  pm.addPass(attn::createAttnPlanLayout());
  attn::AttnTileOptions tile;
  tile.blockM = options.blockM;
  tile.blockN = options.blockN;
  tile.mma = options.arch == kWgmmaArch ? attn::TileAttr::kMmaWgmma : attn::TileAttr::kMmaSync;
  tile.deterministic = options.deterministic;
  pm.addPass(attn::createAttnTile(tile));
  pm.addPass(attn::createAttnClassifyBlocks());
  pm.addPass(attn::createAttnScheduleRecompute(
      attn::AttnScheduleRecomputeOptions{options.deterministic}));
  return pm.run(module);
}

} // namespace attnc
