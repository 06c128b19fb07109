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

LogicalResult AttentionGradOp::verify() {
  auto q = getQuery().getType(), k = getKey().getType(), v = getValue().getType();
  if (getOutput().getType() != q || getDOutput().getType() != q)
    return emitOpError("output and d_output must have the query's type ") << q;
  if (getDQuery().getType() != q || getDKey().getType() != k || getDValue().getType() != v)
    return emitOpError("d_query, d_key and d_value must have the types of query, key and value");
  if (q.getElementType() != k.getElementType() || q.getElementType() != v.getElementType())
    return emitOpError("query, key and value must have one element type");
  if (getQueryHeads() <= 0 || getKvHeads() <= 0 || getQueryHeads() % getKvHeads())
    return emitOpError("kv heads (") << getKvHeads() << ") must divide query heads ("
                                     << getQueryHeads() << ")";
  if (q.getDimSize(2) != getQueryHeads() || k.getDimSize(2) != getKvHeads())
    return emitOpError("head counts differ from the heads attribute");
  if (getLse().getType().getDimSize(1) != getQueryHeads())
    return emitOpError("lse must be [batch, query heads, query length]");
  if (getSchedule() && !getTile())
    return emitOpError("a block schedule needs a tile configuration");
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
  if ((*this)->getParentOfType<GradQLoopOp>()) {
    if (body.getNumArguments() == 3)
      setName(body.getArgument(2), "dq");
    return;
  }
  const char *state[] = {"m", "l", "acc"};
  for (unsigned i = 2; i < body.getNumArguments() && i < 5; ++i)
    setName(body.getArgument(i), state[i - 2]);
}

//===----------------------------------------------------------------------===//
// The backward loops
//===----------------------------------------------------------------------===//

LogicalResult GradKvLoopOp::verify() {
  Block &body = getBody().front();
  if (body.getNumArguments() != 3 ||
      !llvm::all_of(body.getArgumentTypes(), [](Type t) { return t.isIndex(); }))
    return emitOpError("body must take (batch, kv head, kv tile) indices");
  auto yield = dyn_cast<GradYieldOp>(body.getTerminator());
  int64_t blockN = getTile().getBlockN(), d = getQuery().getType().getDimSize(3);
  auto tileType = RankedTensorType::get({blockN, d}, Float32Type::get(getContext()));
  if (!yield || yield.getValues().size() != 2 ||
      llvm::any_of(yield.getValues().getTypes(), [&](Type t) { return t != tileType; }))
    return emitOpError("body must end with attn.grad_yield of the (")
           << blockN << ", " << d << ") dK and dV tiles";
  if (getAtomicDq() != static_cast<bool>(getDqAccum()))
    return emitOpError("has a dq_accum result iff atomic_dq is set");
  if (getDKey().getType() != getKey().getType() || getDValue().getType() != getValue().getType())
    return emitOpError("d_key and d_value must have the types of key and value");
  return success();
}

void GradKvLoopOp::getAsmBlockArgumentNames(Region &region, OpAsmSetValueNameFn setName) {
  Block &body = region.front();
  if (body.getNumArguments() == 3) {
    setName(body.getArgument(0), "b");
    setName(body.getArgument(1), "kv_head");
    setName(body.getArgument(2), "kt");
  }
}

void GradKvLoopOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  setName(getDKey(), "d_key");
  setName(getDValue(), "d_value");
  if (getDqAccum())
    setName(getDqAccum(), "dq_accum");
}

LogicalResult QLoopOp::verify() {
  Block &body = getBody().front();
  size_t n = getInitArgs().size();
  if (body.getNumArguments() != n + 3 || !body.getArgument(0).getType().isIndex() ||
      !body.getArgument(1).getType().isIndex() || !body.getArgument(2).getType().isInteger(1))
    return emitOpError(
        "body must take (query head: index, query tile: index, partial: i1) and the iter_args");
  for (size_t i = 0; i < n; ++i)
    if (body.getArgument(i + 3).getType() != getInitArgs()[i].getType())
      return emitOpError("iter_arg #") << i << " type mismatch";
  auto yield = dyn_cast<YieldOp>(body.getTerminator());
  if (!yield || yield.getValues().getTypes() != getInitArgs().getTypes())
    return emitOpError("body must end with attn.yield of the iter_args' types");
  if (getGroup() <= 0)
    return emitOpError("group must be positive, got ") << getGroup();
  return success();
}

void QLoopOp::getAsmBlockArgumentNames(Region &region, OpAsmSetValueNameFn setName) {
  Block &body = region.front();
  if (body.getNumArguments() >= 3) {
    setName(body.getArgument(0), "h");
    setName(body.getArgument(1), "qt");
    setName(body.getArgument(2), "partial");
  }
  const char *state[] = {"dk", "dv"};
  for (unsigned i = 3; i < body.getNumArguments() && i < 5; ++i)
    setName(body.getArgument(i), state[i - 3]);
}

void QLoopOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  const char *state[] = {"dk_final", "dv_final"};
  for (unsigned i = 0; i < getNumResults() && i < 2; ++i)
    setName(getResult(i), state[i]);
}

