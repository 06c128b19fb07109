//===- ReferenceBackwardTest.cpp - Float64 gradients against finite differences ===//
//
// reference::backward is the oracle of every gradient test, so it is checked
// here against something independent of its formulas: central finite
// differences of the float64 forward for the loss L = sum(O * G) with a
// random G (then dO = G), on tiny shapes, for every mask family (full,
// causal, window, dilated window, global tokens, runtime global tokens,
// block-sparse layout, BigBird, a union, an intersection) x MHA / GQA / MQA x
// nq == nk, nq < nk and nq > nk (with fully masked rows). Besides: exact
// zeros (fully masked rows, keys no row sees, the empty mask), hand-computed
// cases, GQA as the sum over the group of MHA with repeated K and V, batch
// independence, and forwardRows against forward.
//
//===----------------------------------------------------------------------===//

#include "attnc/Reference/Reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

using namespace attnc;
using reference::Shape;

namespace {

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

std::vector<double> randoms(size_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> dist;
  std::vector<double> x(n);
  for (double &d : x)
    d = dist(gen);
  return x;
}

/// Step of the central differences. Inputs are N(0, 1), so h is small
/// against every input and far above float64's resolution of them.
constexpr double kStep = 1e-5;

/// The finite-difference tolerance, |analytic - fd| <= kAbsTol + kRelTol |fd|.
/// Central differences err by (a) truncation, h^2 / 6 * |d^3 L / dx^3|: the
/// third derivatives of softmax attention on N(0, 1) inputs with scale
/// 1/sqrt(3) and |G| ~ 1 stay below ~1e2 on these tiny shapes, so <= 2e-9;
/// (b) rounding, eps * |L| / h with |L| <= ~1e2 (a sum of <= 400 products of
/// O(1) terms): 2.2e-16 * 1e2 / 1e-5 ~ 2e-9. The tolerance is 50x their sum,
/// and 1e4x below the smallest real error of a wrong formula here (a dropped
/// delta term, a missing scale, the wrong kv head: differences >= 1e-3, as
/// the gradients are O(0.1..1)).
constexpr double kAbsTol = 2e-7;
constexpr double kRelTol = 1e-6;

/// L = sum(O * G) of the float64 forward.
double loss(const mask::Mask &m, const Shape &s, double scale, const std::vector<double> &q,
            const std::vector<double> &k, const std::vector<double> &v,
            const std::vector<double> &g, const std::vector<int64_t> *tokens) {
  reference::Output out = reference::forward(m, s, scale, q, k, v, tokens);
  double l = 0;
  for (size_t n = 0; n < g.size(); ++n)
    l += out.o[n] * g[n];
  return l;
}

/// Whether row i sees any key / key j is seen by any row.
std::vector<bool> rowsSeeing(const mask::Mask &m, const Shape &s,
                             const std::vector<int64_t> *tokens) {
  mask::Predicate pred(m, mask::Extent{s.nq, s.nk, tokens});
  std::vector<bool> sees(static_cast<size_t>(s.nq), false);
  for (int64_t i = 0; i < s.nq; ++i)
    for (int64_t j = 0; j < s.nk; ++j)
      if (pred.allowed(i, j))
        sees[static_cast<size_t>(i)] = true;
  return sees;
}
std::vector<bool> keysSeen(const mask::Mask &m, const Shape &s,
                           const std::vector<int64_t> *tokens) {
  mask::Predicate pred(m, mask::Extent{s.nq, s.nk, tokens});
  std::vector<bool> seen(static_cast<size_t>(s.nk), false);
  for (int64_t i = 0; i < s.nq; ++i)
    for (int64_t j = 0; j < s.nk; ++j)
      if (pred.allowed(i, j))
        seen[static_cast<size_t>(j)] = true;
  return seen;
}

/// Checks backward() against central differences of loss() for every entry
/// of Q, K and V, and the exact zeros of masked rows and unseen keys. Returns
/// the largest |gradient| (so that callers can insist it is not all zeros).
double checkAgainstFiniteDifferences(const mask::Mask &m, const Shape &s,
                                     const std::vector<int64_t> *tokens, uint64_t seed) {
  const double scale = 1 / std::sqrt(static_cast<double>(s.d));
  std::vector<double> q = randoms(static_cast<size_t>(s.batch * s.nq * s.hq * s.d), seed);
  std::vector<double> k = randoms(static_cast<size_t>(s.batch * s.nk * s.hkv * s.d), seed + 1);
  std::vector<double> v = randoms(static_cast<size_t>(s.batch * s.nk * s.hkv * s.d), seed + 2);
  std::vector<double> g = randoms(q.size(), seed + 3);
  reference::Gradients grads = reference::backward(m, s, scale, q, k, v, g, tokens);
  EXPECT_EQ(grads.dq.size(), q.size());
  EXPECT_EQ(grads.dk.size(), k.size());
  EXPECT_EQ(grads.dv.size(), v.size());

  double largest = 0;
  auto check = [&](std::vector<double> &x, const std::vector<double> &analytic, const char *name) {
    for (size_t n = 0; n < x.size(); ++n) {
      const double saved = x[n];
      x[n] = saved + kStep;
      const double up = loss(m, s, scale, q, k, v, g, tokens);
      x[n] = saved - kStep;
      const double down = loss(m, s, scale, q, k, v, g, tokens);
      x[n] = saved;
      const double fd = (up - down) / (2 * kStep);
      EXPECT_NEAR(analytic[n], fd, kAbsTol + kRelTol * std::abs(fd)) << name << "[" << n << "]";
      EXPECT_FALSE(std::isnan(analytic[n])) << name << "[" << n << "]";
      largest = std::max(largest, std::abs(analytic[n]));
    }
  };
  check(q, grads.dq, "dq");
  check(k, grads.dk, "dk");
  check(v, grads.dv, "dv");

  // Exact zeros: dQ of rows that see nothing, dK and dV of keys none sees.
  std::vector<bool> sees = rowsSeeing(m, s, tokens), seen = keysSeen(m, s, tokens);
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t i = 0; i < s.nq; ++i)
      for (int64_t n = 0; n < s.hq * s.d && !sees[static_cast<size_t>(i)]; ++n)
        EXPECT_EQ(grads.dq[static_cast<size_t>((b * s.nq + i) * s.hq * s.d + n)], 0.0)
            << "masked row " << i;
    for (int64_t j = 0; j < s.nk; ++j)
      for (int64_t n = 0; n < s.hkv * s.d && !seen[static_cast<size_t>(j)]; ++n) {
        const size_t at = static_cast<size_t>((b * s.nk + j) * s.hkv * s.d + n);
        EXPECT_EQ(grads.dk[at], 0.0) << "unseen key " << j;
        EXPECT_EQ(grads.dv[at], 0.0) << "unseen key " << j;
      }
  }
  return largest;
}

