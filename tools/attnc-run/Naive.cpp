//===- Naive.cpp - Materialized attention in the spec's dtype -------------===//

#include "Naive.h"

#include "attnc_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnc::naive {

Result forward(const mask::Mask &mask, const Shape &shape, HalfType type, float scale,
               const uint16_t *q, const uint16_t *k, const uint16_t *v,
               const std::vector<int64_t> *runtimeTokens, int threads, bool materializeAll) {
  const int64_t B = shape.batch, Nq = shape.nq, Nk = shape.nk;
  const int64_t Hq = shape.hq, Hkv = shape.hkv, D = shape.d;
  const int64_t group = Hq / Hkv;
  const float negInf = -std::numeric_limits<float>::infinity();
  const uint16_t negInfBits = npy::floatToHalf(negInf, type);

  Result r;
  // The mask, materialized once: [Nq, Nk], shared by every (batch, head).
  std::vector<uint8_t> allowed(static_cast<size_t>(Nq * Nk));
  {
    mask::Predicate pred(mask, mask::Extent{Nq, Nk, runtimeTokens});
    for (int64_t i = 0; i < Nq; ++i)
      for (int64_t j = 0; j < Nk; ++j) {
        allowed[static_cast<size_t>(i * Nk + j)] = pred.allowed(i, j);
        r.allowedPairs += allowed[static_cast<size_t>(i * Nk + j)];
      }
  }
  // S and P for every (batch, head), as a framework holds them (or one
  // (batch, head) per worker).
  const size_t slice = static_cast<size_t>(Nq * Nk);
  const int workers = static_cast<int>(std::min<int64_t>(std::max(threads, 1), B * Hq));
  const size_t slices = materializeAll ? static_cast<size_t>(B * Hq) : 0;
  std::vector<uint16_t> S(slices * slice), P(slices * slice);
  r.materializedBytes = static_cast<int64_t>(
      allowed.size() +
      2 * (materializeAll ? slices : static_cast<size_t>(workers)) * slice * sizeof(uint16_t));
  r.o.assign(static_cast<size_t>(B * Nq * Hq * D), 0);
  r.lse.assign(static_cast<size_t>(B * Hq * Nq), negInf);

  attnc_cpu::parallelFor(B * Hq, std::max(threads, 1), [&](int64_t item) {
    const int64_t b = item / Hq, h = item % Hq, hk = h / group;
    // This head's Q, K and V rows as float (exact).
    std::vector<float> qf(static_cast<size_t>(Nq * D)), kf(static_cast<size_t>(Nk * D)),
        vf(static_cast<size_t>(Nk * D));
    for (int64_t i = 0; i < Nq; ++i)
      for (int64_t c = 0; c < D; ++c)
        qf[static_cast<size_t>(i * D + c)] =
            npy::halfToFloat(q[((b * Nq + i) * Hq + h) * D + c], type);
    for (int64_t j = 0; j < Nk; ++j)
      for (int64_t c = 0; c < D; ++c) {
        kf[static_cast<size_t>(j * D + c)] =
            npy::halfToFloat(k[((b * Nk + j) * Hkv + hk) * D + c], type);
        vf[static_cast<size_t>(j * D + c)] =
            npy::halfToFloat(v[((b * Nk + j) * Hkv + hk) * D + c], type);
      }
    std::vector<uint16_t> ownS, ownP;
    if (!materializeAll) {
      ownS.resize(slice);
      ownP.resize(slice);
    }
    uint16_t *s = materializeAll ? S.data() + static_cast<size_t>(item) * slice : ownS.data();
    uint16_t *p = materializeAll ? P.data() + static_cast<size_t>(item) * slice : ownP.data();

    // S = Q K^T, float32 dot products rounded to the dtype; masked: -inf.
    for (int64_t i = 0; i < Nq; ++i)
      for (int64_t j = 0; j < Nk; ++j) {
        if (!allowed[static_cast<size_t>(i * Nk + j)]) {
          s[i * Nk + j] = negInfBits;
          continue;
        }
        float dot = 0;
        for (int64_t c = 0; c < D; ++c)
          dot += qf[static_cast<size_t>(i * D + c)] * kf[static_cast<size_t>(j * D + c)];
        s[i * Nk + j] = npy::floatToHalf(dot, type);
      }

    // P = softmax(S * scale) in float32 from the rounded scores, rounded.
    std::vector<float> x(static_cast<size_t>(Nk));
    std::vector<float> acc(static_cast<size_t>(D));
    for (int64_t i = 0; i < Nq; ++i) {
      float m = negInf;
      for (int64_t j = 0; j < Nk; ++j) {
        x[static_cast<size_t>(j)] = npy::halfToFloat(s[i * Nk + j], type) * scale;
        m = std::max(m, x[static_cast<size_t>(j)]);
      }
      uint16_t *oRow = r.o.data() + ((b * Nq + i) * Hq + h) * D;
      if (m == negInf) { // fully masked: P = 0, O = 0, LSE = -inf
        std::fill(p + i * Nk, p + (i + 1) * Nk, npy::floatToHalf(0.0f, type));
        continue;
      }
      float l = 0;
      for (int64_t j = 0; j < Nk; ++j) {
        x[static_cast<size_t>(j)] = std::exp(x[static_cast<size_t>(j)] - m);
        l += x[static_cast<size_t>(j)];
      }
      for (int64_t j = 0; j < Nk; ++j)
        p[i * Nk + j] = npy::floatToHalf(x[static_cast<size_t>(j)] / l, type);
      r.lse[static_cast<size_t>((b * Hq + h) * Nq + i)] = m + std::log(l);

      // O = P V, float32 accumulation, rounded to the dtype.
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = 0; j < Nk; ++j) {
        const float w = npy::halfToFloat(p[i * Nk + j], type);
        if (w == 0)
          continue;
        for (int64_t c = 0; c < D; ++c)
          acc[static_cast<size_t>(c)] += w * vf[static_cast<size_t>(j * D + c)];
      }
      for (int64_t c = 0; c < D; ++c)
        oRow[c] = npy::floatToHalf(acc[static_cast<size_t>(c)], type);
    }
  });
  return r;
}

