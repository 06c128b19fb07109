//===- Reference.cpp - Brute-force float64 attention ----------------------===//
//
// One (batch, query head, query row) at a time: the scores of every allowed
// key, a max-subtracted softmax, the weighted sum of V; the backward pass
// materializes the same softmax row and differentiates it. No tiling, no
// online softmax. Shape errors are programming errors of the caller: they abort with
// a message rather than read out of bounds.
//
//===----------------------------------------------------------------------===//

#include "attnc/Reference/Reference.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace attnc::reference {

/// Aborts with a message when a precondition of the caller does not hold.
static void require(bool ok, const char *caller, const char *what) {
  if (ok)
    return;
  std::fprintf(stderr, "attnc::reference::%s: %s\n", caller, what);
  std::abort();
}

/// Checks the shape and the sizes of K and V; Q's size is the caller's.
static void requireShape(const Shape &shape, const std::vector<double> &k,
                         const std::vector<double> &v, const char *caller) {
  const int64_t B = shape.batch, Nq = shape.nq, Nk = shape.nk, D = shape.d;
  require(B >= 0 && Nq >= 0 && Nk >= 0 && D >= 0, caller, "negative extent");
  require(shape.hq >= 1 && shape.hkv >= 1 && shape.hq % shape.hkv == 0, caller,
          "hq must be a positive multiple of hkv");
  require(static_cast<int64_t>(k.size()) == B * Nk * shape.hkv * D, caller, "k has the wrong size");
  require(static_cast<int64_t>(v.size()) == B * Nk * shape.hkv * D, caller, "v has the wrong size");
}

/// The keys query row i may attend to, ascending.
static void allowedKeys(const mask::Predicate &pred, int64_t i, int64_t nk,
                        std::vector<int64_t> &keys) {
  keys.clear();
  for (int64_t j = 0; j < nk; ++j)
    if (pred.allowed(i, j))
      keys.push_back(j);
}

/// The softmax of one (batch, head, query row) over its allowed keys
/// (`keys` non-empty; `kRows[n]` the K row of key n): probs[n] = exp(s_n -
/// max) / sum with the scaled scores s_n = scale * q . k_n. Returns the LSE,
/// max + log(sum). The one definition shared by forward and backward.
static double rowSoftmax(const double *qRow, const std::vector<const double *> &kRows, int64_t d,
                         double scale, std::vector<double> &probs) {
  probs.resize(kRows.size());
  double maxScore = -std::numeric_limits<double>::infinity();
  for (size_t n = 0; n < kRows.size(); ++n) {
    double dot = 0;
    for (int64_t c = 0; c < d; ++c)
      dot += qRow[c] * kRows[n][c];
    probs[n] = scale * dot;
    maxScore = std::max(maxScore, probs[n]);
  }
  double sum = 0;
  for (double &p : probs) {
    p = std::exp(p - maxScore);
    sum += p;
  }
  for (double &p : probs)
    p /= sum;
  return maxScore + std::log(sum);
}

