//===- attnc-opt.cpp - attnc's optimizer driver ---------------------------===//
//
// mlir-opt with the attn dialect and every attnc pass registered: runs any
// stage of the pipeline alone on IR (`attnc-opt --attn-canonicalize-mask`).
//
//===----------------------------------------------------------------------===//

#include "attnc/Compiler/SpecToIR.h"
#include "attnc/Passes/Passes.h"
#include "attnc/Passes/TestPasses.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  attnc::registerAttncDialects(registry);
  attnc::attn::registerAttnPasses();
  attnc::attn::registerTestPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "attnc optimizer driver\n", registry));
}
