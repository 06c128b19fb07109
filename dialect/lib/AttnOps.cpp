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