struct Family {
  const char *name;
  mask::Mask mask;
  std::vector<int64_t> runtimeTokens; ///< for a GlobalRuntime mask
};

std::vector<Family> families() {
  mask::BigBirdParams bb;
  bb.block = 2;
  bb.band = 1;
  bb.random = 1;
  bb.global = 1;
  bb.seed = 7;
  return {
      {"full", mask::Mask::full(), {}},
      {"causal", mask::Mask::causal(), {}},
      {"window", mask::Mask::window(2, 1), {}},
      {"dilated", mask::Mask::window(2, 1, 2), {}},
      {"global", mask::Mask::globalTokens({1, 4}), {}},
      {"runtime_global",
       mask::Mask::unionOf({mask::Mask::window(0, 0), mask::Mask::globalRuntime(2)}),
       {3}},
      {"block_sparse", mask::Mask::blockSparse(2, {{0}, {0, 1}, {1, 3}, {0, 2, 3}}), {}},
      {"bigbird", mask::Mask::bigBird(bb), {}},
      {"union",
       mask::Mask::unionOf({mask::Mask::window(1, 0), mask::Mask::globalStride(3, 1)}),
       {}},
      {"intersect",
       mask::Mask::intersectOf(
           {mask::Mask::causal(),
            mask::Mask::unionOf({mask::Mask::window(3, 0, 2), mask::Mask::globalTokens({2})})}),
       {}},
  };
}

struct Geometry {
  const char *name;
  Shape shape;
};

std::vector<Geometry> geometries() {
  return {
      {"mha nq=nk", shape(6, 6, 3, 2, 2)},
      {"gqa nq<nk batch 2", shape(5, 8, 3, 4, 2, 2)},
      {"mqa nq>nk", shape(8, 5, 3, 3, 1)},
  };
}

} // namespace

TEST(ReferenceBackward, FiniteDifferencesEveryFamily) {
  uint64_t seed = 100;
  for (const Family &f : families()) {
    for (const Geometry &geo : geometries()) {
      SCOPED_TRACE(std::string(f.name) + ", " + geo.name);
      const std::vector<int64_t> *tokens = f.runtimeTokens.empty() ? nullptr : &f.runtimeTokens;
      const double largest = checkAgainstFiniteDifferences(f.mask, geo.shape, tokens, seed += 10);
      // Teeth: real gradients, not a comparison of zeros with zeros.
      EXPECT_GT(largest, 0.05);
    }
  }
}

