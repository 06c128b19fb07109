//===- AttnOps.cpp - Ops of the attn dialect ------------------------------===//

#include "attnc/Dialect/Attn/AttnOps.h"

#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace attnc::attn;

#define GET_OP_CLASSES
#include "attnc/Dialect/Attn/AttnOps.cpp.inc"

/// Whether two dimensions can be equal (equal, or one of them dynamic).
static bool compatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

static std::string dimString(int64_t d) {
  return ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
}

LogicalResult AttentionOp::verify() {
  auto q = getQuery().getType(), k = getKey().getType(), v = getValue().getType();
  auto o = getOutput().getType();
  auto lse = getLse().getType();
  enum { kBatch = 0, kSeq = 1, kHeads = 2, kDim = 3 };

  if (q.getElementType() != k.getElementType() || q.getElementType() != v.getElementType())
    return emitOpError("query, key and value must have one element type, got ")
           << q.getElementType() << ", " << k.getElementType() << ", " << v.getElementType();
  for (auto [name, type] : {std::pair{"query", q}, std::pair{"key", k}, std::pair{"value", v}})
    if (ShapedType::isDynamic(type.getDimSize(kHeads)) ||
        ShapedType::isDynamic(type.getDimSize(kDim)))
      return emitOpError() << name << " heads and head_dim must be static, got " << type;

  int64_t d = q.getDimSize(kDim);
  if (d < 8 || d > 256 || d % 8)
    return emitOpError("head_dim must be a multiple of 8 in [8, 256], got ") << d;
  if (k.getDimSize(kDim) != d || v.getDimSize(kDim) != d)
    return emitOpError("key and value head_dim must equal the query's ") << d;

  if (getQueryHeads() <= 0 || getKvHeads() <= 0)
    return emitOpError("heads must be positive, got ")
           << getQueryHeads() << " query and " << getKvHeads() << " kv";
  if (getQueryHeads() % getKvHeads())
    return emitOpError("kv heads (") << getKvHeads() << ") must divide query heads ("
                                     << getQueryHeads() << ")";
  if (q.getDimSize(kHeads) != getQueryHeads())
    return emitOpError("query has ") << q.getDimSize(kHeads) << " heads, attribute says "
                                     << getQueryHeads();
  if (k.getDimSize(kHeads) != getKvHeads() || v.getDimSize(kHeads) != getKvHeads())
    return emitOpError("key and value must have ") << getKvHeads() << " heads";

  for (int dim : {kBatch, kSeq})
    if (!compatible(k.getDimSize(dim), v.getDimSize(dim)))
      return emitOpError("key and value shapes differ: ") << k << " vs " << v;
  if (!compatible(q.getDimSize(kBatch), k.getDimSize(kBatch)))
    return emitOpError("query and key batch sizes differ: ")
           << dimString(q.getDimSize(kBatch)) << " vs " << dimString(k.getDimSize(kBatch));

  if (o != q)
    return emitOpError("output type must equal the query type ") << q << ", got " << o;
  if (!compatible(lse.getDimSize(0), q.getDimSize(kBatch)) ||
      lse.getDimSize(1) != getQueryHeads() || !compatible(lse.getDimSize(2), q.getDimSize(kSeq)))
    return emitOpError("lse must be [batch, query heads, query length] = [")
           << dimString(q.getDimSize(kBatch)) << ", " << getQueryHeads() << ", "
           << dimString(q.getDimSize(kSeq)) << "], got " << lse;

  double scale = getScale().convertToDouble();
  if (!(scale > 0) || !std::isfinite(scale))
    return emitOpError("scale must be a positive finite number, got ") << scale;

  if (getSchedule() && !getTile())
    return emitOpError("a block schedule needs a tile configuration");

  int64_t nk = k.getDimSize(kSeq);
  if (!ShapedType::isDynamic(nk))
    return verifyMaskForKeyLength(getMask(), nk, [&]() { return emitOpError(); });
  return success();
}

//===----------------------------------------------------------------------===//
// The flash loop
//===----------------------------------------------------------------------===//

