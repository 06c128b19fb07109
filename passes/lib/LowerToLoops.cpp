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
  Value masked = MaskTileOp::create(b, loc, sTileType, s, qTile, kvTile, partial, StringAttr());
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
  }
};

} // namespace
