//===- LowerToLoops.cpp - attn-lower-to-loops -----------------------------===//
//
// attn.attention (tiled and classified) -> attn.flash_loop: the online-softmax
// loop of FlashAttention-2 as explicit ops. Collect first, then rewrite.
//
//===----------------------------------------------------------------------===//

#include "attnc/Passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

#include <cmath>
#include <limits>

namespace attnc::attn {
#define GEN_PASS_DEF_ATTNLOWERTOLOOPS
#include "attnc/Passes/Passes.h.inc"
} // namespace attnc::attn

using namespace mlir;
using namespace attnc::attn;

namespace {

/// log2(e): exp(x) = exp2(x * log2(e)), folded into the Q tile's scale.
constexpr double kLog2e = 1.4426950408889634;

void lowerAttention(AttentionOp op) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  TileAttr tile = *op.getTile();
  int64_t blockM = tile.getBlockM(), blockN = tile.getBlockN();
  int64_t headDim = op.getQuery().getType().getDimSize(3);
  Type f32 = b.getF32Type(), index = b.getIndexType();
  auto qTileType = RankedTensorType::get({blockM, headDim}, f32); // (BLOCK_M, HEAD_DIM)
  auto kvTileType = RankedTensorType::get({blockN, headDim}, f32); // (BLOCK_N, HEAD_DIM)
  auto sTileType = RankedTensorType::get({blockM, blockN}, f32);   // (BLOCK_M, BLOCK_N)
  auto rowType = RankedTensorType::get({blockM}, f32);             // (BLOCK_M)

  auto flash = FlashLoopOp::create(
      b, loc, op.getOutput().getType(), op.getLse().getType(), op.getQuery(), op.getKey(),
      op.getValue(), op.getMask(), op.getQueryHeadsAttr(), op.getKvHeadsAttr(), op.getScaleAttr(),
      tile, *op.getSchedule(), op.getResidueClassesAttr());
  Block *body = b.createBlock(&flash.getBody(), {}, {index, index, index}, {loc, loc, loc});
  Value batch = body->getArgument(0), head = body->getArgument(1), qTile = body->getArgument(2);

  // GQA: query head h reads kv head h / (Hq / Hkv).
  Value group = arith::ConstantIndexOp::create(b, loc, op.getQueryHeads() / op.getKvHeads());
  Value kvHead = arith::DivUIOp::create(b, loc, head, group);
  double scaleLog2 = op.getScale().convertToDouble() * kLog2e;
  Value q = LoadTileOp::create(b, loc, qTileType, op.getQuery(), batch, qTile, head,
                               b.getF64FloatAttr(scaleLog2));
  float negInf = -std::numeric_limits<float>::infinity();
  Value m0 = FillOp::create(b, loc, rowType, b.getF32FloatAttr(negInf));
  Value l0 = FillOp::create(b, loc, rowType, b.getF32FloatAttr(0));
  Value acc0 = FillOp::create(b, loc, qTileType, b.getF32FloatAttr(0));

  auto loop = KvLoopOp::create(b, loc, TypeRange{rowType, rowType, qTileType}, qTile,
                               *op.getSchedule(), ValueRange{m0, l0, acc0});
  Block *step = b.createBlock(&loop.getBody(), {},
                              {index, b.getI1Type(), rowType, rowType, qTileType},
                              SmallVector<Location>(5, loc));
  Value kvTile = step->getArgument(0), partial = step->getArgument(1);
  Value m = step->getArgument(2), l = step->getArgument(3), acc = step->getArgument(4);
  Value k = LoadTileOp::create(b, loc, kvTileType, op.getKey(), batch, kvTile, kvHead,
                               b.getF64FloatAttr(1.0));
  Value v = LoadTileOp::create(b, loc, kvTileType, op.getValue(), batch, kvTile, kvHead,
                               b.getF64FloatAttr(1.0));
  Value s = QKOp::create(b, loc, sTileType, q, k);
  Value masked =
      MaskTileOp::create(b, loc, sTileType, s, qTile, kvTile, partial, StringAttr(), UnitAttr());
  Value mNew = RowMaxOp::create(b, loc, rowType, masked, m);
  Value p = Exp2DiffOp::create(b, loc, sTileType, masked, mNew);
  Value alpha = RescaleOp::create(b, loc, rowType, m, mNew);
  Value lNew = RowSumUpdateOp::create(b, loc, rowType, l, alpha, p);
  Value accNew = PVUpdateOp::create(b, loc, qTileType, acc, alpha, p, v);
  YieldOp::create(b, loc, ValueRange{mNew, lNew, accNew});

  b.setInsertionPointAfter(loop);
  auto fin = FinalizeOp::create(b, loc, qTileType, rowType, loop.getResult(0), loop.getResult(1),
                                loop.getResult(2));
  TileYieldOp::create(b, loc, fin.getOutput(), fin.getLse());

