//===- ReferenceTest.cpp - The float64 reference on hand-computed cases ---===//
//
// Every expected value here is computed by hand in closed form: masking,
// bottom-right alignment, GQA head mapping, batch independence, numerical
// stability of the softmax, fully masked rows, and relativeL2.
//
//===----------------------------------------------------------------------===//

#include "attnc/Reference/Reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace attnc;
using reference::Shape;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

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

TEST(Reference, CausalTwoByTwo) {
  // d = 1: q = [1, 2], k = [3, -1], v = [10, 20], scale 0.5.
  const double scale = 0.5;
  auto out =
      reference::forward(mask::Mask::causal(), shape(2, 2, 1), scale, {1, 2}, {3, -1}, {10, 20});
  ASSERT_EQ(out.o.size(), 2u);
  ASSERT_EQ(out.lse.size(), 2u);
  // Row 0 sees only key 0: O = v0, LSE = scale * q0 * k0.
  EXPECT_DOUBLE_EQ(out.o[0], 10.0);
  EXPECT_DOUBLE_EQ(out.lse[0], 0.5 * 1 * 3);
  // Row 1: scores 0.5*2*3 = 3 and 0.5*2*(-1) = -1.
  const double w0 = 1 / (1 + std::exp(-4.0)), w1 = std::exp(-4.0) / (1 + std::exp(-4.0));
  EXPECT_NEAR(out.o[1], 10 * w0 + 20 * w1, 1e-12);
  EXPECT_NEAR(out.lse[1], std::log(std::exp(3.0) + std::exp(-1.0)), 1e-12);
}

TEST(Reference, FullMaskTwoDims) {
  // nq = 1, nk = 2, d = 2, scale 1: q = (1, 1), k0 = (1, 0), k1 = (0, 2).
  // Scores 1 and 2: weights 1/(1+e) and e/(1+e).
  auto out = reference::forward(mask::Mask::full(), shape(1, 2, 2), 1.0, {1, 1}, {1, 0, 0, 2},
                                {1, 2, 3, 4});
  const double e = std::exp(1.0), a = 1 / (1 + e), b = e / (1 + e);
  EXPECT_NEAR(out.o[0], a * 1 + b * 3, 1e-12);
  EXPECT_NEAR(out.o[1], a * 2 + b * 4, 1e-12);
  EXPECT_NEAR(out.lse[0], std::log(e + e * e), 1e-12);
}

TEST(Reference, GroupedQueryHeads) {
  // hq = 4, hkv = 2: query heads 0, 1 read kv head 0; 2, 3 read kv head 1.
  // K, V are [nk = 2, hkv = 2, d = 1]: kv head 0 has keys (0, 0), values
  // (1, 3); kv head 1 has keys (ln 3, 0), values (5, 7).
  const double ln3 = std::log(3.0);
  std::vector<double> q = {0.7, -2, 1, 0}; // [nq = 1, hq = 4, d = 1]
  std::vector<double> k = {0, ln3, 0, 0};
  std::vector<double> v = {1, 5, 3, 7};
  auto out = reference::forward(mask::Mask::full(), shape(1, 2, 1, 4, 2), 1.0, q, k, v);
  ASSERT_EQ(out.o.size(), 4u);
  // kv head 0: equal scores whatever q, O = (1 + 3) / 2, LSE = ln 2.
  EXPECT_NEAR(out.o[0], 2.0, 1e-12);
  EXPECT_NEAR(out.o[1], 2.0, 1e-12);
  EXPECT_NEAR(out.lse[0], std::log(2.0), 1e-12);
  EXPECT_NEAR(out.lse[1], std::log(2.0), 1e-12);
  // Head 2 (q = 1): scores ln 3 and 0, weights 3/4, 1/4.
  EXPECT_NEAR(out.o[2], 0.75 * 5 + 0.25 * 7, 1e-12);
  EXPECT_NEAR(out.lse[2], std::log(4.0), 1e-12);
  // Head 3 (q = 0): equal weights.
  EXPECT_NEAR(out.o[3], 6.0, 1e-12);
  EXPECT_NEAR(out.lse[3], std::log(2.0), 1e-12);
}