Output forwardRows(const mask::Mask &mask, const Shape &shape, double scale,
                   const std::vector<double> &qRows, const std::vector<double> &k,
                   const std::vector<double> &v, const std::vector<int64_t> &rows,
                   const std::vector<int64_t> *runtimeTokens) {
  const char *caller = "forward";
  requireShape(shape, k, v, caller);
  const int64_t B = shape.batch, Nq = shape.nq, Nk = shape.nk;
  const int64_t Hq = shape.hq, Hkv = shape.hkv, D = shape.d;
  const int64_t R = static_cast<int64_t>(rows.size());
  require(static_cast<int64_t>(qRows.size()) == B * R * Hq * D, caller, "q has the wrong size");
  for (int64_t i : rows)
    require(i >= 0 && i < Nq, caller, "row out of range");

  const int64_t group = Hq / Hkv;
  mask::Predicate pred(mask, mask::Extent{Nq, Nk, runtimeTokens});

  Output out;
  out.o.assign(static_cast<size_t>(B * R * Hq * D), 0.0);
  out.lse.assign(static_cast<size_t>(B * Hq * R), -std::numeric_limits<double>::infinity());

  // Element offsets of row-major [b, n, h, d] tensors (n: index into rows).
  auto qIndex = [&](int64_t b, int64_t n, int64_t h) { return ((b * R + n) * Hq + h) * D; };
  auto kvIndex = [&](int64_t b, int64_t j, int64_t h) { return ((b * Nk + j) * Hkv + h) * D; };

  std::vector<int64_t> keys;         // allowed keys of the current row
  std::vector<const double *> kRows; // their K rows in the current head
  std::vector<double> probs;         // their softmax weights
  for (int64_t n = 0; n < R; ++n) {
    allowedKeys(pred, rows[static_cast<size_t>(n)], Nk, keys);
    if (keys.empty())
      continue; // O stays 0, LSE stays -inf.
    kRows.resize(keys.size());

    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < Hq; ++h) {
        const int64_t hk = h / group;
        for (size_t m = 0; m < keys.size(); ++m)
          kRows[m] = k.data() + kvIndex(b, keys[m], hk);
        const double lse = rowSoftmax(qRows.data() + qIndex(b, n, h), kRows, D, scale, probs);
        double *oRow = out.o.data() + qIndex(b, n, h);
        for (size_t m = 0; m < keys.size(); ++m) {
          const double *vRow = v.data() + kvIndex(b, keys[m], hk);
          for (int64_t c = 0; c < D; ++c)
            oRow[c] += probs[m] * vRow[c];
        }
        out.lse[static_cast<size_t>((b * Hq + h) * R + n)] = lse;
      }
    }
  }
  return out;
}

Output forward(const mask::Mask &mask, const Shape &shape, double scale,
               const std::vector<double> &q, const std::vector<double> &k,
               const std::vector<double> &v, const std::vector<int64_t> *runtimeTokens) {
  std::vector<int64_t> rows(static_cast<size_t>(std::max<int64_t>(shape.nq, 0)));
  for (size_t i = 0; i < rows.size(); ++i)
    rows[i] = static_cast<int64_t>(i);
  return forwardRows(mask, shape, scale, q, k, v, rows, runtimeTokens);
}

