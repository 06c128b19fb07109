//===- Reference.h - Brute-force float64 attention --------------*- C++ -*-===//
//
// The oracle of every numeric test: the forward pass of any spec computed in
// float64, one (batch, head, query row) at a time, with no tiling, no online
// softmax and no shortcuts. Free of MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_REFERENCE_REFERENCE_H
#define ATTNC_REFERENCE_REFERENCE_H

#include "attnc/Mask/Mask.h"

#include <cstdint>
#include <vector>

namespace attnc::reference {

/// Problem shape. Q is [batch, nq, hq, d], K and V are [batch, nk, hkv, d],
/// all contiguous row-major; O is like Q; LSE is [batch, hq, nq].
struct Shape {
  int64_t batch = 1;
  int64_t nq = 0;
  int64_t nk = 0;
  int64_t hq = 1;
  int64_t hkv = 1;
  int64_t d = 0;
};

struct Output {
  std::vector<double> o;   ///< [batch, nq, hq, d]
  std::vector<double> lse; ///< [batch, hq, nq], natural log; -inf on fully masked rows
};

/// Exact attention: O[b,i,h] = sum_k softmax_k(scale * q.k) v over allowed k,
/// with kv head h / (hq / hkv). A fully masked row gives O = 0, LSE = -inf.
/// `runtimeTokens` feeds a GlobalRuntime mask (may be null otherwise).
Output forward(const mask::Mask &mask, const Shape &shape, double scale,
               const std::vector<double> &q, const std::vector<double> &k,
               const std::vector<double> &v,
               const std::vector<int64_t> *runtimeTokens = nullptr);

/// Relative L2 error ||got - want|| / ||want|| over the finite entries of want
/// (entries where want is -inf must be -inf in got too, else the error is +inf).
double relativeL2(const std::vector<double> &got, const std::vector<double> &want);

} // namespace attnc::reference

#endif // ATTNC_REFERENCE_REFERENCE_H