void GradQLoopOp::getAsmBlockArgumentNames(Region &region, OpAsmSetValueNameFn setName) {
  Block &body = region.front();
  if (body.getNumArguments() == 3) {
    setName(body.getArgument(0), "b");
    setName(body.getArgument(1), "h");
    setName(body.getArgument(2), "qt");
  }
}

void GradQLoopOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  setName(getDQuery(), "d_query");
}
void GradPreprocessOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  setName(getDelta(), "delta");
}
void DqConvertOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getDQuery(), "dq"); }

LogicalResult MatmulAccOp::verify() {
  auto acc = cast<RankedTensorType>(getAcc().getType()), a = cast<RankedTensorType>(getA().getType()),
       b = cast<RankedTensorType>(getB().getType());
  if (acc.getRank() != 2 || a.getRank() != 2 || b.getRank() != 2 ||
      a.getDimSize(0) != acc.getDimSize(0) || b.getDimSize(1) != acc.getDimSize(1) ||
      a.getDimSize(1) != b.getDimSize(0))
    return emitOpError("shapes do not multiply: acc ")
           << acc << " + " << a << " x " << b;
  return success();
}

//===----------------------------------------------------------------------===//
// Result names: the printed IR (and the emitted code) read like the math
//===----------------------------------------------------------------------===//

void LoadTileOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  // Q, K and V are the first three arguments of the attention's function.
  // The backward's function takes (Q, K, V, O, LSE, dO).
  auto arg = dyn_cast<BlockArgument>(getSource());
  const char *names[] = {"q_tile", "k_tile", "v_tile", "o_tile", "tile", "do_tile"};
  setName(getResult(), arg && arg.getArgNumber() < 6 ? names[arg.getArgNumber()] : "tile");
}
void LoadRowOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  auto arg = dyn_cast<BlockArgument>(getSource());
  setName(getResult(), arg && arg.getArgNumber() == 4 ? "lse_row" : "delta_row");
}
void QKOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  // S = Q K^T; in the backward S^T = K Q^T, dP = dO V^T and dP^T = V dO^T.
  auto load = getQ().getDefiningOp<LoadTileOp>();
  auto arg = load ? dyn_cast<BlockArgument>(load.getSource()) : BlockArgument();
  unsigned n = arg ? arg.getArgNumber() : 0;
  setName(getResult(), n == 1 ? "st" : n == 2 ? "dpt" : n == 5 ? "dp" : "s");
}
void RecomputePOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  setName(getResult(), getTransposed() ? "pt" : "p");
}
void DsOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  setName(getResult(), getTransposed() ? "dst" : "ds");
}
void MatmulAccOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  // Named after the accumulator it updates: dk_new, dv_new, dq_new.
  std::string name = "acc_new";
  if (auto arg = dyn_cast<BlockArgument>(getAcc())) {
    Operation *loop = arg.getOwner()->getParentOp();
    if (isa<QLoopOp>(loop))
      name = arg.getArgNumber() == 3 ? "dk_new" : "dv_new";
    else if (isa<KvLoopOp>(loop))
      name = "dq_new";
  }
  setName(getResult(), name);
}
void MaskTileOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  setName(getResult(), getTransposed() ? "st_masked" : "s_masked");
}
void RowMaxOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getResult(), "m_new"); }
void Exp2DiffOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getResult(), "p"); }
void RescaleOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getResult(), "alpha"); }
void RowSumUpdateOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getResult(), "l_new"); }
void PVUpdateOp::getAsmResultNames(OpAsmSetValueNameFn setName) { setName(getResult(), "acc_new"); }
void FillOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  // The backward's accumulators: named by the loop operand they initialize.
  for (OpOperand &use : getResult().getUses()) {
    if (auto qLoop = dyn_cast<QLoopOp>(use.getOwner())) {
      unsigned i = use.getOperandNumber() - qLoop.getInitArgs().getBeginOperandIndex();
      setName(getResult(), i == 0 ? "dk0" : "dv0");
      return;
    }
    if (isa<KvLoopOp>(use.getOwner()) && getOperation()->getParentOfType<GradQLoopOp>()) {
      setName(getResult(), "dq0");
      return;
    }
  }
  // The online-softmax state: m starts at -inf, l and the O accumulator at 0.
  auto type = cast<RankedTensorType>(getResult().getType());
  setName(getResult(), type.getRank() == 2 ? "acc0" : getValue().convertToFloat() < 0 ? "m0" : "l0");
}
void FlashLoopOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  setName(getOutput(), "output");
  setName(getLse(), "lse");
}
void KvLoopOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  if ((*this)->getParentOfType<GradQLoopOp>()) {
    setName(getResult(0), "dq_final");
    return;
  }
  const char *state[] = {"m_final", "l_final", "acc_final"};
  for (unsigned i = 0; i < getNumResults() && i < 3; ++i)
    setName(getResult(i), state[i]);
}
void FinalizeOp::getAsmResultNames(OpAsmSetValueNameFn setName) {
  setName(getOutput(), "o_tile");
  setName(getLse(), "lse_tile");
}
