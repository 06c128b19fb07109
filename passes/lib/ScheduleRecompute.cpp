//===- ScheduleRecompute.cpp - attn-schedule-recompute --------------------===//
//
// Plans the backward pass of every attention that asks for one (see
// Passes.td): a function NAME_backward taking exactly what the forward saves
// (Q, K, V, O, LSE) and dO, holding one attn.attention_grad.
//
//===----------------------------------------------------------------------===//

#include "attnc/Passes/Passes.h"
#include "attnc/Passes/TileHeuristic.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"

namespace attnc::attn {
#define GEN_PASS_DEF_ATTNSCHEDULERECOMPUTE
#include "attnc/Passes/Passes.h.inc"
} // namespace attnc::attn

using namespace mlir;
using namespace attnc::attn;

namespace {

/// Keys per kv tile of the kv-stationary pass under a band schedule.
constexpr int64_t kBandKvTileKeys = 128;
/// GPU warps own 16 rows (keys, in the kv-stationary pass) each.
constexpr int64_t kRowsPerWarp = 16;

struct AttnScheduleRecomputePass
    : public attnc::attn::impl::AttnScheduleRecomputeBase<AttnScheduleRecomputePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<AttentionOp> forwards;
    module.walk([&](AttentionOp op) {
      if (op.getBackward())
        forwards.push_back(op);
    });
    for (AttentionOp op : forwards) {
      auto forward = op->getParentOfType<func::FuncOp>();
      if (!forward) {
        op.emitOpError("with backward must be inside a func.func");
        return signalPassFailure();
      }
      std::string name = (forward.getSymName() + "_backward").str();
      if (symbols.lookup(name))
        continue; // planned already (the pass is idempotent)

      // The backward's query-grid kernels are mma.sync ones: a Hopper
      // (wgmma) forward tile gives way to the tile attn-tile picks without
      // wgmma (attn-tile chose wgmma only where the schedule is a closed
      // form, which serves any tile); its kv-stationary pass runs wgmma too.
      TileAttr tile = op.getTileAttr();
      const bool wgmma = tile && tile.isWgmma();
      const bool band = isa_and_nonnull<BandScheduleAttr>(op.getScheduleAttr());
      const bool separateDq = deterministic || op.getDeterministic();
      if (wgmma) {
        if (op.getScheduleAttr() && !band && separateDq) {
          op.emitOpError("has a wgmma tile, a table schedule and deterministic dQ: the dQ "
                         "pass walks the forward's table on mma.sync tiles (attn-tile gives "
                         "such attentions mma.sync tiles)");
          return signalPassFailure();
        }
        tile = getSyncTile([&]() { return op.emitOpError(); }, op.getContext(),
                           op.getQuery().getType().getDimSize(3));
      }
      // The saved tensors: the forward's inputs, O and LSE; then dO.
      Type q = op.getQuery().getType(), k = op.getKey().getType(), v = op.getValue().getType();
      Type o = op.getOutput().getType(), lse = op.getLse().getType();
      OpBuilder b(module.getContext());
      b.setInsertionPointAfter(forward);
      auto func = func::FuncOp::create(b, op.getLoc(), name,
                                       b.getFunctionType({q, k, v, o, lse, o}, {q, k, v}));
      symbols.insert(func);
      Block *body = func.addEntryBlock();
      b.setInsertionPointToEnd(body);
      // The kv-stationary pass may take longer kv tiles where the schedule
      // is a closed form (mma.sync tables share the forward's tiles and
      // bits): 128 keys halve its dQ atomics (measured 7-10 % faster on an
      // H100). With a wgmma forward, the kv-stationary pass is a wgmma one
      // as well: two warpgroups of 64 keys, query steps of block_m (64)
      // rows; under a table, the runtime builds its table for those tiles.
      TileAttr kvTile = tile;
      if (kvTile && ((band && kvTile.getBlockN() < kBandKvTileKeys) || wgmma))
        kvTile = TileAttr::get(op.getContext(), kvTile.getBlockM(), kBandKvTileKeys,
                               kBandKvTileKeys / kRowsPerWarp, kvTile.getStages(),
                               wgmma ? TileAttr::kMmaWgmma : TileAttr::kMmaSync);
      auto grad = AttentionGradOp::create(
          b, op.getLoc(), TypeRange{q, k, v}, body->getArgument(0), body->getArgument(1),
          body->getArgument(2), body->getArgument(3), body->getArgument(4), body->getArgument(5),
          op.getMask(), op.getQueryHeadsAttr(), op.getKvHeadsAttr(), op.getScaleAttr(),
          separateDq ? b.getUnitAttr() : UnitAttr(), tile, kvTile,
          op.getScheduleAttr(), op.getResidueClassesAttr());
      func::ReturnOp::create(b, op.getLoc(), grad.getResults());
    }
  }
};

} // namespace