  op.replaceAllUsesWith(flash.getResults());
  op.erase();
}

/// attn.attention_grad -> grad_preprocess, grad_kv_loop and either
/// dq_convert (atomic dQ) or grad_q_loop (deterministic dQ).
void lowerAttentionGrad(AttentionGradOp op) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  TileAttr tile = *op.getTile();
  TileAttr kvTile = op.getKvTile() ? *op.getKvTile() : tile; // the kv-stationary pass's
  Attribute schedule = *op.getSchedule();
  int64_t blockM = tile.getBlockM(), blockN = tile.getBlockN(), kvBlockN = kvTile.getBlockN();
  auto qType = op.getQuery().getType();
  int64_t headDim = qType.getDimSize(3), group = op.getQueryHeads() / op.getKvHeads();
  Type f32 = b.getF32Type(), index = b.getIndexType(), i1 = b.getI1Type();
  auto qTileType = RankedTensorType::get({blockM, headDim}, f32);  // (BLOCK_M, HEAD_DIM)
  auto kvTileType = RankedTensorType::get({blockN, headDim}, f32); // (BLOCK_N, HEAD_DIM)
  auto sType = RankedTensorType::get({blockM, blockN}, f32);       // (BLOCK_M, BLOCK_N)
  // The kv-stationary pass: kv tiles of kvBlockN keys.
  auto kvPassTileType = RankedTensorType::get({kvBlockN, headDim}, f32);
  auto stType = RankedTensorType::get({kvBlockN, blockM}, f32); // (kv BLOCK_N, BLOCK_M)
  auto rowType = RankedTensorType::get({blockM}, f32);             // (BLOCK_M)
  double scale = op.getScale().convertToDouble();
  FloatAttr one = b.getF64FloatAttr(1.0), scaleLog2 = b.getF64FloatAttr(scale * kLog2e);
  bool atomic = !op.getDeterministic();

  Value delta = GradPreprocessOp::create(b, loc, op.getLse().getType(), op.getOutput(),
                                         op.getDOutput(), b.getI64IntegerAttr(blockM));

  // The kv-stationary pass: dK, dV (and the atomic dQ).
  Type accumType = RankedTensorType::get(qType.getShape(), f32);
  auto kvLoop = GradKvLoopOp::create(
      b, loc, op.getKey().getType(), op.getValue().getType(), atomic ? accumType : Type(),
      op.getQuery(), op.getKey(), op.getValue(), op.getLse(), op.getDOutput(), delta,
      op.getMask(), op.getQueryHeadsAttr(), op.getKvHeadsAttr(), op.getScaleAttr(), kvTile, schedule,
      atomic ? b.getUnitAttr() : UnitAttr());
  {
    OpBuilder::InsertionGuard guard(b);
    Block *body = b.createBlock(&kvLoop.getBody(), {}, {index, index, index}, {loc, loc, loc});
    Value batch = body->getArgument(0), kvHead = body->getArgument(1), kt = body->getArgument(2);
    Value k = LoadTileOp::create(b, loc, kvPassTileType, op.getKey(), batch, kt, kvHead, one);
    Value v = LoadTileOp::create(b, loc, kvPassTileType, op.getValue(), batch, kt, kvHead, one);
    Value dk0 = FillOp::create(b, loc, kvPassTileType, b.getF32FloatAttr(0));
    Value dv0 = FillOp::create(b, loc, kvPassTileType, b.getF32FloatAttr(0));
    auto qLoop = QLoopOp::create(b, loc, TypeRange{kvPassTileType, kvPassTileType}, kt, kvHead,
                                 b.getI64IntegerAttr(group), schedule, ValueRange{dk0, dv0});
    Block *step = b.createBlock(&qLoop.getBody(), {}, {index, index, i1, kvPassTileType, kvPassTileType},
                                SmallVector<Location>(5, loc));
    Value head = step->getArgument(0), qt = step->getArgument(1), partial = step->getArgument(2);
    Value dk = step->getArgument(3), dv = step->getArgument(4);
    Value q = LoadTileOp::create(b, loc, qTileType, op.getQuery(), batch, qt, head, one);
    Value dO = LoadTileOp::create(b, loc, qTileType, op.getDOutput(), batch, qt, head, one);
    Value lse = LoadRowOp::create(b, loc, rowType, op.getLse(), batch, head, qt);
    Value deltaRow = LoadRowOp::create(b, loc, rowType, delta, batch, head, qt);
    Value st = QKOp::create(b, loc, stType, k, q);
    auto masked = MaskTileOp::create(b, loc, stType, st, qt, kt, partial, StringAttr(),
                                     b.getUnitAttr());
    Value pt = RecomputePOp::create(b, loc, stType, masked, lse, scaleLog2, b.getUnitAttr());
    Value dvNew = MatmulAccOp::create(b, loc, kvPassTileType, dv, pt, dO);
    Value dpt = QKOp::create(b, loc, stType, v, dO);
    Value dst = DsOp::create(b, loc, stType, pt, dpt, deltaRow, b.getUnitAttr());
    Value dkNew = MatmulAccOp::create(b, loc, kvPassTileType, dk, dst, q);
    if (atomic)
      DqAtomicAddOp::create(b, loc, dst, k, batch, qt, head, op.getScaleAttr());
    YieldOp::create(b, loc, ValueRange{dkNew, dvNew});
    b.setInsertionPointAfter(qLoop);
    GradYieldOp::create(b, loc, qLoop.getResults());
  }

  Value dq;
  if (atomic) {
    dq = DqConvertOp::create(b, loc, qType, kvLoop.getDqAccum(), b.getI64IntegerAttr(blockM));
  } else {
    // The q-stationary pass: dQ, each element summed by one grid point.
    auto qLoop = GradQLoopOp::create(b, loc, qType, op.getQuery(), op.getKey(), op.getValue(),
                                     op.getLse(), op.getDOutput(), delta, op.getMask(),
                                     op.getQueryHeadsAttr(), op.getKvHeadsAttr(),
                                     op.getScaleAttr(), tile, schedule);
    OpBuilder::InsertionGuard guard(b);
    Block *body = b.createBlock(&qLoop.getBody(), {}, {index, index, index}, {loc, loc, loc});
    Value batch = body->getArgument(0), head = body->getArgument(1), qt = body->getArgument(2);
    Value groupSize = arith::ConstantIndexOp::create(b, loc, group);
    Value kvHead = arith::DivUIOp::create(b, loc, head, groupSize);
    Value q = LoadTileOp::create(b, loc, qTileType, op.getQuery(), batch, qt, head, one);
    Value dO = LoadTileOp::create(b, loc, qTileType, op.getDOutput(), batch, qt, head, one);
    Value lse = LoadRowOp::create(b, loc, rowType, op.getLse(), batch, head, qt);
    Value deltaRow = LoadRowOp::create(b, loc, rowType, delta, batch, head, qt);
    Value dq0 = FillOp::create(b, loc, qTileType, b.getF32FloatAttr(0));
    auto loop = KvLoopOp::create(b, loc, TypeRange{qTileType}, qt, schedule, ValueRange{dq0});
    Block *step = b.createBlock(&loop.getBody(), {}, {index, i1, qTileType},
                                SmallVector<Location>(3, loc));
    Value kt = step->getArgument(0), partial = step->getArgument(1), acc = step->getArgument(2);
    Value k = LoadTileOp::create(b, loc, kvTileType, op.getKey(), batch, kt, kvHead, one);
    Value v = LoadTileOp::create(b, loc, kvTileType, op.getValue(), batch, kt, kvHead, one);
    Value s = QKOp::create(b, loc, sType, q, k);
    Value masked = MaskTileOp::create(b, loc, sType, s, qt, kt, partial, StringAttr(), UnitAttr());
    Value p = RecomputePOp::create(b, loc, sType, masked, lse, scaleLog2, UnitAttr());
    Value dp = QKOp::create(b, loc, sType, dO, v);
    Value ds = DsOp::create(b, loc, sType, p, dp, deltaRow, UnitAttr());
    Value dqNew = MatmulAccOp::create(b, loc, qTileType, acc, ds, k);
    YieldOp::create(b, loc, ValueRange{dqNew});
    b.setInsertionPointAfter(loop);
    GradYieldOp::create(b, loc, loop.getResults());
    dq = qLoop.getDQuery();
  }
  op.replaceAllUsesWith(ValueRange{dq, kvLoop.getDKey(), kvLoop.getDValue()});
  op.erase();
}

struct AttnLowerToLoopsPass : public attnc::attn::impl::AttnLowerToLoopsBase<AttnLowerToLoopsPass> {
  void runOnOperation() override {
    SmallVector<AttentionOp> ops;
    getOperation()->walk([&](AttentionOp op) { ops.push_back(op); });
    for (AttentionOp op : ops) {
      if (!op.getTile() || !op.getSchedule()) {
        op.emitOpError("needs a tile and a schedule: run attn-tile and attn-classify-blocks first");
        return signalPassFailure();
      }
      lowerAttention(op);
    }
    SmallVector<AttentionGradOp> grads;
    getOperation()->walk([&](AttentionGradOp op) { grads.push_back(op); });
    for (AttentionGradOp op : grads) {
      if (!op.getTile() || !op.getSchedule()) {
        op.emitOpError("needs a tile and a schedule: run attn-schedule-recompute after "
                       "attn-classify-blocks");
        return signalPassFailure();
      }
      lowerAttentionGrad(op);
    }
  }
};

} // namespace
