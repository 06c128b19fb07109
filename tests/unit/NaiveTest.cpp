//===- NaiveTest.cpp - attnc-run's naive dtype attention ------------------===//
//
// The naive materialized implementation (the baseline of the error rule)
// against the float64 reference: exact on hand cases whose every
// intermediate is representable, close but not exact on random data (its
// error is what attnc's is allowed twice of), O = 0 / LSE = -inf on fully
// masked rows, the GQA head mapping, and the parallel reference. The same
// for the naive backward (exact hand cases, zero gradients of masked rows
// and unseen keys, the GQA group sum, its error on random data), and the
// row-subset and parallel variants of the naive and the reference, bitwise
// equal to the whole computations.
//
//===----------------------------------------------------------------------===//

#include "Naive.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

using namespace attnc;
using naive::HalfType;
using reference::Shape;

namespace {

const float kInfF = std::numeric_limits<float>::infinity();

Shape shape(int64_t nq, int64_t nk, int64_t d, int64_t hq = 1, int64_t hkv = 1, int64_t batch = 1) {
  Shape s;
  s.batch = batch;
  s.nq = nq;
  s.nk = nk;
  s.hq = hq;
  s.hkv = hkv;
  s.d = d;
  return s;
}

std::vector<uint16_t> toBits(const std::vector<float> &values, HalfType type) {
  std::vector<uint16_t> bits;
  for (float f : values)
    bits.push_back(npy::floatToHalf(f, type));
  return bits;
}

std::vector<double> toDoubles(const std::vector<uint16_t> &bits, HalfType type) {
  std::vector<double> d;
  for (uint16_t b : bits)
    d.push_back(npy::halfToFloat(b, type));
  return d;
}

std::vector<uint16_t> randomBits(size_t n, HalfType type, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<uint16_t> bits(n);
  for (uint16_t &b : bits)
    b = npy::floatToHalf(dist(gen), type);
  return bits;
}

std::vector<double> lseDoubles(const std::vector<float> &lse) {
  return std::vector<double>(lse.begin(), lse.end());
}

} // namespace

TEST(Naive, SingleKeyIsExact) {
  // One key: P = 1, O = V exactly; LSE = the scaled (rounded) score.
  for (HalfType type : {HalfType::BF16, HalfType::FP16}) {
    auto q = toBits({1, 2}, type), k = toBits({0.5f, 0.25f}, type), v = toBits({3, -7}, type);
    naive::Result r = naive::forward(mask::Mask::full(), shape(1, 1, 2), type, 0.5f, q.data(),
                                     k.data(), v.data(), nullptr, 1);
    EXPECT_EQ(r.o, v);
    EXPECT_EQ(r.lse, std::vector<float>{0.5f * 1.0f});
    EXPECT_EQ(r.allowedPairs, 1);
  }
}

TEST(Naive, CausalTwoByTwoMatchesReference) {
  // Row 0 sees key 0: score 1 * 1 = 1. Row 1 sees both keys with scores
  // 2 * 1 = 2: equal weights 1/2. Every intermediate is exact in bf16.
  const HalfType type = HalfType::BF16;
  auto q = toBits({1, 2}, type), k = toBits({1, 1}, type), v = toBits({4, 8}, type);
  naive::Result r = naive::forward(mask::Mask::causal(), shape(2, 2, 1), type, 1.0f, q.data(),
                                   k.data(), v.data(), nullptr, 1);
  reference::Output ref =
      reference::forward(mask::Mask::causal(), shape(2, 2, 1), 1.0, toDoubles(q, type),
                         toDoubles(k, type), toDoubles(v, type));
  EXPECT_EQ(toDoubles(r.o, type), ref.o); // 4 and (4 + 8) / 2 = 6
  EXPECT_EQ(toDoubles(r.o, type), (std::vector<double>{4, 6}));
  EXPECT_FLOAT_EQ(r.lse[0], 1.0f);
  EXPECT_FLOAT_EQ(r.lse[1], 2.0f + std::log(2.0f));
  EXPECT_EQ(r.allowedPairs, 3);
  // S and P of one (batch, head) plus the one-byte mask.
  EXPECT_EQ(r.materializedBytes, 2 * 2 * 4 + 4);
}