LogicalResult FlashLoopOp::verify() {
  Block &body = getBody().front();
  if (body.getNumArguments() != 3 ||
      !llvm::all_of(body.getArgumentTypes(), [](Type t) { return t.isIndex(); }))
    return emitOpError("body must take (batch, query head, query tile) indices");
  auto yield = dyn_cast<TileYieldOp>(body.getTerminator());
  if (!yield)
    return emitOpError("body must end with attn.tile_yield");
  int64_t blockM = getTile().getBlockM(), d = getQuery().getType().getDimSize(3);
  auto outType = dyn_cast<RankedTensorType>(yield.getOutput().getType());
  auto lseType = dyn_cast<RankedTensorType>(yield.getLse().getType());
  if (!outType || outType.getShape() != ArrayRef<int64_t>{blockM, d} || !lseType ||
      lseType.getShape() != ArrayRef<int64_t>{blockM})
    return yield.emitOpError("must yield a (") << blockM << ", " << d << ") output tile and a ("
                                               << blockM << ") lse tile";
  if (getOutput().getType() != getQuery().getType())
    return emitOpError("output type must equal the query type");
  return success();
}

void FlashLoopOp::getAsmBlockArgumentNames(Region &region, OpAsmSetValueNameFn setName) {
  Block &body = region.front();
  if (body.getNumArguments() == 3) {
    setName(body.getArgument(0), "b");
    setName(body.getArgument(1), "h");
    setName(body.getArgument(2), "qt");
  }
}

LogicalResult KvLoopOp::verify() {
  Block &body = getBody().front();
  size_t n = getInitArgs().size();
  if (body.getNumArguments() != n + 2 || !body.getArgument(0).getType().isIndex() ||
      !body.getArgument(1).getType().isInteger(1))
    return emitOpError("body must take (kv tile: index, partial: i1) and the iter_args");
  for (size_t i = 0; i < n; ++i)
    if (body.getArgument(i + 2).getType() != getInitArgs()[i].getType() ||
        getResult(i).getType() != getInitArgs()[i].getType())
      return emitOpError("iter_arg #") << i << " type mismatch";
  auto yield = dyn_cast<YieldOp>(body.getTerminator());
  if (!yield || yield.getValues().getTypes() != getInitArgs().getTypes())
    return emitOpError("body must end with attn.yield of the iter_args' types");
  return success();
}

void KvLoopOp::getAsmBlockArgumentNames(Region &region, OpAsmSetValueNameFn setName) {
  Block &body = region.front();
  if (body.getNumArguments() >= 2) {
    setName(body.getArgument(0), "kt");
    setName(body.getArgument(1), "partial");
  }
  const char *state[] = {"m", "l", "acc"};
  for (unsigned i = 2; i < body.getNumArguments() && i < 5; ++i)
    setName(body.getArgument(i), state[i - 2]);
}

//===----------------------------------------------------------------------===//
// Result names: the printed IR (and the emitted code) read like the math
//===----------------------------------------------------------------------===//

void LoadTileOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  // Q, K and V are the first three arguments of the attention's function.
  auto arg = dyn_cast<BlockArgument>(getSource());
  const char *names[] = {"q_tile", "k_tile", "v_tile"};
  setName(getResult(), arg && arg.getArgNumber() < 3 ? names[arg.getArgNumber()] : "tile");
}
void QKOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getResult(), "s"); }
void MaskTileOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getResult(), "s_masked"); }
void RowMaxOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getResult(), "m_new"); }
void Exp2DiffOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getResult(), "p"); }
void RescaleOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getResult(), "alpha"); }
void RowSumUpdateOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getResult(), "l_new"); }
void PVUpdateOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getResult(), "acc_new"); }
void FillOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  // The online-softmax state: m starts at -inf, l and the O accumulator at 0.
  auto type = cast<RankedTensorType>(getResult().getType());
  setName(getResult(), type.getRank() == 2 ? "acc0" : getValue().convertToFloat() < 0 ? "m0" : "l0");
}
void FlashLoopOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  setName(getOutput(), "output");
  setName(getLse(), "lse");
}
void KvLoopOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  const char *state[] = {"m_final", "l_final", "acc_final"};
  for (unsigned i = 0; i < getNumResults() && i < 3; ++i)
    setName(getResult(i), state[i]);
}
void FinalizeOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  setName(getOutput(), "o_tile");
  setName(getLse(), "lse_tile");
}
