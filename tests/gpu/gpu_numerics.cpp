//===- gpu_numerics.cpp - Emitted CUDA kernels against float64 ------------===//
//
//   gpu_numerics PACKAGES_DIR [--quick]
//                [--forward-only | --backward-only | --long-only] [--no-long]
//
// For every CUDA kernel package under PACKAGES_DIR (made by
// make_test_packages.sh: attnc --emit=package --target=cuda, lengths left to
// launch time), runs the kernels through libattnrt on random inputs and
// checks them against the float64 reference (attnc::reference):
//
// Forward, every package, for a list of (q, kv) lengths (odd lengths, q != kv
// both ways, fully masked rows): relative L2 error of O and LSE <= 2x that of
// a naive implementation in the spec's dtype on the same inputs, and exactly
// O = 0, LSE = -inf on fully masked rows.
//
// Long forward cases (not with --quick, --no-long or --backward-only;
// --long-only runs them alone): every package at
// q = kv = 8192, and two problems whose Q has more than 2^31 elements
// (window_mqa_bf16_d128 at q = kv = 2,098,169 and full_mha_fp16_d128 at
// q = 2,098,169, kv = 127: 2,148,525,056 elements of Q and O, so 64-bit
// offsets are needed). The whole O and LSE come back and must be finite (LSE
// may be -inf); a sample of rows (the first and last ones, every row past
// element 2^31, rows spread in between) is checked against the float64
// reference with the same 2x rule, the naive computed on the same rows.
//
// Backward, every package with a backward pass (Package::hasBackward),
// for the same lengths: dQ, dK, dV of attnrt_backward (with dO random, O and
// LSE from attnrt_forward) against reference::backward: relative L2 error <=
// 3x that of the naive backward in the dtype (an absolute bound where the
// reference gradient is exactly 0, as with one key per row); exactly dQ = 0
// on fully masked rows and dK = dV = 0 for keys no row sees; no NaN. A
// deterministic package (Package::deterministic) must give bitwise
// equal dQ, dK, dV over 50 runs.
//
// Exits 77 (skip) when no GPU is present, 1 on any failure. Prints one line
// per case, the time of each part, and "N passed, M failed".
//
//===----------------------------------------------------------------------===//

#include "Naive.h"

#include "attnc/Reference/Reference.h"
#include "attnc/Spec/Spec.h"
#include "attnc/runtime/attnrt.hpp"

#include <cuda_runtime.h>
#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace attnc;

namespace {

constexpr int kSkip = 77;

/// The error rules: attnc's relative L2 error <= this many times the naive's.
constexpr double kForwardErrorFactor = 2;
constexpr double kBackwardErrorFactor = 3;
/// Slack added to the bounds: cases where the naive is exact (one key).
constexpr double kErrorSlack = 1e-6;
/// Where the reference gradient is exactly 0 (every row sees one key, so
/// dS = P (dP - delta) = 0), no relative error exists: attnc's dS is then the
/// float32 rounding of dP - delta (~1e-6 |dO| |V|), times scale |K|, well
/// under this bound on |dQ|, |dK|; a wrong gradient is O(1).
constexpr double kZeroGradientBound = 1e-3;
/// Runs of a deterministic backward that must agree bitwise.
constexpr int kDeterminismRuns = 50;

/// The long forward length, and the problems with more than 2^31 elements.
constexpr int64_t kLongLength = 8192;
constexpr int64_t kHugeQueryLength = (int64_t{1} << 21) + 1017; // x 8 heads x D 128 > 2^31
/// Rows checked against float64 in the long cases: this many at each end,
/// and this many spread evenly in between.
constexpr int64_t kEdgeRows = 64;
constexpr int64_t kSpreadRows = 256;

uint16_t toHalf(float f, bool bf16) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if (bf16)
    return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  // float -> IEEE half, round to nearest even (normal range; inputs are N(0, 1)).
  uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a < 0x38800000u) { // subnormal half
    float af;
    std::memcpy(&af, &a, sizeof af);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(af * 16777216.0f)));
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((r - 0x38000000u) >> 13));
}

double fromHalf(uint16_t h, bool bf16) {
  if (bf16) {
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
  int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v = e == 0 ? std::ldexp(m, -24) : e == 31 ? INFINITY : std::ldexp(1024 + m, e - 25);
  return (h & 0x8000) ? -v : v;
}

/// Whether half bits hold an infinity or a NaN (all exponent bits set).
bool halfNonFinite(uint16_t h, bool bf16) {
  const uint16_t exponent = bf16 ? 0x7f80 : 0x7c00;
  return (h & exponent) == exponent;
}

double relL2(const std::vector<double> &got, const std::vector<double> &want) {
  return reference::relativeL2(got, want);
}

std::vector<double> toDoubles(const std::vector<uint16_t> &bits, bool bf16) {
  std::vector<double> d(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    d[i] = fromHalf(bits[i], bf16);
  return d;
}

/// body(part, begin, end) over [0, n) cut into at most `threads` contiguous
/// parts (part < threads), each on its own thread.
template <typename Body> void parallelParts(int64_t n, int threads, const Body &body) {
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, n));
  std::vector<std::thread> pool;
  for (int64_t p = 0; p < parts; ++p)
    pool.emplace_back([&, p] { body(p, n * p / parts, n * (p + 1) / parts); });
  for (std::thread &t : pool)
    t.join();
}