Result forwardRows(const mask::Mask &mask, const Shape &shape, HalfType type, float scale,
                   const uint16_t *qRows, const uint16_t *k, const uint16_t *v,
                   const std::vector<int64_t> &rows, const std::vector<int64_t> *runtimeTokens,
                   int threads) {
  const int64_t B = shape.batch, Nq = shape.nq, Nk = shape.nk;
  const int64_t Hq = shape.hq, Hkv = shape.hkv, D = shape.d;
  const int64_t R = static_cast<int64_t>(rows.size());
  const int64_t group = Hq / Hkv;
  const float negInf = -std::numeric_limits<float>::infinity();
  const mask::Predicate pred(mask, mask::Extent{Nq, Nk, runtimeTokens});

  Result r;
  r.o.assign(static_cast<size_t>(B * R * Hq * D), 0);
  r.lse.assign(static_cast<size_t>(B * Hq * R), negInf);
  std::vector<int64_t> pairs(static_cast<size_t>(R), 0);

  attnc_cpu::parallelFor(R, std::max(threads, 1), [&](int64_t n) {
    // The allowed keys of this row: forward() adds exact zeros for the others
    // (exp(-inf) = 0 to l, P = 0 skipped in O), so skipping them is exact.
    std::vector<int64_t> keys;
    for (int64_t j = 0; j < Nk; ++j)
      if (pred.allowed(rows[static_cast<size_t>(n)], j))
        keys.push_back(j);
    pairs[static_cast<size_t>(n)] = static_cast<int64_t>(keys.size());
    if (keys.empty())
      return; // O = 0, LSE = -inf
    std::vector<float> x(keys.size()), qf(static_cast<size_t>(D)), acc(static_cast<size_t>(D));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hq; ++h) {
        const int64_t hk = h / group;
        const uint16_t *qRow = qRows + ((b * R + n) * Hq + h) * D;
        for (int64_t c = 0; c < D; ++c)
          qf[static_cast<size_t>(c)] = npy::halfToFloat(qRow[c], type);
        // S, rounded to the dtype, then scaled in float32; m = max.
        float m = negInf;
        for (size_t e = 0; e < keys.size(); ++e) {
          const uint16_t *kRow = k + ((b * Nk + keys[e]) * Hkv + hk) * D;
          float dot = 0;
          for (int64_t c = 0; c < D; ++c)
            dot += qf[static_cast<size_t>(c)] * npy::halfToFloat(kRow[c], type);
          x[e] = npy::halfToFloat(npy::floatToHalf(dot, type), type) * scale;
          m = std::max(m, x[e]);
        }
        float l = 0;
        for (float &xe : x) {
          xe = std::exp(xe - m);
          l += xe;
        }
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (size_t e = 0; e < keys.size(); ++e) {
          const float w = npy::halfToFloat(npy::floatToHalf(x[e] / l, type), type);
          if (w == 0)
            continue;
          const uint16_t *vRow = v + ((b * Nk + keys[e]) * Hkv + hk) * D;
          for (int64_t c = 0; c < D; ++c)
            acc[static_cast<size_t>(c)] += w * npy::halfToFloat(vRow[c], type);
        }
        uint16_t *oRow = r.o.data() + ((b * R + n) * Hq + h) * D;
        for (int64_t c = 0; c < D; ++c)
          oRow[c] = npy::floatToHalf(acc[static_cast<size_t>(c)], type);
        r.lse[static_cast<size_t>((b * Hq + h) * R + n)] = m + std::log(l);
      }
  });
  for (int64_t p : pairs)
    r.allowedPairs += p;
  return r;
}

