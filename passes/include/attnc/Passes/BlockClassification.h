//===- BlockClassification.h - Block classes of an attention ----*- C++ -*-===//
//
// The analysis behind attn-classify-blocks: for a tiled attn.attention, the
// schedule of kv tiles per query tile (mask::BlockSchedule), when the key and
// query lengths are static. Shared by the pass and -test-print-block-classes.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_PASSES_BLOCKCLASSIFICATION_H
#define ATTNC_PASSES_BLOCKCLASSIFICATION_H

#include "attnc/Dialect/Attn/AttnOps.h"
#include "attnc/Mask/Tiles.h"

#include <optional>

namespace attnc::attn {

class BlockClassification {
public:
  /// Analyses `op`, which must carry a tile configuration.
  explicit BlockClassification(AttentionOp op);

  /// The canonical mask the schedule was built for.
  const mask::Mask &getMask() const { return mask; }
  /// The band when the mask has a closed form.
  const std::optional<mask::Band> &getBand() const { return band; }
  /// The schedule, when the lengths are static and no token is left to launch.
  const std::optional<mask::BlockSchedule> &getSchedule() const { return schedule; }
  /// The schedule attribute attn-classify-blocks attaches.
  mlir::Attribute getScheduleAttr(mlir::MLIRContext *ctx) const;

private:
  mask::Mask mask;
  std::optional<mask::Band> band;
  std::optional<mask::BlockSchedule> schedule;
};

/// Whether a mask needs global tokens that are only given at launch.
bool needsLaunchTokens(const mask::Mask &mask);

/// The query-key pairs a flash loop on blockM x blockN tiles computes for
/// `op`'s mask (its FULL and PARTIAL tiles, clipped at the ends): at its
/// static lengths, else at `referenceLength` for each length given at launch;
/// global tokens given at launch count as none.
int64_t computedPairs(AttentionOp op, int64_t blockM, int64_t blockN, int64_t referenceLength);

/// The closed form of `op`'s mask, when it has one: what attn-classify-blocks
/// records as a #attn.band_schedule (BlockClassification::getBand); other
/// masks get tables. Needs no tile.
inline std::optional<mask::Band> getScheduleBand(AttentionOp op) {
  return mask::bandOf(mask::canonicalize(op.getMask().toMask()));
}

} // namespace attnc::attn

#endif // ATTNC_PASSES_BLOCKCLASSIFICATION_H