TEST(Reference, LseIsHeadMajor) {
  // nk = 1: every LSE is the single score q[i, h] * k0. Q is [nq = 2, hq = 2],
  // LSE is [hq, nq], so the order changes from (1, 2, 3, 4) to (1, 3, 2, 4).
  auto out =
      reference::forward(mask::Mask::full(), shape(2, 1, 1, 2, 1), 1.0, {1, 2, 3, 4}, {1}, {9});
  EXPECT_EQ(out.lse, (std::vector<double>{1, 3, 2, 4}));
  EXPECT_EQ(out.o, (std::vector<double>{9, 9, 9, 9}));
}

TEST(Reference, LayoutAndBatchIndependence) {
  // A batch of two equals two batches of one; LSE is [batch, hq, nq].
  Shape one = shape(3, 4, 2, 2, 1);
  Shape two = shape(3, 4, 2, 2, 1, 2);
  std::vector<double> q0(12), q1(12), k0(8), k1(8), v0(8), v1(8);
  for (size_t n = 0; n < 12; ++n) {
    q0[n] = std::sin(n + 1.0);
    q1[n] = std::cos(3.0 * n);
  }
  for (size_t n = 0; n < 8; ++n) {
    k0[n] = 0.5 * n - 1;
    k1[n] = std::sin(2.0 * n);
    v0[n] = n;
    v1[n] = 8.0 - n * n;
  }
  auto cat = [](std::vector<double> a, const std::vector<double> &b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  mask::Mask m = mask::Mask::window(1, 0);
  auto a = reference::forward(m, one, 0.3, q0, k0, v0);
  auto b = reference::forward(m, one, 0.3, q1, k1, v1);
  auto both = reference::forward(m, two, 0.3, cat(q0, q1), cat(k0, k1), cat(v0, v1));
  EXPECT_EQ(both.o, cat(a.o, b.o));
  EXPECT_EQ(both.lse, cat(a.lse, b.lse));
}

TEST(Reference, BottomRightAlignment) {
  // nq = 2, nk = 4, window{1, 0}: row 0 sits at p = 2 (keys 1, 2), row 1 at
  // p = 3 (keys 2, 3). q = 0 makes every weight equal.
  auto w = reference::forward(mask::Mask::window(1, 0), shape(2, 4, 1), 1.0, {0, 0}, {5, -3, 2, 9},
                              {1, 2, 4, 8});
  EXPECT_NEAR(w.o[0], 3.0, 1e-12);
  EXPECT_NEAR(w.o[1], 6.0, 1e-12);
  EXPECT_NEAR(w.lse[0], std::log(2.0), 1e-12);
  // nq = 1, nk = 3, causal: the single row is the last position, sees all keys.
  auto c = reference::forward(mask::Mask::causal(), shape(1, 3, 1), 1.0, {0}, {1, 2, 3}, {1, 2, 6});
  EXPECT_NEAR(c.o[0], 3.0, 1e-12);
  EXPECT_NEAR(c.lse[0], std::log(3.0), 1e-12);
}

TEST(Reference, FullyMaskedRows) {
  // nq = 3, nk = 1, causal: p = i - 2, so rows 0 and 1 see nothing.
  const double scale = 0.25;
  auto out = reference::forward(mask::Mask::causal(), shape(3, 1, 2), scale, {1, 2, 3, 4, 5, 6},
                                {2, -1}, {7, 8});
  for (int row : {0, 1}) {
    EXPECT_EQ(out.o[2 * row], 0.0);
    EXPECT_EQ(out.o[2 * row + 1], 0.0);
    EXPECT_EQ(out.lse[row], -kInf);
  }
  // Row 2 (p = 0) sees key 0 only.
  EXPECT_DOUBLE_EQ(out.o[4], 7.0);
  EXPECT_DOUBLE_EQ(out.o[5], 8.0);
  EXPECT_DOUBLE_EQ(out.lse[2], scale * (5 * 2 + 6 * -1));

  // The empty mask: everything 0 / -inf, nothing NaN.
  auto none = reference::forward(mask::Mask::empty(), shape(2, 2, 1, 2, 2), 1.0, {1, 2, 3, 4},
                                 {1, 2, 3, 4}, {1, 2, 3, 4});
  for (double x : none.o) {
    EXPECT_FALSE(std::isnan(x));
    EXPECT_EQ(x, 0.0);
  }
  for (double x : none.lse)
    EXPECT_EQ(x, -kInf);
}

TEST(Reference, StableSoftmax) {
  // Scores of 1000 overflow exp() without the max subtraction.
  auto out = reference::forward(mask::Mask::full(), shape(1, 2, 1), 1.0, {1000}, {1, 1}, {2, 4});
  EXPECT_NEAR(out.o[0], 3.0, 1e-12);
  EXPECT_NEAR(out.lse[0], 1000 + std::log(2.0), 1e-9);
  // And -1000 underflows it.
  auto low = reference::forward(mask::Mask::full(), shape(1, 2, 1), 1.0, {-1000}, {1, 1}, {2, 4});
  EXPECT_NEAR(low.o[0], 3.0, 1e-12);
  EXPECT_NEAR(low.lse[0], -1000 + std::log(2.0), 1e-9);
}

TEST(Reference, RuntimeGlobalTokens) {
  // union(runtime global, diagonal), nq = nk = 2, q = 0 (equal weights).
  // With token 0 given at launch, row 0 is global and row 1 sees the global
  // key 0 besides itself; without a list, only the diagonal remains.
  std::vector<int64_t> tokens = {0};
  mask::Mask m = mask::Mask::unionOf({mask::Mask::globalRuntime(1), mask::Mask::window(0, 0)});
  auto out = reference::forward(m, shape(2, 2, 1), 1.0, {0, 0}, {1, 1}, {2, 6}, &tokens);
  EXPECT_NEAR(out.o[0], 4.0, 1e-12); // row 0 is global: both keys
  EXPECT_NEAR(out.o[1], 4.0, 1e-12); // row 1: key 0 (global) and key 1 (diagonal)
  auto diag = reference::forward(m, shape(2, 2, 1), 1.0, {0, 0}, {1, 1}, {2, 6}, nullptr);
  EXPECT_NEAR(diag.o[0], 2.0, 1e-12);
  EXPECT_NEAR(diag.o[1], 6.0, 1e-12);
}

TEST(RelativeL2, Values) {
  EXPECT_EQ(reference::relativeL2({1, 2, 3}, {1, 2, 3}), 0.0);
  // ||(0, 0.5)|| / ||(3, 4)|| = 0.5 / 5.
  EXPECT_NEAR(reference::relativeL2({3, 4.5}, {3, 4}), 0.1, 1e-15);
  EXPECT_NEAR(reference::relativeL2({2, 4}, {1, 2}), 1.0, 1e-15);
  EXPECT_EQ(reference::relativeL2({}, {}), 0.0);
}

TEST(RelativeL2, NonFinite) {
  // Matching -inf entries are skipped.
  EXPECT_NEAR(reference::relativeL2({3, -kInf, 4.5}, {3, -kInf, 4}), 0.1, 1e-15);
  // A -inf of want must be -inf in got, and the other way round.
  EXPECT_EQ(reference::relativeL2({3, 0}, {3, -kInf}), kInf);
  EXPECT_EQ(reference::relativeL2({3, -kInf}, {3, 0}), kInf);
  EXPECT_EQ(reference::relativeL2({std::nan("")}, {1}), kInf);
  EXPECT_EQ(reference::relativeL2({1, 2}, {1}), kInf);
  // A zero reference: any difference is infinitely large.
  EXPECT_EQ(reference::relativeL2({0, 0}, {0, 0}), 0.0);
  EXPECT_EQ(reference::relativeL2({0, 1e-30}, {0, 0}), kInf);
}

} // namespace