TEST(Naive, RoundsTheScores) {
  // q.k = 1 + 2^-8 + 2^-9 is not a bfloat16: the naive rounds it to
  // 1 + 2^-7 before the softmax, so its LSE (one key) is off by 2^-9.
  const HalfType type = HalfType::BF16;
  auto q = toBits({1, 1}, type);
  auto k = toBits({1, std::ldexp(1.0f, -8) + std::ldexp(1.0f, -9)}, type);
  auto v = toBits({1, 1}, type);
  naive::Result r = naive::forward(mask::Mask::full(), shape(1, 1, 2), type, 1.0f, q.data(),
                                   k.data(), v.data(), nullptr, 1);
  EXPECT_EQ(r.lse[0], 1.0f + std::ldexp(1.0f, -7));
}

TEST(Naive, FullyMaskedRows) {
  // Nq > Nk under causal: rows with p = i + Nk - Nq < 0 see no key.
  for (HalfType type : {HalfType::BF16, HalfType::FP16}) {
    const Shape s = shape(5, 3, 8, 2, 1);
    auto q = randomBits(5 * 2 * 8, type, 1), k = randomBits(3 * 8, type, 2),
         v = randomBits(3 * 8, type, 3);
    naive::Result r = naive::forward(mask::Mask::causal(), s, type, 0.25f, q.data(), k.data(),
                                     v.data(), nullptr, 2);
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 5; ++i) {
        const bool masked = i < 2;
        EXPECT_EQ(std::isinf(r.lse[h * 5 + i]) && r.lse[h * 5 + i] < 0, masked) << h << "," << i;
        for (int64_t c = 0; c < 8 && masked; ++c)
          EXPECT_EQ(r.o[(i * 2 + h) * 8 + c], 0) << "bits of +0";
      }
    reference::Output ref = reference::forward(mask::Mask::causal(), s, 0.25, toDoubles(q, type),
                                               toDoubles(k, type), toDoubles(v, type));
    // -inf entries match exactly, so the LSE error is finite.
    EXPECT_LT(reference::relativeL2(lseDoubles(r.lse), ref.lse), 1e-2);
    EXPECT_LT(reference::relativeL2(toDoubles(r.o, type), ref.o), 5e-2);
  }
}

TEST(Naive, EverythingMasked) {
  const HalfType type = HalfType::FP16;
  auto q = randomBits(16, type, 1), k = randomBits(16, type, 2), v = randomBits(16, type, 3);
  naive::Result r = naive::forward(mask::Mask::empty(), shape(2, 2, 8), type, 1.0f, q.data(),
                                   k.data(), v.data(), nullptr, 1);
  EXPECT_EQ(r.o, std::vector<uint16_t>(16, 0));
  EXPECT_EQ(r.lse, std::vector<float>(2, -kInfF));
  EXPECT_EQ(r.allowedPairs, 0);
}

TEST(Naive, GroupedHeadsReadTheirKvHead) {
  // GQA with 4 query heads on 2 kv heads equals MHA with each kv head
  // repeated twice.
  const HalfType type = HalfType::BF16;
  const int64_t nq = 7, nk = 9, d = 16;
  auto q = randomBits(nq * 4 * d, type, 5), k = randomBits(nk * 2 * d, type, 6),
       v = randomBits(nk * 2 * d, type, 7);
  std::vector<uint16_t> k4, v4;
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t c = 0; c < d; ++c) {
        k4.push_back(k[(j * 2 + h / 2) * d + c]);
        v4.push_back(v[(j * 2 + h / 2) * d + c]);
      }
  const mask::Mask m = mask::Mask::window(3, 1);
  naive::Result gqa = naive::forward(m, shape(nq, nk, d, 4, 2), type, 0.25f, q.data(), k.data(),
                                     v.data(), nullptr, 3);
  naive::Result mha = naive::forward(m, shape(nq, nk, d, 4, 4), type, 0.25f, q.data(), k4.data(),
                                     v4.data(), nullptr, 1);
  EXPECT_EQ(gqa.o, mha.o);
  EXPECT_EQ(gqa.lse, mha.lse);
}

