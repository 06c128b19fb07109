//===- Reference.h - Brute-force float64 attention --------------*- C++ -*-===//
//
// The oracle of every numeric test: the forward and backward passes of any
// spec computed in float64, one (batch, head, query row) at a time, with no
// tiling, no online softmax and no shortcuts. Free of MLIR.
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
               const std::vector<double> &v, const std::vector<int64_t> *runtimeTokens = nullptr);

/// forward() of the query rows `rows` alone (each in [0, shape.nq), any
/// order), for checks of problems too large for the whole reference: `qRows`
/// holds those rows of Q, [batch, rows.size(), hq, d]; the result's o is
/// [batch, rows.size(), hq, d] and its lse [batch, hq, rows.size()]. Row n is
/// bitwise row rows[n] of forward() (the same computation: shape.nq still
/// places the rows, p = rows[n] + nk - nq).
Output forwardRows(const mask::Mask &mask, const Shape &shape, double scale,
                   const std::vector<double> &qRows, const std::vector<double> &k,
                   const std::vector<double> &v, const std::vector<int64_t> &rows,
                   const std::vector<int64_t> *runtimeTokens = nullptr);

/// Gradients of a scalar loss L with respect to the inputs of forward().
struct Gradients {
  std::vector<double> dq; ///< dL/dQ, [batch, nq, hq, d] like q
  std::vector<double> dk; ///< dL/dK, [batch, nk, hkv, d] like k
  std::vector<double> dv; ///< dL/dV, [batch, nk, hkv, d] like v
};

/// Exact gradients of attention given dO = dL/dO (like q). Per (batch, query
/// head, row) the softmax P over the allowed keys is materialized exactly as
/// forward() computes it (so is O), then
///   dV_j += P_j dO,  dP_j = dO . V_j,  dS_j = P_j (dP_j - rowsum(dO * O)),
///   dQ = scale sum_j dS_j K_j,  dK_j += scale dS_j Q.
/// GQA: dK and dV of kv head g are the sum, in ascending query-head order,
/// of the per-query-head gradients of its group (each accumulated over rows
/// in ascending order, then scaled). Fully masked rows get dQ = 0 and add
/// nothing; keys no row sees get dK = dV = 0, all exactly.
Gradients backward(const mask::Mask &mask, const Shape &shape, double scale,
                   const std::vector<double> &q, const std::vector<double> &k,
                   const std::vector<double> &v, const std::vector<double> &dO,
                   const std::vector<int64_t> *runtimeTokens = nullptr);

/// Relative L2 error ||got - want|| / ||want|| over the finite entries of want
/// (entries where want is -inf must be -inf in got too, else the error is +inf).
double relativeL2(const std::vector<double> &got, const std::vector<double> &want);

} // namespace attnc::reference

#endif // ATTNC_REFERENCE_REFERENCE_H