/// splitmix64's finalizer: a well-mixed 64-bit hash.
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// Random half bits for the long cases, from a counter-based generator so
/// that threads fill parts of a tensor of billions of elements at once: the
/// sum of the four 16-bit parts of a hash of (seed, index), uniform on
/// [0, 1) each (Irwin-Hall: mean 2, variance 1/3), centred and scaled to
/// unit variance. Close enough to N(0, 1) for inputs (|x| < 2 sqrt 3).
void fillRandomHalf(std::vector<uint16_t> &t, uint64_t seed, bool bf16, int threads) {
  constexpr float kUnit = 1.0f / 65536.0f;
  const float kSqrt3 = std::sqrt(3.0f);
  const uint64_t base = splitmix64(seed);
  parallelParts(static_cast<int64_t>(t.size()), threads, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t h = splitmix64(base + static_cast<uint64_t>(i));
      float sum = 0;
      for (int part = 0; part < 4; ++part)
        sum += static_cast<float>((h >> (16 * part)) & 0xffffu) * kUnit;
      t[static_cast<size_t>(i)] = toHalf((sum - 2.0f) * kSqrt3, bf16);
    }
  });
}

/// A device allocation (at least 16 bytes), freed on scope exit.
struct DeviceBuffer {
  void *ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) {
    if (cudaMalloc(&ptr, std::max<size_t>(bytes, 16)) != cudaSuccess)
      ptr = nullptr;
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
};

/// A loaded package with its compiled kernel and spec.
struct Subject {
  std::string dir;
  attnrt::Package package;
  attnrt::Kernel kernel;
  spec::Spec spec;
  bool bf16 = true;
  bool runtimeGlobal = false; ///< a runtime global-token list is passed

  attnc_dtype dtype() const { return bf16 ? ATTNC_DTYPE_BF16 : ATTNC_DTYPE_FP16; }
  npy::HalfType halfType() const { return bf16 ? npy::HalfType::BF16 : npy::HalfType::FP16; }
  /// Whether the spec allows these launch lengths.
  bool accepts(int64_t nq, int64_t nk) const {
    return !spec.seqLenQ || (*spec.seqLenQ == nq && *spec.seqLenKV == nk);
  }
  /// The runtime global tokens of a launch with nk keys (none for other masks).
  std::vector<int64_t> tokens(int64_t nk) const {
    if (!runtimeGlobal)
      return {};
    return {0, nk / 2, nk - 1};
  }
};

/// Passed and failed cases; a report line per case.
struct Tally {
  int passed = 0, failed = 0;
  void add(bool ok) { (ok ? passed : failed)++; }
};

std::string label(const Subject &s, int64_t nq, int64_t nk) {
  char text[256];
  std::snprintf(text, sizeof text, "%s nq=%lld nk=%lld", s.spec.name.c_str(),
                static_cast<long long>(nq), static_cast<long long>(nk));
  return text;
}

/// The inputs of the matrix cases: Q, K, V (and dO for the backward) drawn
/// from N(0, 1) by one generator seeded with the lengths, in that order, so
/// that the backward of a case sees the forward's inputs.
struct Inputs {
  std::vector<uint16_t> q, k, v, dO;
};

Inputs matrixInputs(const Subject &s, int64_t B, int64_t nq, int64_t nk, bool withDO) {
  const int64_t HQ = s.spec.queryHeads, HKV = s.spec.kvHeads, D = s.spec.headDim;
  std::mt19937 rng(static_cast<uint32_t>(nq * 7919 + nk));
  std::normal_distribution<float> normal;
  Inputs in;
  in.q.resize(static_cast<size_t>(B * nq * HQ * D));
  in.k.resize(static_cast<size_t>(B * nk * HKV * D));
  in.v.resize(in.k.size());
  for (auto *t : {&in.q, &in.k, &in.v})
    for (uint16_t &x : *t)
      x = toHalf(normal(rng), s.bf16);
  if (withDO) {
    in.dO.resize(in.q.size());
    for (uint16_t &x : in.dO)
      x = toHalf(normal(rng), s.bf16);
  }
  return in;
}