/// Contiguous [N, D] float copies (exact) of one (batch, head) of a
/// [B, N, H, D] dtype tensor.
static std::vector<float> headToFloat(const uint16_t *t, int64_t b, int64_t n, int64_t heads,
                                      int64_t h, int64_t d, HalfType type) {
  std::vector<float> f(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < d; ++c)
      f[static_cast<size_t>(i * d + c)] =
          npy::halfToFloat(t[((b * n + i) * heads + h) * d + c], type);
  return f;
}

Gradients backward(const mask::Mask &mask, const Shape &shape, HalfType type, float scale,
                   const uint16_t *q, const uint16_t *k, const uint16_t *v, const uint16_t *dO,
                   const std::vector<int64_t> *runtimeTokens, int threads) {
  const int64_t B = shape.batch, Nq = shape.nq, Nk = shape.nk;
  const int64_t Hq = shape.hq, Hkv = shape.hkv, D = shape.d;
  const int64_t group = Hq / Hkv;
  const float negInf = -std::numeric_limits<float>::infinity();
  auto round = [type](float f) { return npy::halfToFloat(npy::floatToHalf(f, type), type); };

  // The mask, materialized once, [Nq, Nk].
  std::vector<uint8_t> allowed(static_cast<size_t>(Nq * Nk));
  {
    mask::Predicate pred(mask, mask::Extent{Nq, Nk, runtimeTokens});
    for (int64_t i = 0; i < Nq; ++i)
      for (int64_t j = 0; j < Nk; ++j)
        allowed[static_cast<size_t>(i * Nk + j)] = pred.allowed(i, j);
  }

  Gradients g;
  g.dq.assign(static_cast<size_t>(B * Nq * Hq * D), 0);
  g.dk.assign(static_cast<size_t>(B * Nk * Hkv * D), 0);
  g.dv.assign(g.dk.size(), 0);
  // Every query head's own dK and dV, [B, Hq, Nk, D] in the dtype (autograd's
  // gradients of the K and V expanded to Hq heads), summed per group below.
  std::vector<uint16_t> dkHeads(static_cast<size_t>(B * Hq * Nk * D)), dvHeads(dkHeads.size());

  attnc_cpu::parallelFor(B * Hq, std::max(threads, 1), [&](int64_t item) {
    const int64_t b = item / Hq, h = item % Hq, hk = h / group;
    std::vector<float> qf = headToFloat(q, b, Nq, Hq, h, D, type);
    std::vector<float> dof = headToFloat(dO, b, Nq, Hq, h, D, type);
    std::vector<float> kf = headToFloat(k, b, Nk, Hkv, hk, D, type);
    std::vector<float> vf = headToFloat(v, b, Nk, Hkv, hk, D, type);
    // P and dS of this (batch, head), [Nq, Nk], values of the dtype.
    std::vector<float> P(static_cast<size_t>(Nq * Nk), 0.0f), dS(P.size(), 0.0f);
    std::vector<float> x(static_cast<size_t>(Nk)), acc(static_cast<size_t>(D));

    for (int64_t i = 0; i < Nq; ++i) {
      const float *qRow = qf.data() + i * D, *doRow = dof.data() + i * D;
      float *pRow = P.data() + i * Nk, *dsRow = dS.data() + i * Nk;
      // P as forward(): rounded scores, scaled, float32 softmax, rounded.
      float m = negInf;
      for (int64_t j = 0; j < Nk; ++j) {
        x[static_cast<size_t>(j)] = negInf;
        if (!allowed[static_cast<size_t>(i * Nk + j)])
          continue;
        float dot = 0;
        for (int64_t c = 0; c < D; ++c)
          dot += qRow[c] * kf[static_cast<size_t>(j * D + c)];
        x[static_cast<size_t>(j)] = round(dot) * scale;
        m = std::max(m, x[static_cast<size_t>(j)]);
      }
      if (m == negInf)
        continue; // fully masked: P = dS = 0
      float l = 0;
      for (int64_t j = 0; j < Nk; ++j) {
        x[static_cast<size_t>(j)] = std::exp(x[static_cast<size_t>(j)] - m);
        l += x[static_cast<size_t>(j)];
      }
      for (int64_t j = 0; j < Nk; ++j)
        pRow[j] = round(x[static_cast<size_t>(j)] / l);

      // dP = dO V^T rounded (where P != 0: elsewhere dS = 0 whatever dP);
      // the softmax backward's rowsum(P * dP) in float32; dS rounded.
      float delta = 0;
      for (int64_t j = 0; j < Nk; ++j) {
        if (pRow[j] == 0)
          continue;
        float dot = 0;
        for (int64_t c = 0; c < D; ++c)
          dot += doRow[c] * vf[static_cast<size_t>(j * D + c)];
        x[static_cast<size_t>(j)] = round(dot);
        delta += pRow[j] * x[static_cast<size_t>(j)];
      }
      for (int64_t j = 0; j < Nk; ++j)
        if (pRow[j] != 0)
          dsRow[j] = round(pRow[j] * (x[static_cast<size_t>(j)] - delta));

      // dQ = scale dS K, float32 accumulation, rounded.
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = 0; j < Nk; ++j) {
        if (dsRow[j] == 0)
          continue;
        for (int64_t c = 0; c < D; ++c)
          acc[static_cast<size_t>(c)] += dsRow[j] * kf[static_cast<size_t>(j * D + c)];
      }
      uint16_t *dqRow = g.dq.data() + ((b * Nq + i) * Hq + h) * D;
      for (int64_t c = 0; c < D; ++c)
        dqRow[c] = npy::floatToHalf(scale * acc[static_cast<size_t>(c)], type);
    }

    // dV = P^T dO and dK = scale dS^T Q of this head, rounded.
    uint16_t *dkHead = dkHeads.data() + item * Nk * D, *dvHead = dvHeads.data() + item * Nk * D;
    std::vector<float> accK(static_cast<size_t>(D));
    for (int64_t j = 0; j < Nk; ++j) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      std::fill(accK.begin(), accK.end(), 0.0f);
      for (int64_t i = 0; i < Nq; ++i) {
        const float p = P[static_cast<size_t>(i * Nk + j)],
                    ds = dS[static_cast<size_t>(i * Nk + j)];
        for (int64_t c = 0; c < D && p != 0; ++c) {
          acc[static_cast<size_t>(c)] += p * dof[static_cast<size_t>(i * D + c)];
          accK[static_cast<size_t>(c)] += ds * qf[static_cast<size_t>(i * D + c)];
        }
      }
      for (int64_t c = 0; c < D; ++c) {
        dvHead[j * D + c] = npy::floatToHalf(acc[static_cast<size_t>(c)], type);
        dkHead[j * D + c] = npy::floatToHalf(scale * accK[static_cast<size_t>(c)], type);
      }
    }
  });

  // GQA: the group's heads summed in float32 (the backward of the expansion
  // of K and V to Hq heads), rounded; a group of one is the head itself.
  attnc_cpu::parallelFor(B * Hkv, std::max(threads, 1), [&](int64_t item) {
    const int64_t b = item / Hkv, hk = item % Hkv;
    for (int64_t j = 0; j < Nk; ++j)
      for (int64_t c = 0; c < D; ++c) {
        float sumK = 0, sumV = 0;
        for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
          const size_t at = static_cast<size_t>(((b * Hq + h) * Nk + j) * D + c);
          sumK += npy::halfToFloat(dkHeads[at], type);
          sumV += npy::halfToFloat(dvHeads[at], type);
        }
        const size_t out = static_cast<size_t>(((b * Nk + j) * Hkv + hk) * D + c);
        g.dk[out] = npy::floatToHalf(sumK, type);
        g.dv[out] = npy::floatToHalf(sumV, type);
      }
  });
  return g;
}