TEST(Naive, RandomDataErrorIsPositiveAndSmall) {
  // On random data the rounding of S and P shows: the error is > 0, of the
  // order of the dtype's epsilon, and smaller for fp16 (10 mantissa bits)
  // than for bf16 (7).
  const Shape s = shape(33, 65, 32, 4, 2, 2);
  const size_t nQ = 2 * 33 * 4 * 32, nKV = 2 * 65 * 2 * 32;
  const mask::Mask m =
      mask::Mask::unionOf({mask::Mask::window(8, 8), mask::Mask::globalTokens({0})});
  double err[2][2];
  for (HalfType type : {HalfType::BF16, HalfType::FP16}) {
    auto q = randomBits(nQ, type, 11), k = randomBits(nKV, type, 12), v = randomBits(nKV, type, 13);
    naive::Result r =
        naive::forward(m, s, type, 1 / std::sqrt(32.0f), q.data(), k.data(), v.data(), nullptr, 2);
    reference::Output ref = reference::forward(m, s, 1 / std::sqrt(32.0), toDoubles(q, type),
                                               toDoubles(k, type), toDoubles(v, type));
    const int t = type == HalfType::BF16 ? 0 : 1;
    err[t][0] = reference::relativeL2(toDoubles(r.o, type), ref.o);
    err[t][1] = reference::relativeL2(lseDoubles(r.lse), ref.lse);
  }
  for (int t = 0; t < 2; ++t)
    for (int e = 0; e < 2; ++e) {
      EXPECT_GT(err[t][e], 0.0) << t << "," << e;
      EXPECT_LT(err[t][e], t == 0 ? 2e-2 : 3e-3) << t << "," << e;
    }
  EXPECT_GT(err[0][0], 2 * err[1][0]);
  EXPECT_GT(err[0][1], 2 * err[1][1]);
}

TEST(Naive, PerWorkerBuffersGiveTheSameNumbers) {
  const HalfType type = HalfType::FP16;
  const Shape s = shape(19, 23, 16, 4, 2, 2);
  auto q = randomBits(2 * 19 * 4 * 16, type, 1), k = randomBits(2 * 23 * 2 * 16, type, 2),
       v = randomBits(2 * 23 * 2 * 16, type, 3);
  const mask::Mask m = mask::Mask::causal();
  naive::Result all = naive::forward(m, s, type, 0.25f, q.data(), k.data(), v.data(), nullptr, 2);
  naive::Result one = naive::forward(m, s, type, 0.25f, q.data(), k.data(), v.data(), nullptr, 2,
                                     /*materializeAll=*/false);
  EXPECT_EQ(all.o, one.o);
  EXPECT_EQ(all.lse, one.lse);
  EXPECT_EQ(all.materializedBytes, 19 * 23 + 2 * 2 * 4 * 19 * 23 * 2);
  EXPECT_EQ(one.materializedBytes, 19 * 23 + 2 * 2 * 19 * 23 * 2); // two workers
}

TEST(Naive, RuntimeGlobalTokens) {
  // window(0, 0) alone lets each row see its own key; runtime global token
  // 2 adds key 2 to every row and every key to row 2.
  const HalfType type = HalfType::BF16;
  const mask::Mask m =
      mask::Mask::unionOf({mask::Mask::window(0, 0), mask::Mask::globalRuntime(4)});
  const std::vector<int64_t> tokens = {2};
  auto q = randomBits(4 * 8, type, 1), k = randomBits(4 * 8, type, 2),
       v = randomBits(4 * 8, type, 3);
  naive::Result r =
      naive::forward(m, shape(4, 4, 8), type, 0.5f, q.data(), k.data(), v.data(), &tokens, 1);
  EXPECT_EQ(r.allowedPairs, 4 + 3 + 3); // diagonal, column 2, row 2
  reference::Output ref = reference::forward(m, shape(4, 4, 8), 0.5, toDoubles(q, type),
                                             toDoubles(k, type), toDoubles(v, type), &tokens);
  EXPECT_LT(reference::relativeL2(toDoubles(r.o, type), ref.o), 2e-2);
}

TEST(Naive, ParallelReferenceIsBitwiseTheReference) {
  const Shape s = shape(13, 21, 16, 6, 2, 2);
  std::mt19937_64 gen(3);
  std::normal_distribution<double> dist;
  auto randoms = [&](size_t n) {
    std::vector<double> x(n);
    for (double &d : x)
      d = dist(gen);
    return x;
  };
  auto q = randoms(2 * 13 * 6 * 16), k = randoms(2 * 21 * 2 * 16), v = randoms(2 * 21 * 2 * 16);
  const mask::Mask m = mask::Mask::intersectOf({mask::Mask::causal(), mask::Mask::window(5, 0, 2)});
  reference::Output want = reference::forward(m, s, 0.3, q, k, v);
  for (int threads : {1, 2, 5}) {
    reference::Output got = naive::parallelReference(m, s, 0.3, q, k, v, nullptr, threads);
    EXPECT_EQ(got.o, want.o);
    EXPECT_EQ(got.lse, want.lse);
  }
}

