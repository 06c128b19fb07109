//===- Report.h - What a mask costs -----------------------------*- C++ -*-===//
//
// The numbers behind `attnc --emit=report`: exact pair and tile counts from
// the block schedule, FLOPs, minimum HBM traffic, KV-cache size and a
// roofline time estimate. Free of MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_REPORT_REPORT_H
#define ATTNC_REPORT_REPORT_H

#include "attnc/Mask/Tiles.h"
#include "attnc/Spec/Spec.h"

#include <cstdint>
#include <string>

namespace attnc::report {

/// The roofline machine (H100 SXM defaults: dense bf16 tensor-core peak and
/// HBM3 bandwidth as measured in PEERS.md).
struct Hardware {
  double peakTflops = 799.0;
  double bandwidthTBs = 3.0;
};

struct Options {
  int64_t batch = 1;
  int64_t queryHeads = 1; ///< query heads counted (default one)
  Hardware hardware;
};

struct Report {
  // What was analysed.
  std::string name;
  std::string dtype;
  std::string mask; ///< mask::toString of the canonical mask
  int64_t headDim = 0, specQueryHeads = 0, specKvHeads = 0;
  int64_t nq = 0, nk = 0, batch = 1, queryHeads = 1, kvHeads = 1;
  int64_t blockM = 0, blockN = 0;
  bool closedForm = false;
  bool runtimeTokensOmitted = false; ///< a runtime global list was not counted

  // Counts, for batch x queryHeads (exact integers).
  int64_t allowedPairs = 0, densePairs = 0, computedPairs = 0;
  int64_t tilesFull = 0, tilesPartial = 0, tilesSkipped = 0;
  int64_t flopsFwd = 0, flopsBwd = 0, flopsFwdComputed = 0;
  int64_t hbmBytesMin = 0;
  int64_t kvCacheBytesPerToken = 0, kvCacheBytesPerTokenMha = 0, kvCacheBytesPerTokenMqa = 0;
  /// The backward plan (specs with "backward": true): what the forward saves
  /// (LSE, float32, next to its output O), the float32 workspace of the
  /// backward (delta, and dQ's float32 accumulator with atomic dQ), and the
  /// probabilities P in the dtype that a materializing backward would store
  /// instead (every pair of the dense N x N).
  bool backward = false;
  int64_t bwdLseBytes = 0, bwdWorkspaceBytes = 0, bwdPBytes = 0;

  // Ratios and estimates.
  double density = 0, waste = 0, estTimeMs = 0;
  bool computeBound = false;
  Hardware hardware;
};

/// Computes the report of `spec` (whose mask is canonicalized here) at the
/// lengths of `schedule`'s extent. `runtimeTokensOmitted` notes a runtime
/// global list that the schedule was built without.
Report compute(const spec::Spec &spec, const mask::BlockSchedule &schedule,
               const Options &options, bool runtimeTokensOmitted);

/// The report as a JSON object (keys listed in specs/README.md).
std::string toJson(const Report &report);

/// The report for people: one screen, every number explained.
std::string toText(const Report &report);

} // namespace attnc::report

#endif // ATTNC_REPORT_REPORT_H