TEST(ReferenceBackward, FullyMaskedRowsHaveZeroGradients) {
  // Causal with nq = 7 > nk = 3: rows 0..3 sit at p < 0 and see nothing.
  // (Row 4 sees key 0 alone, P = 1: its dQ is 0 too, SingleKeyHandCase.)
  const Shape s = shape(7, 3, 4, 2, 1);
  EXPECT_GT(checkAgainstFiniteDifferences(mask::Mask::causal(), s, nullptr, 5), 0.05);
  std::vector<double> q = randoms(7 * 2 * 4, 1), k = randoms(3 * 4, 2), v = randoms(3 * 4, 3),
                      g = randoms(7 * 2 * 4, 4);
  reference::Gradients grads = reference::backward(mask::Mask::causal(), s, 0.5, q, k, v, g);
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t n = 0; n < 2 * 4; ++n) {
      const double x = grads.dq[static_cast<size_t>(i * 8 + n)];
      if (i < 4) {
        EXPECT_EQ(x, 0.0) << i;
      } else if (i > 4) { // row 4 (p = 0) sees one key: dQ = 0 there too
        EXPECT_NE(x, 0.0) << i;
      }
    }

  // The empty mask: every gradient exactly 0, nothing NaN.
  const Shape e = shape(3, 4, 2, 2, 2);
  reference::Gradients none = reference::backward(mask::Mask::empty(), e, 1.0, randoms(12, 1),
                                                  randoms(16, 2), randoms(16, 3), randoms(12, 4));
  for (const auto *t : {&none.dq, &none.dk, &none.dv})
    for (double x : *t)
      EXPECT_EQ(x, 0.0);
}