//===----------------------------------------------------------------------===//
// Rows, backward, parallel references
//===----------------------------------------------------------------------===//

namespace {

std::vector<double> randomDoubles(size_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> dist;
  std::vector<double> x(n);
  for (double &d : x)
    d = dist(gen);
  return x;
}

/// Rows `rows` of a [B, N, H, D] tensor: [B, rows.size(), H, D].
template <typename T>
std::vector<T> pickRows(const std::vector<T> &t, int64_t batch, int64_t n, int64_t rowSize,
                        const std::vector<int64_t> &rows) {
  std::vector<T> out;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i : rows)
      out.insert(out.end(), t.begin() + (b * n + i) * rowSize,
                 t.begin() + (b * n + i + 1) * rowSize);
  return out;
}

} // namespace

TEST(Naive, ForwardRowsAreTheRowsOfForward) {
  // A batched GQA problem with nq > nk (fully masked rows 0..2 under the
  // causal part) and a runtime global token; rows in any order.
  for (HalfType type : {HalfType::BF16, HalfType::FP16}) {
    const Shape s = shape(11, 8, 16, 4, 2, 2);
    const mask::Mask m = mask::Mask::unionOf({mask::Mask::causal(), mask::Mask::globalRuntime(2)});
    const std::vector<int64_t> tokens = {6};
    auto q = randomBits(2 * 11 * 4 * 16, type, 1), k = randomBits(2 * 8 * 2 * 16, type, 2),
         v = randomBits(2 * 8 * 2 * 16, type, 3);
    naive::Result all =
        naive::forward(m, s, type, 0.25f, q.data(), k.data(), v.data(), &tokens, 2, false);
    const std::vector<int64_t> rows = {10, 0, 4, 7, 2};
    auto qRows = pickRows(q, 2, 11, 4 * 16, rows);
    naive::Result some =
        naive::forwardRows(m, s, type, 0.25f, qRows.data(), k.data(), v.data(), rows, &tokens, 3);
    EXPECT_EQ(some.o, pickRows(all.o, 2, 11, 4 * 16, rows));
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < 4; ++h)
        for (size_t n = 0; n < rows.size(); ++n)
          EXPECT_EQ(some.lse[(b * 4 + h) * rows.size() + n], all.lse[(b * 4 + h) * 11 + rows[n]]);
    // Rows 0 and 2 sit at p < 0: only the global key 6 (for p >= 0 also).
    // Pairs: row 10 (p 7) 8, row 0 (p -3) 1, row 4 (p 1) 3, row 7 (p 4) 6,
    // row 2 (p -1) 1.
    EXPECT_EQ(some.allowedPairs, 8 + 1 + 3 + 6 + 1);
  }
}

TEST(Naive, ParallelReferenceRowsIsBitwiseTheReference) {
  const Shape s = shape(13, 21, 8, 4, 2, 2);
  const mask::Mask m = mask::Mask::window(4, 2, 2);
  auto q = randomDoubles(2 * 13 * 4 * 8, 1), k = randomDoubles(2 * 21 * 2 * 8, 2),
       v = randomDoubles(2 * 21 * 2 * 8, 3);
  std::vector<int64_t> rows = {12, 1, 5, 6, 0, 11, 3};
  auto qRows = pickRows(q, 2, 13, 4 * 8, rows);
  reference::Output want = reference::forwardRows(m, s, 0.3, qRows, k, v, rows);
  for (int threads : {1, 2, 5}) {
    reference::Output got =
        naive::parallelReferenceRows(m, s, 0.3, qRows, k, v, rows, nullptr, threads);
    EXPECT_EQ(got.o, want.o);
    EXPECT_EQ(got.lse, want.lse);
  }
}

TEST(Naive, ParallelReferenceBackwardIsBitwiseTheReference) {
  const Shape s = shape(13, 17, 8, 6, 2, 2);
  const mask::Mask m = mask::Mask::unionOf({mask::Mask::causal(), mask::Mask::globalTokens({9})});
  auto q = randomDoubles(2 * 13 * 6 * 8, 1), k = randomDoubles(2 * 17 * 2 * 8, 2),
       v = randomDoubles(2 * 17 * 2 * 8, 3), dO = randomDoubles(2 * 13 * 6 * 8, 4);
  reference::Gradients want = reference::backward(m, s, 0.3, q, k, v, dO);
  for (int threads : {1, 4}) {
    reference::Gradients got =
        naive::parallelReferenceBackward(m, s, 0.3, q, k, v, dO, nullptr, threads);
    EXPECT_EQ(got.dq, want.dq);
    EXPECT_EQ(got.dk, want.dk);
    EXPECT_EQ(got.dv, want.dv);
  }
}

