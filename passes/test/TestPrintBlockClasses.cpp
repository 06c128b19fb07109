//===- TestPrintBlockClasses.cpp - -test-print-block-classes --------------===//
//
// Prints the block classification of every tiled attn.attention with static
// lengths, one line per query tile: `F` FULL, `P` PARTIAL, `.` skipped.
// Registered in attnc-opt only.
//
//===----------------------------------------------------------------------===//

#include "attnc/Passes/BlockClassification.h"
#include "attnc/Passes/TestPasses.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace attnc;
using namespace attnc::attn;

namespace {

struct TestPrintBlockClassesPass
    : public PassWrapper<TestPrintBlockClassesPass, OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(TestPrintBlockClassesPass)

  StringRef getArgument() const final { return "test-print-block-classes"; }
  StringRef getDescription() const final {
    return "Print the FULL/PARTIAL/skipped map of each attn.attention (static lengths)";
  }

  void runOnOperation() override {
    llvm::raw_ostream &os = llvm::outs();
    getOperation()->walk([&](AttentionOp op) {
      auto func = op->getParentOfType<func::FuncOp>();
      os << "block classes of @" << (func ? func.getSymName() : "?") << ": ";
      if (!op.getTile()) {
        os << "no tile configuration\n";
        return;
      }
      BlockClassification classes(op);
      const std::optional<mask::BlockSchedule> &schedule = classes.getSchedule();
      if (!schedule) {
        os << "built at launch\n";
        return;
      }
      mask::TileTotals totals = schedule->totals();
      os << totals.rowTiles << " x " << totals.colTiles << " tiles of " << schedule->blockM()
         << " x " << schedule->blockN() << ", "
         << (schedule->isClosedForm() ? "closed form" : "table") << "\n";
      std::vector<mask::ScheduledTile> row;
      for (int64_t r = 0; r < totals.rowTiles; ++r) {
        std::string line(totals.colTiles, '.');
        schedule->row(r, row);
        for (const mask::ScheduledTile &t : row)
          line[t.colTile] = t.cls == mask::TileClass::Full ? 'F' : 'P';
        os << "  row " << r << ": " << line << "\n";
      }
      os << "  full " << totals.full << ", partial " << totals.partial << ", skipped "
         << totals.skipped << ", allowed pairs " << totals.allowedPairs << ", computed pairs "
         << totals.computedPairs << "\n";
    });
    os.flush();
  }
};

} // namespace

void attnc::attn::registerTestPasses() { PassRegistration<TestPrintBlockClassesPass>(); }