/// One forward case of the matrix (the check of the first GPU runs).
bool forwardCase(Subject &s, int64_t nq, int64_t nk, int threads) {
  const int64_t B = 1, HQ = s.spec.queryHeads, HKV = s.spec.kvHeads, D = s.spec.headDim;
  const bool bf16 = s.bf16;
  Inputs in = matrixInputs(s, B, nq, nk, false);
  std::vector<uint16_t> &q = in.q, &k = in.k, &v = in.v, o(q.size());
  std::vector<float> lse(static_cast<size_t>(B * HQ * nq));
  std::vector<int64_t> tokens = s.tokens(nk);
  DeviceBuffer dq(q.size() * 2), dk(k.size() * 2), dv(v.size() * 2), dOut(o.size() * 2),
      dl(lse.size() * 4);
  cudaMemcpy(dq.ptr, q.data(), q.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dk.ptr, k.data(), k.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dv.ptr, v.data(), v.size() * 2, cudaMemcpyHostToDevice);
  // NaN everywhere first: an element the kernel does not write fails the check.
  cudaMemset(dOut.ptr, 0xff, o.size() * 2);
  cudaMemset(dl.ptr, 0xff, lse.size() * 4);
  attnc_dtype dt = s.dtype();
  auto qv = attnrt::contiguousView(dq.ptr, dt, {B, nq, HQ, D});
  auto kv = attnrt::contiguousView(dk.ptr, dt, {B, nk, HKV, D});
  auto vv = attnrt::contiguousView(dv.ptr, dt, {B, nk, HKV, D});
  auto ov = attnrt::contiguousView(dOut.ptr, dt, {B, nq, HQ, D});
  auto lv = attnrt::contiguousView(dl.ptr, ATTNC_DTYPE_FP32, {B, HQ, nq});
  attnrt::Status st = s.kernel.forward(qv, kv, vv, ov, lv, tokens);
  std::string name = label(s, nq, nk);
  if (!st) {
    std::printf("FAIL %s: %s\n", name.c_str(), st.message().c_str());
    return false;
  }
  cudaMemcpy(o.data(), dOut.ptr, o.size() * 2, cudaMemcpyDeviceToHost);
  cudaMemcpy(lse.data(), dl.ptr, lse.size() * 4, cudaMemcpyDeviceToHost);

  std::vector<double> qd = toDoubles(q, bf16), kd = toDoubles(k, bf16), vd = toDoubles(v, bf16);
  reference::Shape shape{B, nq, nk, HQ, HKV, D};
  const std::vector<int64_t> *tokenList = s.runtimeGlobal ? &tokens : nullptr;
  reference::Output ref =
      naive::parallelReference(s.spec.mask, shape, s.spec.scale, qd, kd, vd, tokenList, threads);
  naive::Result nv =
      naive::forward(s.spec.mask, shape, s.halfType(), static_cast<float>(s.spec.scale), q.data(),
                     k.data(), v.data(), tokenList, threads, false);
  std::vector<double> od = toDoubles(o, bf16), nod = toDoubles(nv.o, bf16),
                      ld(lse.begin(), lse.end()), nld(nv.lse.begin(), nv.lse.end());
  double eO = relL2(od, ref.o), nO = relL2(nod, ref.o);
  double eL = relL2(ld, ref.lse), nL = relL2(nld, ref.lse);
  // Fully masked rows: exactly O = 0 and LSE = -inf.
  int64_t masked = 0;
  bool maskedOk = true;
  for (int64_t h = 0; h < HQ; ++h)
    for (int64_t i = 0; i < nq; ++i)
      if (std::isinf(ref.lse[h * nq + i])) {
        ++masked;
        maskedOk &= std::isinf(lse[h * nq + i]) && lse[h * nq + i] < 0;
        for (int64_t d = 0; d < D; ++d)
          maskedOk &= od[(i * HQ + h) * D + d] == 0.0;
      }
  bool ok = eO <= kForwardErrorFactor * nO + kErrorSlack &&
            eL <= kForwardErrorFactor * nL + kErrorSlack && maskedOk;
  std::printf("%s %-48s O %.2e (naive %.2e)  LSE %.2e (naive %.2e)  masked rows %lld%s\n",
              ok ? "ok  " : "FAIL", name.c_str(), eO, nO, eL, nL, static_cast<long long>(masked),
              maskedOk ? "" : " NOT ZERO/-INF");
  return ok;
}

/// Sorted distinct rows of [0, nq): `edge` at each end, `spread` evenly in
/// between, and every row from `from` on.
std::vector<int64_t> sampleRows(int64_t nq, int64_t edge, int64_t spread, int64_t from) {
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < std::min(edge, nq); ++i) {
    rows.push_back(i);
    rows.push_back(nq - 1 - i);
  }
  for (int64_t n = 0; n < spread; ++n)
    rows.push_back(nq * (2 * n + 1) / (2 * spread));
  for (int64_t i = std::max<int64_t>(from, 0); i < nq; ++i)
    rows.push_back(i);
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