TEST(NaiveBackward, SingleKeyIsExact) {
  // One key: P = 1, so dV = dO exactly and dS = 1 * (dP - 1 * dP) = 0, hence
  // dQ = dK = 0 (bits of +0).
  for (HalfType type : {HalfType::BF16, HalfType::FP16}) {
    auto q = toBits({1, 2}, type), k = toBits({0.5f, 0.25f}, type), v = toBits({3, -7}, type),
         dO = toBits({0.75f, -1.5f}, type);
    naive::Gradients g = naive::backward(mask::Mask::full(), shape(1, 1, 2), type, 0.5f, q.data(),
                                         k.data(), v.data(), dO.data(), nullptr, 1);
    EXPECT_EQ(g.dv, dO);
    EXPECT_EQ(g.dq, std::vector<uint16_t>(2, 0));
    EXPECT_EQ(g.dk, std::vector<uint16_t>(2, 0));
  }
}

TEST(NaiveBackward, TwoKeysMatchTheReferenceExactly) {
  // d = 1, scale 1, q = 1, k = (1, 1): equal scores, P = (1/2, 1/2); v = (2,
  // 6), dO = 1: dP = v, rowsum(P dP) = 4, dS = (-1, 1); dQ = dS . k = 0,
  // dK = dS q = (-1, 1), dV = P dO = (1/2, 1/2). Every value is a bf16.
  const HalfType type = HalfType::BF16;
  auto q = toBits({1}, type), k = toBits({1, 1}, type), v = toBits({2, 6}, type),
       dO = toBits({1}, type);
  naive::Gradients g = naive::backward(mask::Mask::full(), shape(1, 2, 1), type, 1.0f, q.data(),
                                       k.data(), v.data(), dO.data(), nullptr, 1);
  reference::Gradients ref =
      reference::backward(mask::Mask::full(), shape(1, 2, 1), 1.0, toDoubles(q, type),
                          toDoubles(k, type), toDoubles(v, type), toDoubles(dO, type));
  EXPECT_EQ(toDoubles(g.dq, type), ref.dq);
  EXPECT_EQ(toDoubles(g.dk, type), ref.dk);
  EXPECT_EQ(toDoubles(g.dv, type), ref.dv);
  EXPECT_EQ(toDoubles(g.dk, type), (std::vector<double>{-1, 1}));
  EXPECT_EQ(toDoubles(g.dv, type), (std::vector<double>{0.5, 0.5}));
}

TEST(NaiveBackward, FullyMaskedRowsAndUnseenKeys) {
  // Causal, nq = 6 > nk = 4: rows 0, 1 (p < 0) get dQ = 0 (bits of +0).
  // window{1, 0} with nq = 2 < nk = 5: keys 0 and 1 are seen by no row and
  // get dK = dV = 0.
  for (HalfType type : {HalfType::BF16, HalfType::FP16}) {
    const Shape s = shape(6, 4, 8, 2, 1);
    auto q = randomBits(6 * 2 * 8, type, 1), k = randomBits(4 * 8, type, 2),
         v = randomBits(4 * 8, type, 3), dO = randomBits(6 * 2 * 8, type, 4);
    naive::Gradients g = naive::backward(mask::Mask::causal(), s, type, 0.25f, q.data(), k.data(),
                                         v.data(), dO.data(), nullptr, 2);
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t n = 0; n < 2 * 8; ++n)
        EXPECT_EQ(g.dq[i * 16 + n], 0) << i;
    EXPECT_NE(g.dq[5 * 16], 0); // row 5 sees 4 keys
    const Shape wide = shape(2, 5, 8, 2, 1);
    auto q2 = randomBits(2 * 2 * 8, type, 5), dO2 = randomBits(2 * 2 * 8, type, 6),
         k2 = randomBits(5 * 8, type, 7), v2 = randomBits(5 * 8, type, 8);
    naive::Gradients w = naive::backward(mask::Mask::window(1, 0), wide, type, 0.25f, q2.data(),
                                         k2.data(), v2.data(), dO2.data(), nullptr, 2);
    // Rows at p = 3, 4 see keys 2..4: keys 0 and 1 get nothing.
    for (int64_t n = 0; n < 2 * 8; ++n) {
      EXPECT_EQ(w.dk[n], 0);
      EXPECT_EQ(w.dv[n], 0);
    }
  }
}

