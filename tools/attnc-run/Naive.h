//===- Naive.h - Materialized attention in the spec's dtype -----*- C++ -*-===//
//
// The baseline of attnc-run's --check and --bench, and of the error rule
// (ARCHITECTURE.md, "Testing": attnc's relative L2 error <= 2x that of a
// naive implementation in the same dtype on the same inputs). It computes
// attention the way `softmax(q @ k.T * scale + mask) @ v` does in a
// framework with bf16/fp16 tensors, materializing the scores:
//
//   S = Q K^T        float32 dot products, rounded to the dtype, stored
//                    [B, Hq, Nq, Nk] (masked pairs hold -inf)
//   P = softmax(S * scale) computed in float32 from the rounded scores,
//                    rounded to the dtype, stored [B, Hq, Nq, Nk]
//   O = P V          float32 accumulation, rounded to the dtype
//   LSE = max + log(sum)  float32, from the same scaled rounded scores
//
// A fully masked row gives O = 0, LSE = -inf.
//
// The backward (the baseline of the gradient rule: <= 3x its error) is what
// autograd computes through those materialized tensors, every tensor in the
// dtype and every product accumulated in float32:
//
//   P                recomputed as above, [B, Hq, Nq, Nk] in the dtype
//   dV = P^T dO      per query head, rounded; GQA sums the group in float32
//   dP = dO V^T      rounded to the dtype
//   dS = P * (dP - rowsum(P * dP))   softmax backward in float32, rounded
//   dQ = scale dS K,  dK = scale dS^T Q   float32, rounded (GQA as dV)
//
// A fully masked row has P = 0: dQ = 0 and nothing flows to dK, dV. Free of
// MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_TOOLS_ATTNC_RUN_NAIVE_H
#define ATTNC_TOOLS_ATTNC_RUN_NAIVE_H

#include "NpyIO.h"

#include "attnc/Mask/Mask.h"
#include "attnc/Reference/Reference.h"

#include <cstdint>
#include <vector>

namespace attnc::naive {

using npy::HalfType;
using reference::Shape;

struct Result {
  std::vector<uint16_t> o; ///< [B, Nq, Hq, D], dtype bits
  std::vector<float> lse;  ///< [B, Hq, Nq]
  /// Bytes of the materialized buffers: S and P ([B, Hq, Nq, Nk] each, in
  /// the dtype; [Nq, Nk] per worker without materializeAll) and the [Nq, Nk]
  /// mask (one byte per pair).
  int64_t materializedBytes = 0;
  /// Pairs (query row, key) the mask allows, for one (batch, head).
  int64_t allowedPairs = 0;
};

/// Runs the naive attention on contiguous [B, N, H, D] dtype tensors.
/// `threads` >= 1 workers share the (batch, head) slices. With
/// `materializeAll` false, S and P exist for one (batch, head) per worker at
/// a time (the same numbers, less memory: for checks rather than the memory
/// experiment of --bench).
Result forward(const mask::Mask &mask, const Shape &shape, HalfType type, float scale,
               const uint16_t *q, const uint16_t *k, const uint16_t *v,
               const std::vector<int64_t> *runtimeTokens, int threads, bool materializeAll = true);

/// forward() of the query rows `rows` alone (any order, each in [0,
/// shape.nq)), for problems too large to materialize: `qRows` holds those
/// rows of Q, [B, rows.size(), Hq, D]; o is [B, rows.size(), Hq, D], lse [B,
/// Hq, rows.size()], bitwise the rows of forward() (masked keys add exact
/// zeros there); allowedPairs counts the pairs of these rows;
/// materializedBytes is 0. `threads` workers share the rows.
Result forwardRows(const mask::Mask &mask, const Shape &shape, HalfType type, float scale,
                   const uint16_t *qRows, const uint16_t *k, const uint16_t *v,
                   const std::vector<int64_t> &rows, const std::vector<int64_t> *runtimeTokens,
                   int threads);

/// Gradients in the dtype (bits).
struct Gradients {
  std::vector<uint16_t> dq;     ///< [B, Nq, Hq, D]
  std::vector<uint16_t> dk, dv; ///< [B, Nk, Hkv, D]
};

/// The naive backward (header comment) of contiguous [B, N, H, D] dtype
/// tensors given dO (like q). `threads` workers share the (batch, head)
/// slices; each holds P and dS of one (batch, head) at a time.
Gradients backward(const mask::Mask &mask, const Shape &shape, HalfType type, float scale,
                   const uint16_t *q, const uint16_t *k, const uint16_t *v, const uint16_t *dO,
                   const std::vector<int64_t> *runtimeTokens, int threads);

/// reference::forward, split over query heads on `threads` workers: the
/// same computation row by row, so the result is bitwise identical.
reference::Output parallelReference(const mask::Mask &mask, const Shape &shape, double scale,
                                    const std::vector<double> &q, const std::vector<double> &k,
                                    const std::vector<double> &v,
                                    const std::vector<int64_t> *runtimeTokens, int threads);

/// reference::forwardRows split over the rows on `threads` workers
/// (bitwise the same result).
reference::Output parallelReferenceRows(const mask::Mask &mask, const Shape &shape, double scale,
                                        const std::vector<double> &qRows,
                                        const std::vector<double> &k, const std::vector<double> &v,
                                        const std::vector<int64_t> &rows,
                                        const std::vector<int64_t> *runtimeTokens, int threads);

/// reference::backward split over query heads on `threads` workers: each
/// head's gradients are computed alone and dK, dV summed over the group in
/// ascending head order, as reference::backward does, so the result is
/// bitwise identical.
reference::Gradients
parallelReferenceBackward(const mask::Mask &mask, const Shape &shape, double scale,
                          const std::vector<double> &q, const std::vector<double> &k,
                          const std::vector<double> &v, const std::vector<double> &dO,
                          const std::vector<int64_t> *runtimeTokens, int threads);

} // namespace attnc::naive

#endif // ATTNC_TOOLS_ATTNC_RUN_NAIVE_H