Gradients backward(const mask::Mask &mask, const Shape &shape, double scale,
                   const std::vector<double> &q, const std::vector<double> &k,
                   const std::vector<double> &v, const std::vector<double> &dO,
                   const std::vector<int64_t> *runtimeTokens) {
  const char *caller = "backward";
  requireShape(shape, k, v, caller);
  const int64_t B = shape.batch, Nq = shape.nq, Nk = shape.nk;
  const int64_t Hq = shape.hq, Hkv = shape.hkv, D = shape.d;
  require(static_cast<int64_t>(q.size()) == B * Nq * Hq * D, caller, "q has the wrong size");
  require(dO.size() == q.size(), caller, "dO has the wrong size");

  const int64_t group = Hq / Hkv;
  mask::Predicate pred(mask, mask::Extent{Nq, Nk, runtimeTokens});
  // The allowed keys of every row, once: keys[keyStart[i] .. keyStart[i + 1]).
  std::vector<int64_t> keyStart(static_cast<size_t>(Nq + 1), 0), keys, rowKeys;
  for (int64_t i = 0; i < Nq; ++i) {
    allowedKeys(pred, i, Nk, rowKeys);
    keys.insert(keys.end(), rowKeys.begin(), rowKeys.end());
    keyStart[static_cast<size_t>(i + 1)] = static_cast<int64_t>(keys.size());
  }

  Gradients g;
  g.dq.assign(q.size(), 0.0);
  g.dk.assign(k.size(), 0.0);
  g.dv.assign(v.size(), 0.0);

  auto qIndex = [&](int64_t b, int64_t i, int64_t h) { return ((b * Nq + i) * Hq + h) * D; };
  auto kvIndex = [&](int64_t b, int64_t j, int64_t h) { return ((b * Nk + j) * Hkv + h) * D; };

  // One query head's dK (unscaled: sum_i dS_ij Q_i) and dV, [Nk, D].
  std::vector<double> dkHead(static_cast<size_t>(Nk * D)), dvHead(static_cast<size_t>(Nk * D));
  std::vector<const double *> kRows;
  std::vector<double> probs, oRow(static_cast<size_t>(D)), dqAcc(static_cast<size_t>(D));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t hk = h / group;
      std::fill(dkHead.begin(), dkHead.end(), 0.0);
      std::fill(dvHead.begin(), dvHead.end(), 0.0);
      for (int64_t i = 0; i < Nq; ++i) {
        const int64_t *rowBegin = keys.data() + keyStart[static_cast<size_t>(i)];
        const size_t count = static_cast<size_t>(keyStart[static_cast<size_t>(i + 1)] -
                                                 keyStart[static_cast<size_t>(i)]);
        if (count == 0)
          continue; // fully masked: dQ stays 0, nothing flows to dK, dV.
        kRows.resize(count);
        for (size_t m = 0; m < count; ++m)
          kRows[m] = k.data() + kvIndex(b, rowBegin[m], hk);
        const double *qRow = q.data() + qIndex(b, i, h);
        const double *dORow = dO.data() + qIndex(b, i, h);
        rowSoftmax(qRow, kRows, D, scale, probs);

        // O as forward computes it, then delta = rowsum(dO * O).
        std::fill(oRow.begin(), oRow.end(), 0.0);
        for (size_t m = 0; m < count; ++m) {
          const double *vRow = v.data() + kvIndex(b, rowBegin[m], hk);
          for (int64_t c = 0; c < D; ++c)
            oRow[static_cast<size_t>(c)] += probs[m] * vRow[c];
        }
        double delta = 0;
        for (int64_t c = 0; c < D; ++c)
          delta += dORow[c] * oRow[static_cast<size_t>(c)];

        std::fill(dqAcc.begin(), dqAcc.end(), 0.0);
        for (size_t m = 0; m < count; ++m) {
          const int64_t j = rowBegin[m];
          const double *vRow = v.data() + kvIndex(b, j, hk);
          double dP = 0; // dO . V_j
          for (int64_t c = 0; c < D; ++c)
            dP += dORow[c] * vRow[c];
          const double dS = probs[m] * (dP - delta);
          double *dkRow = dkHead.data() + j * D;
          double *dvRow = dvHead.data() + j * D;
          for (int64_t c = 0; c < D; ++c) {
            dvRow[c] += probs[m] * dORow[c];
            dqAcc[static_cast<size_t>(c)] += dS * kRows[m][c];
            dkRow[c] += dS * qRow[c];
          }
        }
        double *dqRow = g.dq.data() + qIndex(b, i, h);
        for (int64_t c = 0; c < D; ++c)
          dqRow[c] = scale * dqAcc[static_cast<size_t>(c)];
      }
      // GQA: this query head's share of its kv head's gradients.
      for (int64_t j = 0; j < Nk; ++j) {
        double *dkRow = g.dk.data() + kvIndex(b, j, hk);
        double *dvRow = g.dv.data() + kvIndex(b, j, hk);
        for (int64_t c = 0; c < D; ++c) {
          dkRow[c] += scale * dkHead[static_cast<size_t>(j * D + c)];
          dvRow[c] += dvHead[static_cast<size_t>(j * D + c)];
        }
      }
    }
  }
  return g;
}

double relativeL2(const std::vector<double> &got, const std::vector<double> &want) {
  const double inf = std::numeric_limits<double>::infinity();
  if (got.size() != want.size())
    return inf;
  double err = 0, norm = 0;
  for (size_t n = 0; n < want.size(); ++n) {
    if (!std::isfinite(want[n])) {
      // A non-finite want (-inf: a fully masked row's LSE) must be matched
      // exactly; NaN never matches.
      if (!(got[n] == want[n]))
        return inf;
      continue;
    }
    if (!std::isfinite(got[n]))
      return inf;
    const double diff = got[n] - want[n];
    err += diff * diff;
    norm += want[n] * want[n];
  }
  if (err == 0)
    return 0;
  return norm == 0 ? inf : std::sqrt(err) / std::sqrt(norm);
}

} // namespace attnc::reference
