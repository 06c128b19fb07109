//===- BackwardTest.cpp - CPU gradient kernels against float64 ------------===//
//
// Specs compiled with "backward": true through libattnc, run through
// libattnrt's CPU target (forward, then backward), checked against
// reference::backward with the gradient rule: the relative L2 error of dQ, dK
// and dV is at most 3x that of the naive backward in the same dtype on the
// same inputs, for every family x MHA/GQA/MQA x bf16/fp16 and lengths 1 to
// 129 with q != kv both ways. Fully masked query rows get dQ = 0 exactly, keys no query sees
// dK = dV = 0 exactly, never NaN; two runs give bitwise equal gradients.
//
//===----------------------------------------------------------------------===//

#include "Naive.h"

#include "attnc/Compiler/Compiler.h"
#include "attnc/Mask/Mask.h"
#include "attnc/Reference/Reference.h"
#include "attnc/Spec/Spec.h"
#include "attnc/runtime/attnrt.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

using namespace attnc;
using npy::floatToHalf;
using npy::halfToFloat;
using npy::HalfType;

namespace {

struct Case {
  const char *name;
  const char *mask; ///< the spec's mask JSON
};

const Case kCases[] = {
    {"full", R"({"full": {}})"},
    {"causal_gqa", R"({"causal": {}})"},
    {"window_mqa", R"({"window": {"left": 20, "right": 7}})"},
    {"dilated", R"({"window": {"left": 24, "right": 24, "dilation": 3}})"},
    {"global", R"({"union": [{"window": {"left": 8, "right": 8}}, {"global": {"stride": 41, "offset": 3}}]})"},
    {"block_sparse", R"({"block_sparse": {"block": 16, "layout": [[1, 0, 0, 1], [0, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]]}})"},
    {"bigbird", R"({"block_sparse": {"block": 16, "bigbird": {"band": 3, "random": 1, "global": 1, "seed": 5}}})"},
    {"runtime_global", R"({"union": [{"causal": {}}, {"global": {"runtime": {"max": 4}}}]})"},
    {"intersect", R"({"intersect": [{"causal": {}}, {"union": [{"window": {"left": 30, "right": 0, "dilation": 2}}, {"global": {"tokens": [3, 40]}}]}]})"},
    // Query rows 0..9 see no key at all (keys 10..: nq == nk): fully masked rows.
    {"masked_rows", R"({"intersect": [{"causal": {}}, {"global": {"ranges": [[10, 1000]]}}]})"},
};

struct Tensors {
  std::vector<uint16_t> q, k, v, o, dO, dq, dk, dv;
  std::vector<float> lse;
};

attnc_tensor_view view(void *data, std::vector<int64_t> shape, attnc_dtype dtype) {
  attnc_tensor_view t{};
  t.data = data;
  t.rank = static_cast<int32_t>(shape.size());
  t.dtype = dtype;
  int64_t stride = 1;
  for (int i = t.rank - 1; i >= 0; --i) {
    t.shape[i] = shape[static_cast<size_t>(i)];
    t.strides[i] = stride;
    stride *= t.shape[i];
  }
  return t;
}

std::vector<double> toDouble(const std::vector<uint16_t> &bits, HalfType type) {
  std::vector<double> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    out[i] = halfToFloat(bits[i], type);
  return out;
}

/// Head groupings: MHA, GQA, MQA (query heads, kv heads).
struct Grouping {
  const char *name;
  int64_t hq, hkv;
};
const Grouping kGroupings[] = {{"mha", 4, 4}, {"gqa", 4, 2}, {"mqa", 4, 1}};

/// Family x grouping x dtype; bf16 kernels use 16 x 32 tiles (many tiles and
/// partial edges at these lengths), fp16 kernels attn-tile's 64 x 64.
class BackwardTest : public ::testing::TestWithParam<std::tuple<Case, Grouping, bool>> {};

TEST_P(BackwardTest, MatchesFloat64) {
  const auto [family, grouping, bf16] = GetParam();
  const int tiles = bf16 ? 1 : 0;
  struct {
    const char *name, *mask;
    int64_t hq, hkv;
  } c{family.name, family.mask, grouping.hq, grouping.hkv};
  const HalfType type = bf16 ? HalfType::BF16 : HalfType::FP16;
  const int64_t d = 32;
  std::string json = std::string(R"({"attnc": 1, "name": ")") + c.name + R"(", "dtype": ")" +
                     (bf16 ? "bf16" : "fp16") + R"(", "head_dim": 32, "heads": {"query": )" +
                     std::to_string(c.hq) + R"(, "kv": )" + std::to_string(c.hkv) +
                     R"(}, "backward": true, "mask": )" + c.mask + "}";
  CompileOptions options;
  if (tiles == 1) { // small tiles: many tiles and partial edges at these lengths
    options.blockM = 16;
    options.blockN = 32;
  }
  CompileResult compiled = compileSpecText(json, std::string(c.name) + ".json", options);
  ASSERT_TRUE(compiled.ok()) << compiled.diagnostics;
  auto package = attnrt::Package::fromMemory(compiled.package->manifestJson,
                                             compiled.package->source);
  ASSERT_TRUE(package.ok()) << package.status().message();
  ASSERT_TRUE(package->hasBackward());
  ASSERT_TRUE(package->deterministic());
  attnrt_compile_options compile{};
  compile.cache_dir = ATTNC_TEST_CACHE_DIR;
  auto kernel = attnrt::Kernel::create(*package, &compile);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  spec::LoadResult loaded = spec::loadSpecFromString(json, "spec.json");
  ASSERT_TRUE(loaded.ok());
  const mask::Mask mask = mask::canonicalize(loaded.spec->mask);
  const double scale = loaded.spec->scale;

  for (auto [nq, nk] : {std::pair<int64_t, int64_t>{1, 1}, {17, 17}, {127, 129}, {129, 127}, {50, 93}}) {
    SCOPED_TRACE("nq " + std::to_string(nq) + ", nk " + std::to_string(nk));
    const int64_t batch = 2;
    std::vector<int64_t> tokens;
    if (std::string(c.name) == "runtime_global")
      tokens = {0, nk / 2};
    std::mt19937 rng(static_cast<unsigned>(nq * 131 + nk));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto random = [&](int64_t n) {
      std::vector<uint16_t> bits(static_cast<size_t>(n));
      for (uint16_t &b : bits)
        b = floatToHalf(normal(rng), type);
      return bits;
    };
    Tensors t;
    t.q = random(batch * nq * c.hq * d);
    t.k = random(batch * nk * c.hkv * d);
    t.v = random(batch * nk * c.hkv * d);
    t.dO = random(batch * nq * c.hq * d);
    t.o.resize(t.q.size());
    t.dq.resize(t.q.size());
    t.dk.resize(t.k.size());
    t.dv.resize(t.v.size());
    t.lse.resize(static_cast<size_t>(batch * c.hq * nq));
    const attnc_dtype dtype = bf16 ? ATTNC_DTYPE_BF16 : ATTNC_DTYPE_FP16;
    auto qv = view(t.q.data(), {batch, nq, c.hq, d}, dtype);
    auto kv = view(t.k.data(), {batch, nk, c.hkv, d}, dtype);
    auto vv = view(t.v.data(), {batch, nk, c.hkv, d}, dtype);
    auto ov = view(t.o.data(), {batch, nq, c.hq, d}, dtype);
    auto lsev = view(t.lse.data(), {batch, c.hq, nq}, ATTNC_DTYPE_FP32);
    auto dov = view(t.dO.data(), {batch, nq, c.hq, d}, dtype);
    auto dqv = view(t.dq.data(), {batch, nq, c.hq, d}, dtype);
    auto dkv = view(t.dk.data(), {batch, nk, c.hkv, d}, dtype);
    auto dvv = view(t.dv.data(), {batch, nk, c.hkv, d}, dtype);
    ASSERT_TRUE(kernel->forward(qv, kv, vv, ov, lsev, tokens, 2).ok()) << attnrt_last_error();
    ASSERT_TRUE(kernel->backward(qv, kv, vv, ov, lsev, dov, dqv, dkv, dvv, tokens, 2).ok())
        << attnrt_last_error();

    reference::Shape shape{batch, nq, nk, c.hq, c.hkv, d};
    std::vector<double> q = toDouble(t.q, type), k = toDouble(t.k, type), v = toDouble(t.v, type),
                        dO = toDouble(t.dO, type);
    const std::vector<int64_t> *rt = tokens.empty() ? nullptr : &tokens;
    reference::Gradients want = reference::backward(mask, shape, scale, q, k, v, dO, rt);
    naive::Gradients base = naive::backward(mask, {batch, nq, nk, c.hq, c.hkv, d}, type,
                                            static_cast<float>(scale), t.q.data(), t.k.data(),
                                            t.v.data(), t.dO.data(), rt, 2);
    // Query rows that see no key, keys no row sees: their gradients are
    // exactly zero.
    mask::Predicate allowed(mask, mask::Extent{nq, nk, rt});
    std::vector<bool> rowSees(static_cast<size_t>(nq)), keySeen(static_cast<size_t>(nk));
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t j = 0; j < nk; ++j)
        if (allowed.allowed(i, j))
          rowSees[static_cast<size_t>(i)] = keySeen[static_cast<size_t>(j)] = true;
    struct Check {
      const char *name;
      const std::vector<uint16_t> &got, &naive;
      const std::vector<double> &want;
      const std::vector<bool> &live; ///< per position of dimension 1
      int64_t heads;
    };
    for (const Check &check : {Check{"dq", t.dq, base.dq, want.dq, rowSees, c.hq},
                               Check{"dk", t.dk, base.dk, want.dk, keySeen, c.hkv},
                               Check{"dv", t.dv, base.dv, want.dv, keySeen, c.hkv}}) {
      std::vector<double> got = toDouble(check.got, type);
      const int64_t n = static_cast<int64_t>(check.live.size());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_FALSE(std::isnan(got[i])) << check.name << "[" << i << "] is NaN";
        const int64_t position = static_cast<int64_t>(i) / (check.heads * d) % n;
        if (!check.live[static_cast<size_t>(position)])
          ASSERT_EQ(got[i], 0.0) << check.name << "[" << i << "] (position " << position
                                 << ", masked) should be exactly 0";
      }
      double err = reference::relativeL2(got, check.want);
      double naiveErr = reference::relativeL2(toDouble(check.naive, type), check.want);
      // An all-zero gradient (nothing allowed) has no relative error: 0 == 0.
      if (naiveErr == 0.0 || std::isnan(naiveErr))
        EXPECT_TRUE(err == 0.0 || std::isnan(err)) << check.name << " error " << err;
      else
        EXPECT_LE(err, 3 * naiveErr) << check.name << ": attnc " << err << ", naive " << naiveErr;
    }
    // Deterministic: a second run gives the same bits.
    Tensors again = t;
    auto dq2 = view(again.dq.data(), {batch, nq, c.hq, d}, dtype);
    auto dk2 = view(again.dk.data(), {batch, nk, c.hkv, d}, dtype);
    auto dv2 = view(again.dv.data(), {batch, nk, c.hkv, d}, dtype);
    ASSERT_TRUE(kernel->backward(qv, kv, vv, ov, lsev, dov, dq2, dk2, dv2, tokens, 3).ok());
    EXPECT_EQ(again.dq, t.dq);
    EXPECT_EQ(again.dk, t.dk);
    EXPECT_EQ(again.dv, t.dv);
  }
}

