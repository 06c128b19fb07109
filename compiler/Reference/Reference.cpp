//===- Reference.cpp - Brute-force float64 attention ----------------------===//
//
// One (batch, query head, query row) at a time: the scores of every allowed
// key, a max-subtracted softmax, the weighted sum of V. No tiling, no online
// softmax. Shape errors are programming errors of the caller: they abort with
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

/// Aborts with a message when a precondition of forward() does not hold.
static void require(bool ok, const char *what) {
  if (ok)
    return;
  std::fprintf(stderr, "attnc::reference::forward: %s\n", what);
  std::abort();
}

Output forward(const mask::Mask &mask, const Shape &shape, double scale,
               const std::vector<double> &q, const std::vector<double> &k,
               const std::vector<double> &v, const std::vector<int64_t> *runtimeTokens) {
  const int64_t B = shape.batch, Nq = shape.nq, Nk = shape.nk;
  const int64_t Hq = shape.hq, Hkv = shape.hkv, D = shape.d;
  require(B >= 0 && Nq >= 0 && Nk >= 0 && D >= 0, "negative extent");
  require(Hq >= 1 && Hkv >= 1 && Hq % Hkv == 0, "hq must be a positive multiple of hkv");
  require(static_cast<int64_t>(q.size()) == B * Nq * Hq * D, "q has the wrong size");
  require(static_cast<int64_t>(k.size()) == B * Nk * Hkv * D, "k has the wrong size");
  require(static_cast<int64_t>(v.size()) == B * Nk * Hkv * D, "v has the wrong size");

  const int64_t group = Hq / Hkv;
  mask::Predicate pred(mask, mask::Extent{Nq, Nk, runtimeTokens});

  Output out;
  out.o.assign(static_cast<size_t>(B * Nq * Hq * D), 0.0);
  out.lse.assign(static_cast<size_t>(B * Hq * Nq), -std::numeric_limits<double>::infinity());

  // Element offsets of row-major [b, n, h, d] tensors.
  auto qIndex = [&](int64_t b, int64_t i, int64_t h) { return ((b * Nq + i) * Hq + h) * D; };
  auto kvIndex = [&](int64_t b, int64_t j, int64_t h) { return ((b * Nk + j) * Hkv + h) * D; };

  std::vector<int64_t> keys;  // allowed keys of the current row
  std::vector<double> scores; // their scaled scores
  for (int64_t i = 0; i < Nq; ++i) {
    keys.clear();
    for (int64_t j = 0; j < Nk; ++j)
      if (pred.allowed(i, j))
        keys.push_back(j);
    if (keys.empty())
      continue; // O stays 0, LSE stays -inf.
    scores.resize(keys.size());

    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < Hq; ++h) {
        const int64_t hk = h / group;
        const double *qRow = q.data() + qIndex(b, i, h);
        double maxScore = -std::numeric_limits<double>::infinity();
        for (size_t n = 0; n < keys.size(); ++n) {
          const double *kRow = k.data() + kvIndex(b, keys[n], hk);
          double dot = 0;
          for (int64_t c = 0; c < D; ++c)
            dot += qRow[c] * kRow[c];
          scores[n] = scale * dot;
          maxScore = std::max(maxScore, scores[n]);
        }

        double sum = 0;
        for (double &s : scores) {
          s = std::exp(s - maxScore);
          sum += s;
        }
        double *oRow = out.o.data() + qIndex(b, i, h);
        for (size_t n = 0; n < keys.size(); ++n) {
          const double *vRow = v.data() + kvIndex(b, keys[n], hk);
          const double weight = scores[n] / sum;
          for (int64_t c = 0; c < D; ++c)
            oRow[c] += weight * vRow[c];
        }
        out.lse[static_cast<size_t>((b * Hq + h) * Nq + i)] = maxScore + std::log(sum);
      }
    }
  }
  return out;
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
