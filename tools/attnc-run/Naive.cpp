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

} // namespace attnc::naive