TEST(NaiveBackward, GroupedHeadsSumTheirGroup) {
  // GQA (4 query heads on 2 kv heads) against MHA with each kv head
  // repeated: the same dQ; dK, dV of a kv head = its two heads' rounded
  // gradients summed in float32 and rounded.
  const HalfType type = HalfType::BF16;
  const int64_t nq = 7, nk = 9, d = 16;
  auto q = randomBits(nq * 4 * d, type, 5), k = randomBits(nk * 2 * d, type, 6),
       v = randomBits(nk * 2 * d, type, 7), dO = randomBits(nq * 4 * d, type, 8);
  std::vector<uint16_t> k4, v4;
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t c = 0; c < d; ++c) {
        k4.push_back(k[(j * 2 + h / 2) * d + c]);
        v4.push_back(v[(j * 2 + h / 2) * d + c]);
      }
  const mask::Mask m = mask::Mask::window(3, 1);
  naive::Gradients gqa = naive::backward(m, shape(nq, nk, d, 4, 2), type, 0.25f, q.data(), k.data(),
                                         v.data(), dO.data(), nullptr, 3);
  naive::Gradients mha = naive::backward(m, shape(nq, nk, d, 4, 4), type, 0.25f, q.data(),
                                         k4.data(), v4.data(), dO.data(), nullptr, 1);
  EXPECT_EQ(gqa.dq, mha.dq);
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t hk = 0; hk < 2; ++hk)
      for (int64_t c = 0; c < d; ++c) {
        auto sum = [&](const std::vector<uint16_t> &t) {
          return npy::floatToHalf(npy::halfToFloat(t[(j * 4 + 2 * hk) * d + c], type) +
                                      npy::halfToFloat(t[(j * 4 + 2 * hk + 1) * d + c], type),
                                  type);
        };
        EXPECT_EQ(gqa.dk[(j * 2 + hk) * d + c], sum(mha.dk));
        EXPECT_EQ(gqa.dv[(j * 2 + hk) * d + c], sum(mha.dv));
      }
}

TEST(NaiveBackward, RandomDataErrorIsPositiveAndSmall) {
  // Against the float64 gradients on the same inputs: > 0, of the order of
  // the dtype's epsilon, and smaller for fp16 (10 mantissa bits) than for
  // bf16 (7).
  const Shape s = shape(33, 65, 32, 4, 2, 2);
  const size_t nQ = 2 * 33 * 4 * 32, nKV = 2 * 65 * 2 * 32;
  const mask::Mask m =
      mask::Mask::unionOf({mask::Mask::window(8, 8), mask::Mask::globalTokens({0})});
  double err[2][3];
  for (HalfType type : {HalfType::BF16, HalfType::FP16}) {
    auto q = randomBits(nQ, type, 11), k = randomBits(nKV, type, 12), v = randomBits(nKV, type, 13),
         dO = randomBits(nQ, type, 14);
    naive::Gradients g = naive::backward(m, s, type, 1 / std::sqrt(32.0f), q.data(), k.data(),
                                         v.data(), dO.data(), nullptr, 2);
    reference::Gradients ref =
        reference::backward(m, s, 1 / std::sqrt(32.0), toDoubles(q, type), toDoubles(k, type),
                            toDoubles(v, type), toDoubles(dO, type));
    const int t = type == HalfType::BF16 ? 0 : 1;
    err[t][0] = reference::relativeL2(toDoubles(g.dq, type), ref.dq);
    err[t][1] = reference::relativeL2(toDoubles(g.dk, type), ref.dk);
    err[t][2] = reference::relativeL2(toDoubles(g.dv, type), ref.dv);
  }
  for (int t = 0; t < 2; ++t)
    for (int e = 0; e < 3; ++e) {
      EXPECT_GT(err[t][e], 0.0) << t << "," << e;
      // Measured: bf16 3.6e-3 .. 3.9e-3, fp16 4.6e-4 .. 4.9e-4.
      EXPECT_LT(err[t][e], t == 0 ? 1e-2 : 1.5e-3) << t << "," << e;
    }
  for (int e = 0; e < 3; ++e)
    EXPECT_GT(err[0][e], 2 * err[1][e]) << e;
}