reference::Output parallelReference(const mask::Mask &mask, const Shape &shape, double scale,
                                    const std::vector<double> &q, const std::vector<double> &k,
                                    const std::vector<double> &v,
                                    const std::vector<int64_t> *runtimeTokens, int threads) {
  const int64_t B = shape.batch, Nq = shape.nq, Nk = shape.nk;
  const int64_t Hq = shape.hq, Hkv = shape.hkv, D = shape.d;
  const int64_t group = Hq / Hkv;
  reference::Output out;
  out.o.assign(static_cast<size_t>(B * Nq * Hq * D), 0.0);
  out.lse.assign(static_cast<size_t>(B * Hq * Nq), -std::numeric_limits<double>::infinity());

  attnc_cpu::parallelFor(Hq, std::max(threads, 1), [&](int64_t h) {
    const int64_t hk = h / group;
    Shape one = shape;
    one.hq = one.hkv = 1;
    std::vector<double> qh(static_cast<size_t>(B * Nq * D)), kh(static_cast<size_t>(B * Nk * D)),
        vh(static_cast<size_t>(B * Nk * D));
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < Nq; ++i)
        std::copy_n(q.begin() + ((b * Nq + i) * Hq + h) * D, D, qh.begin() + (b * Nq + i) * D);
      for (int64_t j = 0; j < Nk; ++j) {
        std::copy_n(k.begin() + ((b * Nk + j) * Hkv + hk) * D, D, kh.begin() + (b * Nk + j) * D);
        std::copy_n(v.begin() + ((b * Nk + j) * Hkv + hk) * D, D, vh.begin() + (b * Nk + j) * D);
      }
    }
    reference::Output part = reference::forward(mask, one, scale, qh, kh, vh, runtimeTokens);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < Nq; ++i) {
        std::copy_n(part.o.begin() + (b * Nq + i) * D, D,
                    out.o.begin() + ((b * Nq + i) * Hq + h) * D);
        out.lse[static_cast<size_t>((b * Hq + h) * Nq + i)] =
            part.lse[static_cast<size_t>(b * Nq + i)];
      }
  });
  return out;
}