std::string caseName(const ::testing::TestParamInfo<BackwardTest::ParamType> &info) {
  return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name +
         (std::get<2>(info.param) ? "_bf16_tile16x32" : "_fp16_tile64");
}

INSTANTIATE_TEST_SUITE_P(Families, BackwardTest,
                         ::testing::Combine(::testing::ValuesIn(kCases),
                                            ::testing::ValuesIn(kGroupings), ::testing::Bool()),
                         caseName);

TEST(BackwardErrors, ForwardOnlyPackageRefusesBackward) {
  CompileResult compiled = compileSpecText(
      R"({"attnc": 1, "name": "fwd", "dtype": "bf16", "head_dim": 32, "heads": {"query": 1, "kv": 1}, "mask": {"causal": {}}})",
      "fwd.json", {});
  ASSERT_TRUE(compiled.ok()) << compiled.diagnostics;
  auto package = attnrt::Package::fromMemory(compiled.package->manifestJson,
                                             compiled.package->source);
  ASSERT_TRUE(package.ok());
  EXPECT_FALSE(package->hasBackward());
  attnrt_compile_options compile{};
  compile.cache_dir = ATTNC_TEST_CACHE_DIR;
  auto kernel = attnrt::Kernel::create(*package, &compile);
  ASSERT_TRUE(kernel.ok());
  std::vector<uint16_t> x(64);
  std::vector<float> lse(2);
  auto t = view(x.data(), {1, 2, 1, 32}, ATTNC_DTYPE_BF16);
  auto l = view(lse.data(), {1, 1, 2}, ATTNC_DTYPE_FP32);
  attnrt::Status s = kernel->backward(t, t, t, t, l, t, t, t, t);
  EXPECT_EQ(s.code(), ATTNRT_ERROR_UNSUPPORTED);
  EXPECT_NE(std::string(attnrt_last_error()).find("\"backward\": true"), std::string::npos)
      << attnrt_last_error();
}

} // namespace