/// A long forward case: the whole output must be finite (LSE may be -inf),
/// `rows` are checked against float64 with the 2x rule.
bool forwardRowsCase(Subject &s, int64_t nq, int64_t nk, const std::vector<int64_t> &rows,
                     uint64_t seed, int threads) {
  const int64_t B = 1, HQ = s.spec.queryHeads, HKV = s.spec.kvHeads, D = s.spec.headDim;
  const bool bf16 = s.bf16;
  const std::string name = label(s, nq, nk);
  const auto start = std::chrono::steady_clock::now();
  std::vector<uint16_t> q(static_cast<size_t>(B * nq * HQ * D)),
      k(static_cast<size_t>(B * nk * HKV * D)), v(k.size());
  fillRandomHalf(q, seed, bf16, threads);
  fillRandomHalf(k, seed + 1, bf16, threads);
  fillRandomHalf(v, seed + 2, bf16, threads);
  std::vector<int64_t> tokens = s.tokens(nk);
  const std::vector<int64_t> *tokenList = s.runtimeGlobal ? &tokens : nullptr;

  std::vector<uint16_t> o(q.size());
  std::vector<float> lse(static_cast<size_t>(B * HQ * nq));
  {
    DeviceBuffer dq(q.size() * 2), dk(k.size() * 2), dv(v.size() * 2), dOut(o.size() * 2),
        dl(lse.size() * 4);
    if (!dq.ptr || !dk.ptr || !dv.ptr || !dOut.ptr || !dl.ptr) {
      std::printf("FAIL %s: cudaMalloc failed\n", name.c_str());
      return false;
    }
    cudaMemcpy(dq.ptr, q.data(), q.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dk.ptr, k.data(), k.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dv.ptr, v.data(), v.size() * 2, cudaMemcpyHostToDevice);
    cudaMemset(dOut.ptr, 0xff, o.size() * 2);
    cudaMemset(dl.ptr, 0xff, lse.size() * 4);
    attnc_dtype dt = s.dtype();
    auto qv = attnrt::contiguousView(dq.ptr, dt, {B, nq, HQ, D});
    auto kv = attnrt::contiguousView(dk.ptr, dt, {B, nk, HKV, D});
    auto vv = attnrt::contiguousView(dv.ptr, dt, {B, nk, HKV, D});
    auto ov = attnrt::contiguousView(dOut.ptr, dt, {B, nq, HQ, D});
    auto lv = attnrt::contiguousView(dl.ptr, ATTNC_DTYPE_FP32, {B, HQ, nq});
    attnrt::Status st = s.kernel.forward(qv, kv, vv, ov, lv, tokens);
    if (!st) {
      std::printf("FAIL %s: %s\n", name.c_str(), st.message().c_str());
      return false;
    }
    if (cudaMemcpy(o.data(), dOut.ptr, o.size() * 2, cudaMemcpyDeviceToHost) != cudaSuccess ||
        cudaMemcpy(lse.data(), dl.ptr, lse.size() * 4, cudaMemcpyDeviceToHost) != cudaSuccess) {
      std::printf("FAIL %s: copying the output back failed\n", name.c_str());
      return false;
    }
  }

  // The whole output: O finite, LSE finite or -inf (fully masked rows,
  // counted: these problems have none unless the mask leaves rows empty).
  const int64_t parts = std::max(threads, 1);
  std::vector<int64_t> badO(static_cast<size_t>(parts), 0), badL(badO), emptyL(badO);
  parallelParts(
      static_cast<int64_t>(o.size()), threads, [&](int64_t part, int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i)
          badO[static_cast<size_t>(part)] += halfNonFinite(o[static_cast<size_t>(i)], bf16);
      });
  parallelParts(static_cast<int64_t>(lse.size()), threads,
                [&](int64_t part, int64_t begin, int64_t end) {
                  for (int64_t i = begin; i < end; ++i) {
                    const float x = lse[static_cast<size_t>(i)];
                    badL[static_cast<size_t>(part)] += std::isnan(x) || x == INFINITY;
                    emptyL[static_cast<size_t>(part)] += x == -INFINITY;
                  }
                });
  int64_t nonFiniteO = 0, badLse = 0, emptyRows = 0;
  for (int64_t p = 0; p < parts; ++p) {
    nonFiniteO += badO[static_cast<size_t>(p)];
    badLse += badL[static_cast<size_t>(p)];
    emptyRows += emptyL[static_cast<size_t>(p)];
  }

  // The sampled rows against float64, and the naive on the same rows.
  const int64_t R = static_cast<int64_t>(rows.size()), rowSize = HQ * D;
  std::vector<uint16_t> qRows(static_cast<size_t>(R * rowSize)), oRows(qRows.size());
  std::vector<double> lRows(static_cast<size_t>(HQ * R));
  for (int64_t n = 0; n < R; ++n) {
    const int64_t i = rows[static_cast<size_t>(n)];
    std::copy_n(q.begin() + i * rowSize, rowSize, qRows.begin() + n * rowSize);
    std::copy_n(o.begin() + i * rowSize, rowSize, oRows.begin() + n * rowSize);
    for (int64_t h = 0; h < HQ; ++h)
      lRows[static_cast<size_t>(h * R + n)] = lse[static_cast<size_t>(h * nq + i)];
  }
  std::vector<double> kd(k.size()), vd(v.size());
  parallelParts(static_cast<int64_t>(k.size()), threads, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      kd[static_cast<size_t>(i)] = fromHalf(k[static_cast<size_t>(i)], bf16);
      vd[static_cast<size_t>(i)] = fromHalf(v[static_cast<size_t>(i)], bf16);
    }
  });
  reference::Shape shape{B, nq, nk, HQ, HKV, D};
  reference::Output ref = naive::parallelReferenceRows(
      s.spec.mask, shape, s.spec.scale, toDoubles(qRows, bf16), kd, vd, rows, tokenList, threads);
  naive::Result nv =
      naive::forwardRows(s.spec.mask, shape, s.halfType(), static_cast<float>(s.spec.scale),
                         qRows.data(), k.data(), v.data(), rows, tokenList, threads);
  std::vector<double> od = toDoubles(oRows, bf16), nod = toDoubles(nv.o, bf16),
                      nld(nv.lse.begin(), nv.lse.end());
  double eO = relL2(od, ref.o), nO = relL2(nod, ref.o);
  double eL = relL2(lRows, ref.lse), nL = relL2(nld, ref.lse);
  int64_t masked = 0;
  bool maskedOk = true;
  for (int64_t h = 0; h < HQ; ++h)
    for (int64_t n = 0; n < R; ++n)
      if (std::isinf(ref.lse[static_cast<size_t>(h * R + n)])) {
        ++masked;
        maskedOk &= std::isinf(lRows[static_cast<size_t>(h * R + n)]) &&
                    lRows[static_cast<size_t>(h * R + n)] < 0;
        for (int64_t d = 0; d < D; ++d)
          maskedOk &= od[static_cast<size_t>((n * HQ + h) * D + d)] == 0.0;
      }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bool ok = eO <= kForwardErrorFactor * nO + kErrorSlack &&
            eL <= kForwardErrorFactor * nL + kErrorSlack && maskedOk && nonFiniteO == 0 &&
            badLse == 0;
  std::printf("%s %-48s O %.2e (naive %.2e)  LSE %.2e (naive %.2e)  rows %lld of %lld, masked "
              "%lld%s; Q %lld elements: non-finite O %lld, NaN/+inf LSE %lld, -inf LSE %lld; "
              "%.1f s\n",
              ok ? "ok  " : "FAIL", name.c_str(), eO, nO, eL, nL, static_cast<long long>(R),
              static_cast<long long>(nq), static_cast<long long>(masked),
              maskedOk ? "" : " NOT ZERO/-INF", static_cast<long long>(q.size()),
              static_cast<long long>(nonFiniteO), static_cast<long long>(badLse),
              static_cast<long long>(emptyRows), seconds);
  return ok;
}