reference::Output parallelReferenceRows(const mask::Mask &mask, const Shape &shape, double scale,
                                        const std::vector<double> &qRows,
                                        const std::vector<double> &k, const std::vector<double> &v,
                                        const std::vector<int64_t> &rows,
                                        const std::vector<int64_t> *runtimeTokens, int threads) {
  const int64_t B = shape.batch, Hq = shape.hq, D = shape.d;
  const int64_t R = static_cast<int64_t>(rows.size());
  reference::Output out;
  out.o.assign(static_cast<size_t>(B * R * Hq * D), 0.0);
  out.lse.assign(static_cast<size_t>(B * Hq * R), -std::numeric_limits<double>::infinity());
  // Chunks of consecutive rows, a few per worker for balance.
  const int workers = std::max(threads, 1);
  const int64_t chunks = std::min<int64_t>(R, 4 * static_cast<int64_t>(workers));
  if (chunks == 0)
    return out;
  attnc_cpu::parallelFor(chunks, workers, [&](int64_t chunk) {
    const int64_t begin = R * chunk / chunks, end = R * (chunk + 1) / chunks, count = end - begin;
    const int64_t rowSize = Hq * D;
    std::vector<int64_t> part(rows.begin() + begin, rows.begin() + end);
    std::vector<double> q(static_cast<size_t>(B * count * rowSize));
    for (int64_t b = 0; b < B; ++b)
      std::copy_n(qRows.begin() + (b * R + begin) * rowSize, count * rowSize,
                  q.begin() + b * count * rowSize);
    reference::Output o = reference::forwardRows(mask, shape, scale, q, k, v, part, runtimeTokens);
    for (int64_t b = 0; b < B; ++b) {
      std::copy_n(o.o.begin() + b * count * rowSize, count * rowSize,
                  out.o.begin() + (b * R + begin) * rowSize);
      for (int64_t h = 0; h < Hq; ++h)
        std::copy_n(o.lse.begin() + (b * Hq + h) * count, count,
                    out.lse.begin() + (b * Hq + h) * R + begin);
    }
  });
  return out;
}

