//===- BlockClassification.cpp - Block classes of an attention ------------===//

#include "attnc/Passes/BlockClassification.h"

using namespace mlir;
using namespace attnc;
using namespace attnc::attn;

bool attnc::attn::needsLaunchTokens(const mask::Mask &m) {
  if (m.kind == mask::Kind::GlobalRuntime)
    return true;
  for (const mask::Mask &child : m.children)
    if (needsLaunchTokens(child))
      return true;
  return false;
}

BlockClassification::BlockClassification(AttentionOp op)
    : mask(mask::canonicalize(op.getMask().toMask())), band(mask::bandOf(mask)) {
  TileAttr tile = *op.getTile();
  int64_t nq = op.getQuery().getType().getDimSize(1);
  int64_t nk = op.getKey().getType().getDimSize(1);
  if (ShapedType::isDynamic(nq) || ShapedType::isDynamic(nk) || needsLaunchTokens(mask))
    return;
  schedule.emplace(mask, mask::Extent{nq, nk, nullptr}, tile.getBlockM(), tile.getBlockN());
}

int64_t attnc::attn::computedPairs(AttentionOp op, int64_t blockM, int64_t blockN,
                                   int64_t referenceLength) {
  int64_t nq = op.getQuery().getType().getDimSize(1);
  int64_t nk = op.getKey().getType().getDimSize(1);
  if (ShapedType::isDynamic(nq))
    nq = referenceLength;
  if (ShapedType::isDynamic(nk))
    nk = referenceLength;
  const std::vector<int64_t> noTokens;
  mask::BlockSchedule schedule(mask::canonicalize(op.getMask().toMask()),
                               mask::Extent{nq, nk, &noTokens}, blockM, blockN);
  return schedule.totals().computedPairs;
}

Attribute BlockClassification::getScheduleAttr(MLIRContext *ctx) const {
  if (band)
    return BandScheduleAttr::get(ctx, band->lo, band->hi, band->period);
  if (!schedule)
    return LaunchScheduleAttr::get(ctx);
  mask::TileTotals totals = schedule->totals();
  return TableScheduleAttr::get(ctx, totals.rowTiles, totals.colTiles, totals.full,
                                totals.partial);
}