/// The error of a gradient and its bound: relative L2 against the
/// reference, <= kBackwardErrorFactor x the naive's; where the reference is
/// exactly 0 everywhere, the largest |entry| <= kZeroGradientBound.
struct GradientError {
  double error = 0, naive = 0;
  bool absolute = false; ///< the reference is all zeros
  bool ok = false;
};

GradientError gradientError(const std::vector<double> &got, const std::vector<double> &naiveGot,
                            const std::vector<double> &want) {
  GradientError e;
  e.absolute = std::all_of(want.begin(), want.end(), [](double x) { return x == 0.0; });
  if (e.absolute) {
    for (double x : got)
      e.error = std::isnan(x) ? INFINITY : std::max(e.error, std::abs(x));
    for (double x : naiveGot)
      e.naive = std::isnan(x) ? INFINITY : std::max(e.naive, std::abs(x));
    e.ok = e.error <= kZeroGradientBound;
    return e;
  }
  e.error = relL2(got, want);
  e.naive = relL2(naiveGot, want);
  e.ok = e.error <= kBackwardErrorFactor * e.naive + kErrorSlack;
  return e;
}

/// One backward case: attnrt_forward, then attnrt_backward, against
/// reference::backward and the naive backward; with `determinism`, 49 more
/// runs of the backward must reproduce dQ, dK, dV bitwise.
bool backwardCase(Subject &s, int64_t nq, int64_t nk, int threads, bool determinism) {
  const int64_t B = 1, HQ = s.spec.queryHeads, HKV = s.spec.kvHeads, D = s.spec.headDim;
  const bool bf16 = s.bf16;
  const std::string name = label(s, nq, nk) + " bwd";
  Inputs in = matrixInputs(s, B, nq, nk, true);
  std::vector<int64_t> tokens = s.tokens(nk);
  const std::vector<int64_t> *tokenList = s.runtimeGlobal ? &tokens : nullptr;
  const size_t qBytes = in.q.size() * 2, kBytes = in.k.size() * 2;
  const size_t lseBytes = static_cast<size_t>(B * HQ * nq) * 4;
  DeviceBuffer dQ(qBytes), dK(kBytes), dV(kBytes), dO(qBytes), dLse(lseBytes), dGradO(qBytes),
      dGradQ(qBytes), dGradK(kBytes), dGradV(kBytes);
  cudaMemcpy(dQ.ptr, in.q.data(), qBytes, cudaMemcpyHostToDevice);
  cudaMemcpy(dK.ptr, in.k.data(), kBytes, cudaMemcpyHostToDevice);
  cudaMemcpy(dV.ptr, in.v.data(), kBytes, cudaMemcpyHostToDevice);
  cudaMemcpy(dGradO.ptr, in.dO.data(), qBytes, cudaMemcpyHostToDevice);
  attnc_dtype dt = s.dtype();
  auto qv = attnrt::contiguousView(dQ.ptr, dt, {B, nq, HQ, D});
  auto kv = attnrt::contiguousView(dK.ptr, dt, {B, nk, HKV, D});
  auto vv = attnrt::contiguousView(dV.ptr, dt, {B, nk, HKV, D});
  auto ov = attnrt::contiguousView(dO.ptr, dt, {B, nq, HQ, D});
  auto lv = attnrt::contiguousView(dLse.ptr, ATTNC_DTYPE_FP32, {B, HQ, nq});
  auto dov = attnrt::contiguousView(dGradO.ptr, dt, {B, nq, HQ, D});
  auto dqv = attnrt::contiguousView(dGradQ.ptr, dt, {B, nq, HQ, D});
  auto dkv = attnrt::contiguousView(dGradK.ptr, dt, {B, nk, HKV, D});
  auto dvv = attnrt::contiguousView(dGradV.ptr, dt, {B, nk, HKV, D});
  attnrt::Status st = s.kernel.forward(qv, kv, vv, ov, lv, tokens);
  // NaN everywhere first: an element the backward does not write fails.
  auto poison = [&] {
    cudaMemset(dGradQ.ptr, 0xff, qBytes);
    cudaMemset(dGradK.ptr, 0xff, kBytes);
    cudaMemset(dGradV.ptr, 0xff, kBytes);
  };
  auto runBackward = [&] {
    return s.kernel.backward(qv, kv, vv, ov, lv, dov, dqv, dkv, dvv, tokens);
  };
  if (st) {
    poison();
    st = runBackward();
  }
  if (!st) {
    std::printf("FAIL %s: %s\n", name.c_str(), st.message().c_str());
    return false;
  }
  std::vector<uint16_t> gq(in.q.size()), gk(in.k.size()), gv(in.k.size());
  cudaMemcpy(gq.data(), dGradQ.ptr, qBytes, cudaMemcpyDeviceToHost);
  cudaMemcpy(gk.data(), dGradK.ptr, kBytes, cudaMemcpyDeviceToHost);
  cudaMemcpy(gv.data(), dGradV.ptr, kBytes, cudaMemcpyDeviceToHost);

  // The float64 reference and the naive at once: each splits over the Hq
  // query heads only, so together they fill twice as many cores.
  reference::Shape shape{B, nq, nk, HQ, HKV, D};
  naive::Gradients nv;
  std::thread naiveThread([&] {
    nv = naive::backward(s.spec.mask, shape, s.halfType(), static_cast<float>(s.spec.scale),
                         in.q.data(), in.k.data(), in.v.data(), in.dO.data(), tokenList, threads);
  });
  reference::Gradients ref = naive::parallelReferenceBackward(
      s.spec.mask, shape, s.spec.scale, toDoubles(in.q, bf16), toDoubles(in.k, bf16),
      toDoubles(in.v, bf16), toDoubles(in.dO, bf16), tokenList, threads);
  naiveThread.join();
  std::vector<double> gqd = toDoubles(gq, bf16), gkd = toDoubles(gk, bf16),
                      gvd = toDoubles(gv, bf16);
  GradientError eQ = gradientError(gqd, toDoubles(nv.dq, bf16), ref.dq);
  GradientError eK = gradientError(gkd, toDoubles(nv.dk, bf16), ref.dk);
  GradientError eV = gradientError(gvd, toDoubles(nv.dv, bf16), ref.dv);

  // Exact zeros: dQ of rows that see no key, dK and dV of keys no row sees.
  mask::Predicate pred(s.spec.mask, mask::Extent{nq, nk, tokenList});
  std::vector<bool> rowSees(static_cast<size_t>(nq), false),
      keySeen(static_cast<size_t>(nk), false);
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t j = 0; j < nk; ++j)
      if (pred.allowed(i, j)) {
        rowSees[static_cast<size_t>(i)] = true;
        keySeen[static_cast<size_t>(j)] = true;
      }
  int64_t maskedRows = 0, unseenKeys = 0;
  bool zerosOk = true;
  for (int64_t i = 0; i < nq; ++i) {
    if (rowSees[static_cast<size_t>(i)])
      continue;
    ++maskedRows;
    for (int64_t e = 0; e < HQ * D; ++e)
      zerosOk &= gqd[static_cast<size_t>(i * HQ * D + e)] == 0.0;
  }
  for (int64_t j = 0; j < nk; ++j) {
    if (keySeen[static_cast<size_t>(j)])
      continue;
    ++unseenKeys;
    for (int64_t e = 0; e < HKV * D; ++e)
      zerosOk &= gkd[static_cast<size_t>(j * HKV * D + e)] == 0.0 &&
                 gvd[static_cast<size_t>(j * HKV * D + e)] == 0.0;
  }

  bool ok = eQ.ok && eK.ok && eV.ok && zerosOk;
  auto show = [](const GradientError &e) {
    char text[96];
    std::snprintf(text, sizeof text, "%s%.2e (naive %.2e)", e.absolute ? "max|.| " : "", e.error,
                  e.naive);
    return std::string(text);
  };
  std::printf("%s %-52s dQ %s  dK %s  dV %s  masked rows %lld, unseen keys %lld%s\n",
              ok ? "ok  " : "FAIL", name.c_str(), show(eQ).c_str(), show(eK).c_str(),
              show(eV).c_str(), static_cast<long long>(maskedRows),
              static_cast<long long>(unseenKeys), zerosOk ? "" : " NOT ZERO");
  if (!determinism)
    return ok;

  // Deterministic dQ: every further run reproduces the first bitwise.
  int differing = 0;
  std::vector<uint16_t> again(gq.size()), againK(gk.size()), againV(gv.size());
  for (int run = 1; run < kDeterminismRuns; ++run) {
    poison();
    if (!(st = runBackward()))
      break;
    cudaMemcpy(again.data(), dGradQ.ptr, qBytes, cudaMemcpyDeviceToHost);
    cudaMemcpy(againK.data(), dGradK.ptr, kBytes, cudaMemcpyDeviceToHost);
    cudaMemcpy(againV.data(), dGradV.ptr, kBytes, cudaMemcpyDeviceToHost);
    differing += again != gq || againK != gk || againV != gv;
  }
  const bool same = st && differing == 0;
  const std::string why = st ? "" : " (" + st.message() + ")";
  std::printf("%s %-52s deterministic: %d runs, %d differ bitwise%s\n", same ? "ok  " : "FAIL",
              name.c_str(), kDeterminismRuns, differing, why.c_str());
  return ok && same;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: gpu_numerics PACKAGES_DIR [--quick] [--forward-only | "
                         "--backward-only | --long-only] [--no-long]\n");
    return 1;
  }
  bool quick = false, forward = true, matrix = true, backward = true, longCases = true;
  for (int a = 2; a < argc; ++a) {
    std::string arg = argv[a];
    if (arg == "--quick")
      quick = true;
    else if (arg == "--forward-only")
      backward = false;
    else if (arg == "--backward-only")
      forward = false;
    else if (arg == "--no-long")
      longCases = false;
    else if (arg == "--long-only")
      matrix = backward = false;
    else {
      std::fprintf(stderr, "gpu_numerics: unknown option %s\n", arg.c_str());
      return 1;
    }
  }
  longCases &= forward && !quick;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("gpu_numerics: skipped: no GPU\n");
    return kSkip;
  }
  std::vector<std::pair<int64_t, int64_t>> lengths = {{1, 1},     {17, 17},     {127, 127},
                                                      {129, 129}, {1000, 1000}, {1023, 1023},
                                                      {100, 300}, {300, 100},   {17, 1000}};
  if (quick)
    lengths = {{17, 17}, {129, 129}, {300, 100}};
  // The backward's determinism check runs on one length: the largest.
  const std::pair<int64_t, int64_t> determinismLength =
      quick ? std::make_pair(129, 129) : std::make_pair(1023, 1023);
  std::vector<std::string> dirs;
  if (DIR *dir = opendir(argv[1])) {
    while (dirent *e = readdir(dir))
      if (e->d_name[0] != '.')
        dirs.push_back(std::string(argv[1]) + "/" + e->d_name);
    closedir(dir);
  }
  std::sort(dirs.begin(), dirs.end());
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  Tally tally;

  std::vector<Subject> subjects;
  for (const std::string &dir : dirs) {
    auto package = attnrt::Package::load(dir);
    if (!package) {
      std::printf("FAIL %s: %s\n", dir.c_str(), package.status().message().c_str());
      tally.add(false);
      continue;
    }
    auto kernel = attnrt::Kernel::create(*package);
    if (!kernel) {
      std::printf("FAIL %s: %s\n", dir.c_str(), kernel.status().message().c_str());
      tally.add(false);
      continue;
    }
    spec::LoadResult loaded = spec::loadSpecFromString(package->specJson(), dir + "/manifest.json");
    if (!loaded.ok()) {
      std::printf("FAIL %s: the package's spec does not load\n", dir.c_str());
      tally.add(false);
      continue;
    }
    Subject s{dir, std::move(*package), std::move(*kernel), std::move(*loaded.spec)};
    s.bf16 = s.spec.dtype == spec::DType::BF16;
    s.runtimeGlobal = std::string(s.package.specJson()).find("\"runtime\"") != std::string::npos;
    subjects.push_back(std::move(s));
  }

  if (forward && matrix) {
    auto start = std::chrono::steady_clock::now();
    int cases = 0;
    for (Subject &s : subjects)
      for (auto [nq, nk] : lengths)
        if (s.accepts(nq, nk)) {
          tally.add(forwardCase(s, nq, nk, threads));
          ++cases;
        }
    std::printf("forward: %d cases in %.1f s\n", cases, secondsSince(start));
  }

  if (longCases) {
    auto start = std::chrono::steady_clock::now();
    int cases = 0;
    for (Subject &s : subjects)
      if (s.accepts(kLongLength, kLongLength)) {
        std::vector<int64_t> rows = sampleRows(kLongLength, kEdgeRows, kSpreadRows, kLongLength);
        tally.add(forwardRowsCase(s, kLongLength, kLongLength, rows, 8192, threads));
        ++cases;
      }
    std::printf("forward at %lld: %d cases in %.1f s\n", static_cast<long long>(kLongLength), cases,
                secondsSince(start));

    // More than 2^31 elements of Q and O: a window over as many keys (MQA
    // keeps K and V at 1/8 of that), and every row over a few keys.
    start = std::chrono::steady_clock::now();
    const struct {
      const char *package;
      int64_t nq, nk;
    } huge[] = {{"window_mqa_bf16_d128", kHugeQueryLength, kHugeQueryLength},
                {"full_mha_fp16_d128", kHugeQueryLength, 127}};
    for (const auto &h : huge) {
      auto it = std::find_if(subjects.begin(), subjects.end(),
                             [&](const Subject &s) { return s.spec.name == h.package; });
      if (it == subjects.end() || !it->accepts(h.nq, h.nk)) {
        std::printf("FAIL %s: no such package (with launch-time lengths) for the > 2^31 case\n",
                    h.package);
        tally.add(false);
        continue;
      }
      // Every row whose elements lie past 2^31 (and the 64 before them).
      const int64_t rowElements = it->spec.queryHeads * it->spec.headDim;
      const int64_t first = (int64_t{1} << 31) / rowElements - kEdgeRows;
      std::vector<int64_t> rows = sampleRows(h.nq, kEdgeRows, kSpreadRows, first);
      tally.add(forwardRowsCase(*it, h.nq, h.nk, rows, 31, threads));
    }
    std::printf("forward beyond 2^31 elements: %.1f s\n", secondsSince(start));
  }

  if (backward) {
    auto start = std::chrono::steady_clock::now();
    int cases = 0, packages = 0;
    for (Subject &s : subjects) {
      if (!s.package.hasBackward())
        continue;
      ++packages;
      const bool deterministic = s.package.deterministic();
      for (auto [nq, nk] : lengths)
        if (s.accepts(nq, nk)) {
          const bool check = deterministic && std::make_pair(nq, nk) == determinismLength;
          tally.add(backwardCase(s, nq, nk, threads, check));
          ++cases;
        }
    }
    std::printf("backward: %d packages, %d cases in %.1f s\n", packages, cases,
                secondsSince(start));
  }

  std::printf("%d passed, %d failed\n", tally.passed, tally.failed);
  return tally.failed ? 1 : 0;
}