TEST(ReferenceBackward, SingleKeyHandCase) {
  // One key: P = 1, O = V, so dV = dO and dS = 1 * (dO.V - dO.O) = 0, hence
  // dQ = dK = 0, all exactly (O = 1 * V is exact).
  const Shape s = shape(1, 1, 3);
  reference::Gradients g = reference::backward(mask::Mask::full(), s, 0.7, {1, -2, 0.5},
                                               {0.25, 3, -1}, {4, 5, -6}, {0.5, -1, 2});
  EXPECT_EQ(g.dq, (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(g.dk, (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(g.dv, (std::vector<double>{0.5, -1, 2}));
}

TEST(ReferenceBackward, TwoKeyHandCase) {
  // d = 1, scale 1, q = ln 3, k = (1, 0), v = (a, b) = (2, 10), dO = 1.
  // Scores ln 3, 0: P = (3/4, 1/4), O = 4. dP = v, delta = O = 4:
  // dS = (3/4 (2 - 4), 1/4 (10 - 4)) = (-3/2, 3/2).
  // dQ = dS . k = -3/2; dK = dS q = (-3/2 ln 3, 3/2 ln 3); dV = P dO.
  const double ln3 = std::log(3.0);
  reference::Gradients g =
      reference::backward(mask::Mask::full(), shape(1, 2, 1), 1.0, {ln3}, {1, 0}, {2, 10}, {1});
  EXPECT_NEAR(g.dq[0], -1.5, 1e-12);
  EXPECT_NEAR(g.dk[0], -1.5 * ln3, 1e-12);
  EXPECT_NEAR(g.dk[1], 1.5 * ln3, 1e-12);
  EXPECT_NEAR(g.dv[0], 0.75, 1e-12);
  EXPECT_NEAR(g.dv[1], 0.25, 1e-12);
}

TEST(ReferenceBackward, GroupedHeadsSumOverTheGroup) {
  // GQA (4 query heads on 2 kv heads) equals MHA with every kv head repeated
  // for its group: same dQ; dK, dV of kv head g = the sum of the MHA
  // gradients of the heads 2g and 2g + 1.
  const int64_t nq = 5, nk = 7, d = 3;
  const mask::Mask m = mask::Mask::window(2, 1);
  std::vector<double> q = randoms(nq * 4 * d, 1), k = randoms(nk * 2 * d, 2),
                      v = randoms(nk * 2 * d, 3), g = randoms(nq * 4 * d, 4);
  std::vector<double> k4, v4;
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t c = 0; c < d; ++c) {
        k4.push_back(k[static_cast<size_t>((j * 2 + h / 2) * d + c)]);
        v4.push_back(v[static_cast<size_t>((j * 2 + h / 2) * d + c)]);
      }
  reference::Gradients gqa = reference::backward(m, shape(nq, nk, d, 4, 2), 0.6, q, k, v, g);
  reference::Gradients mha = reference::backward(m, shape(nq, nk, d, 4, 4), 0.6, q, k4, v4, g);
  EXPECT_EQ(gqa.dq, mha.dq);
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t hk = 0; hk < 2; ++hk)
      for (int64_t c = 0; c < d; ++c) {
        auto at = [&](int64_t h, int64_t heads) {
          return static_cast<size_t>((j * heads + h) * d + c);
        };
        EXPECT_NEAR(gqa.dk[at(hk, 2)], mha.dk[at(2 * hk, 4)] + mha.dk[at(2 * hk + 1, 4)], 1e-14);
        EXPECT_NEAR(gqa.dv[at(hk, 2)], mha.dv[at(2 * hk, 4)] + mha.dv[at(2 * hk + 1, 4)], 1e-14);
      }
}

TEST(ReferenceBackward, BatchIndependence) {
  // A batch of two equals two batches of one, bitwise.
  const Shape one = shape(4, 6, 2, 2, 1), two = shape(4, 6, 2, 2, 1, 2);
  const mask::Mask m = mask::Mask::unionOf({mask::Mask::causal(), mask::Mask::globalTokens({5})});
  auto cat = [](std::vector<double> a, const std::vector<double> &b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  std::vector<double> q0 = randoms(16, 1), q1 = randoms(16, 2), k0 = randoms(12, 3),
                      k1 = randoms(12, 4), v0 = randoms(12, 5), v1 = randoms(12, 6),
                      g0 = randoms(16, 7), g1 = randoms(16, 8);
  auto a = reference::backward(m, one, 0.3, q0, k0, v0, g0);
  auto b = reference::backward(m, one, 0.3, q1, k1, v1, g1);
  auto both = reference::backward(m, two, 0.3, cat(q0, q1), cat(k0, k1), cat(v0, v1), cat(g0, g1));
  EXPECT_EQ(both.dq, cat(a.dq, b.dq));
  EXPECT_EQ(both.dk, cat(a.dk, b.dk));
  EXPECT_EQ(both.dv, cat(a.dv, b.dv));
}

TEST(ReferenceRows, ForwardRowsIsForwardBitwise) {
  // Any subset of rows, in any order, repeats allowed, of a batched GQA
  // problem with nq > nk.
  const Shape s = shape(9, 6, 4, 4, 2, 2);
  const mask::Mask m =
      mask::Mask::unionOf({mask::Mask::window(2, 0), mask::Mask::globalTokens({0})});
  std::vector<double> q = randoms(2 * 9 * 4 * 4, 1), k = randoms(2 * 6 * 2 * 4, 2),
                      v = randoms(2 * 6 * 2 * 4, 3);
  reference::Output all = reference::forward(m, s, 0.4, q, k, v);
  const std::vector<int64_t> rows = {8, 0, 3, 5, 3};
  const int64_t R = static_cast<int64_t>(rows.size()), rowSize = 4 * 4;
  std::vector<double> qRows;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i : rows)
      qRows.insert(qRows.end(), q.begin() + (b * 9 + i) * rowSize,
                   q.begin() + (b * 9 + i + 1) * rowSize);
  reference::Output some = reference::forwardRows(m, s, 0.4, qRows, k, v, rows);
  ASSERT_EQ(some.o.size(), static_cast<size_t>(2 * R * rowSize));
  ASSERT_EQ(some.lse.size(), static_cast<size_t>(2 * 4 * R));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t n = 0; n < R; ++n) {
      const int64_t i = rows[static_cast<size_t>(n)];
      for (int64_t e = 0; e < rowSize; ++e)
        EXPECT_EQ(some.o[static_cast<size_t>((b * R + n) * rowSize + e)],
                  all.o[static_cast<size_t>((b * 9 + i) * rowSize + e)]);
      for (int64_t h = 0; h < 4; ++h)
        EXPECT_EQ(some.lse[static_cast<size_t>((b * 4 + h) * R + n)],
                  all.lse[static_cast<size_t>((b * 4 + h) * 9 + i)]);
    }
  // A fully masked row alone: causal, nq = 3 > nk = 1, row 0 sits at p = -2.
  reference::Output masked =
      reference::forwardRows(mask::Mask::causal(), shape(3, 1, 1), 1.0, {2.0}, {1.0}, {5.0}, {0});
  EXPECT_EQ(masked.o, std::vector<double>{0.0});
  EXPECT_TRUE(std::isinf(masked.lse[0]) && masked.lse[0] < 0);
}