reference::Gradients
parallelReferenceBackward(const mask::Mask &mask, const Shape &shape, double scale,
                          const std::vector<double> &q, const std::vector<double> &k,
                          const std::vector<double> &v, const std::vector<double> &dO,
                          const std::vector<int64_t> *runtimeTokens, int threads) {
  const int64_t B = shape.batch, Nq = shape.nq, Nk = shape.nk;
  const int64_t Hq = shape.hq, Hkv = shape.hkv, D = shape.d;
  const int64_t group = Hq / Hkv;
  // Each query head alone (hq = hkv = 1): its dQ, and its share of dK, dV.
  std::vector<reference::Gradients> heads(static_cast<size_t>(Hq));
  attnc_cpu::parallelFor(Hq, std::max(threads, 1), [&](int64_t h) {
    const int64_t hk = h / group;
    Shape one = shape;
    one.hq = one.hkv = 1;
    std::vector<double> qh(static_cast<size_t>(B * Nq * D)), dOh(qh.size()),
        kh(static_cast<size_t>(B * Nk * D)), vh(kh.size());
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < Nq; ++i) {
        std::copy_n(q.begin() + ((b * Nq + i) * Hq + h) * D, D, qh.begin() + (b * Nq + i) * D);
        std::copy_n(dO.begin() + ((b * Nq + i) * Hq + h) * D, D, dOh.begin() + (b * Nq + i) * D);
      }
      for (int64_t j = 0; j < Nk; ++j) {
        std::copy_n(k.begin() + ((b * Nk + j) * Hkv + hk) * D, D, kh.begin() + (b * Nk + j) * D);
        std::copy_n(v.begin() + ((b * Nk + j) * Hkv + hk) * D, D, vh.begin() + (b * Nk + j) * D);
      }
    }
    heads[static_cast<size_t>(h)] =
        reference::backward(mask, one, scale, qh, kh, vh, dOh, runtimeTokens);
  });
  reference::Gradients g;
  g.dq.assign(q.size(), 0.0);
  g.dk.assign(k.size(), 0.0);
  g.dv.assign(v.size(), 0.0);
  for (int64_t h = 0; h < Hq; ++h) { // ascending, as reference::backward sums
    const reference::Gradients &part = heads[static_cast<size_t>(h)];
    const int64_t hk = h / group;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < Nq; ++i)
        std::copy_n(part.dq.begin() + (b * Nq + i) * D, D,
                    g.dq.begin() + ((b * Nq + i) * Hq + h) * D);
      for (int64_t j = 0; j < Nk; ++j)
        for (int64_t c = 0; c < D; ++c) {
          const size_t from = static_cast<size_t>((b * Nk + j) * D + c);
          const size_t to = static_cast<size_t>(((b * Nk + j) * Hkv + hk) * D + c);
          g.dk[to] += part.dk[from];
          g.dv[to] += part.dv[from];
        }
    }
  }
  return g;
}

} // namespace attnc::naive
