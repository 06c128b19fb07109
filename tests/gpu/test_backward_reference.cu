// GPU test of the hand-written backward reference kernels
// (backward_reference_kernel.cu): dQ, dK and dV against a float64 CPU
// reference with the error rule of ARCHITECTURE.md (relative L2 error of each
// <= 3x that of a naive bf16/fp16 implementation on the same inputs, which
// materializes P and dS rounded to the element type as PyTorch's math backend
// does), exact zeros where the reference is structurally zero (fully masked
// query rows: dQ; keys no query sees: dK, dV), every output written (outputs
// and the dq_accum workspace are poisoned with NaN first), bitwise-equal
// results over repeated runs in deterministic mode, and the timing of the
// whole backward (CUDA events, warm-up, median of 10).
//
// One binary per configuration of backward_reference_kernel.cu (see
// build_backward.sh for the ATTNC_TEST_* knobs). Flags: --quick (small cases
// only), --sanitize (three small cases, for compute-sanitizer), --bench (also
// time B2 N8192 with the configuration's heads), --bench-only, --repeat N
// (determinism runs, default 50). The float64 reference is first checked
// against central differences (no GPU needed).
// Exit status 0 iff every check passed; 77 (skip) when no GPU is present.

#include "backward_reference_kernel.cu"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

#define CUDA_CHECK(call)                                                                           \
  do {                                                                                             \
    cudaError_t status_ = (call);                                                                  \
    if (status_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,                    \
                   cudaGetErrorString(status_));                                                   \
      std::exit(1);                                                                                \
    }                                                                                              \
  } while (0)

constexpr int kSkipExitCode = 77;
constexpr int kWarmups = 3, kTimedRuns = 10;
constexpr bool kDeterministic = ATTNC_TEST_DETERMINISTIC;
/// The error rule: each gradient's relative L2 error <= kErrorFactor x the naive one's.
constexpr double kErrorFactor = 3.0, kErrorSlack = 1e-7;
/// Where the exact gradient is zero everywhere (Nk = 1: P = 1, dS = dP - rowsum(P dP) = 0), the
/// relative error is undefined: the kernel's RMS error must stay below this instead (its delta,
/// rowsum(dO O) from O in the element type as kernel_abi.h defines it, cancels dP only to f32
/// rounding; unit-variance inputs).
constexpr double kZeroGradientRms = 1e-4;

/// Dynamic shared memory and threads of the kernels under test.
constexpr unsigned kDkdvSharedBytes = sizeof(DkdvSmem);
constexpr unsigned kDkdvThreads = DkdvCfg::kNumThreads;
constexpr unsigned kDqThreads = DqCfg::kNumThreads;
#if ATTNC_TEST_DETERMINISTIC
constexpr unsigned kDqSharedBytes = sizeof(DqSharedStorage<DqCfg>);
#endif

//===----------------------------------------------------------------------===//
// The configuration under test, as the host sees it
//===----------------------------------------------------------------------===//

#if defined(ATTNC_REFERENCE_CAUSAL_GQA)
const char *const kMaskName = ATTNC_TEST_DENSE ? "dense" : "causal";
/// The band of configuration (a): causal, or every pair.
bool allowedPair(int64_t p, int64_t k) { return ATTNC_TEST_DENSE || p - k >= 0; }
#else
constexpr int64_t kWindow = 256;
/// Which table mask the next case uses: 0 causal window | global, 1 random bits.
int tableMask = 0;
const char *const kMaskNames[] = {"causal&(window256|global0)", "random bits"};
uint64_t mixBits(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}
/// Mask 0: intersect(causal, union(window{256, 256}, global{[0]})). Mask 1: about half of all
/// pairs at random, and none for positions p with p % 7 == 3 (fully masked rows).
bool allowedPair(int64_t p, int64_t k) {
  if (tableMask == 0)
    return p - k >= 0 && (p - k <= kWindow || k == 0 || p == 0);
  if (((p % 7) + 7) % 7 == 3)
    return false;
  return (mixBits(static_cast<uint64_t>(p) * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(k)) & 1) == 0;
}
#endif
const double kSoftmaxScale = SCALE;
#if defined(ATTNC_REFERENCE_CAUSAL_GQA)
constexpr bool kCausalBand = !ATTNC_TEST_DENSE;
#else
constexpr bool kCausalBand = false;
#endif

//===----------------------------------------------------------------------===//
// Element conversions (as runtime/cpu/attnc_cpu.h)
//===----------------------------------------------------------------------===//

float bf16ToFloat(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

uint16_t floatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float fp16ToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  uint32_t u;
  if (exponent == 0x1f) {
    u = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    u = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    u = sign;
  } else {
    int shift = 0;
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      ++shift;
    }
    u = sign | ((113 - shift) << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

uint16_t floatToFp16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t absBits = u & 0x7fffffffu;
  if (absBits > 0x7f800000u)
    return static_cast<uint16_t>(sign | 0x7e00u);
  if (absBits >= 0x477ff000u)
    return static_cast<uint16_t>(sign | 0x7c00u);
  if (absBits < 0x38800000u) {
    float a;
    std::memcpy(&a, &absBits, sizeof a);
    uint32_t m = static_cast<uint32_t>(std::nearbyint(a * 16777216.0f));
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t rounded = absBits + 0xfffu + ((absBits >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

float toFloat(uint16_t bits) { return IS_BF16 ? bf16ToFloat(bits) : fp16ToFloat(bits); }
uint16_t fromFloat(float f) { return IS_BF16 ? floatToBf16(f) : floatToFp16(f); }
/// f rounded to the element type (the naive implementation's intermediate roundings).
float roundToElement(float f) { return toFloat(fromFloat(f)); }

//===----------------------------------------------------------------------===//
// Host helpers
//===----------------------------------------------------------------------===//

/// Runs body(item) for item in [0, items) on all hardware threads.
template <typename Body> void parallelFor(int64_t items, const Body &body) {
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    for (int64_t i = next++; i < items; i = next++)
      body(i);
  };
  std::vector<std::thread> pool;
  unsigned n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned t = 1; t < n && static_cast<int64_t>(t) < items; ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &t : pool)
    t.join();
}

/// Approximately normal values (sum of 4 uniforms, unit variance) rounded to the element type.
std::vector<uint16_t> randomElements(int64_t n, uint64_t seed) {
  std::vector<uint16_t> out(static_cast<size_t>(n));
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int64_t i = 0; i < n; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const uint64_t h = state ^ (state >> 29);
    float sum = 0.0f;
    for (int part = 0; part < 4; ++part)
      sum += static_cast<float>((h >> (16 * part)) & 0xffff) / 32768.0f - 1.0f;
    out[static_cast<size_t>(i)] = fromFloat(sum * 0.8660254f);
  }
  return out;
}

/// A [B, N, H, D] host tensor with packed strides, its elements converted to double once.
struct HostTensor {
  std::vector<double> data;
  int64_t n, heads;
  HostTensor(const std::vector<uint16_t> &bits, int64_t n, int64_t heads) : n(n), heads(heads) {
    data.reserve(bits.size());
    for (uint16_t x : bits)
      data.push_back(toFloat(x));
  }
  HostTensor(std::vector<double> values, int64_t n, int64_t heads)
      : data(std::move(values)), n(n), heads(heads) {}
  /// The HEAD_DIM elements of row (b, i, h).
  const double *row(int64_t b, int64_t i, int64_t h) const {
    return data.data() + ((b * n + i) * heads + h) * HEAD_DIM;
  }
};

//===----------------------------------------------------------------------===//
// The float64 and naive references
//===----------------------------------------------------------------------===//

/// The forward outputs (float64) and the gradients: float64 and naive low precision.
struct Reference {
  std::vector<double> o, lse;                         // [B, Nq, Hq, D], [B, Hq, Nq]
  std::vector<double> dq, dk, dv;                     // float64, like q / k / v
  std::vector<float> naiveDq, naiveDk, naiveDv;       // naive, rounded to the element type
  std::vector<uint8_t> maskedRow;                     // [B, Nq]: the query row sees no key
  std::vector<uint8_t> unseenKey;                     // [B, Nk]: no query row sees the key
};

Reference computeReference(const HostTensor &q, const HostTensor &k, const HostTensor &v,
                           const HostTensor &dO, int64_t batch, int64_t nq, int64_t nk) {
  constexpr int D = HEAD_DIM;
  Reference ref;
  const size_t qElems = static_cast<size_t>(batch * nq * QUERY_HEADS * D);
  const size_t kvElems = static_cast<size_t>(batch * nk * KV_HEADS * D);
  ref.o.assign(qElems, 0.0);
  ref.lse.assign(static_cast<size_t>(batch * QUERY_HEADS * nq), -INFINITY);
  ref.dq.assign(qElems, 0.0);
  ref.naiveDq.assign(qElems, 0.0f);
  ref.dk.assign(kvElems, 0.0);
  ref.dv.assign(kvElems, 0.0);
  ref.naiveDk.assign(kvElems, 0.0f);
  ref.naiveDv.assign(kvElems, 0.0f);
  ref.maskedRow.assign(static_cast<size_t>(batch * nq), 1);
  ref.unseenKey.assign(static_cast<size_t>(batch * nk), 1);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t key = 0; key < nk; ++key)
        if (allowedPair(i + nk - nq, key)) {
          ref.maskedRow[static_cast<size_t>(b * nq + i)] = 0;
          ref.unseenKey[static_cast<size_t>(b * nk + key)] = 0;
        }
  // Per (b, query head): dK, dV partial sums of that head (float64 and naive, rounded per head as
  // the per-head matmuls of a framework round), summed over the group afterwards.
  const int64_t items = batch * QUERY_HEADS;
  const int64_t group = QUERY_HEADS / KV_HEADS;
  std::vector<std::vector<double>> headDk(static_cast<size_t>(items)), headDv(static_cast<size_t>(items));
  std::vector<std::vector<float>> headNaiveDk(static_cast<size_t>(items)),
      headNaiveDv(static_cast<size_t>(items));
  const float scale = static_cast<float>(kSoftmaxScale);
  parallelFor(items, [&](int64_t item) {
    const int64_t b = item / QUERY_HEADS, h = item % QUERY_HEADS, kvh = h / group;
    std::vector<double> dk(static_cast<size_t>(nk * D), 0.0), dv(dk.size(), 0.0);
    std::vector<float> ndk(dk.size(), 0.0f), ndv(dk.size(), 0.0f);
    std::vector<int64_t> keys;
    std::vector<double> s, p, dp;
    std::vector<float> sf, pf, dpf;
    std::vector<double> qRow(D), doRow(D);
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t pos = i + nk - nq;
      keys.clear();
      for (int64_t key = 0; key < nk; ++key)
        if (allowedPair(pos, key))
          keys.push_back(key);
      if (keys.empty())
        continue; // O = 0, LSE = -inf, no gradient
      const size_t n = keys.size();
      const double *qf = q.row(b, i, h), *dof = dO.row(b, i, h);
      for (int d = 0; d < D; ++d) {
        qRow[d] = qf[d];
        doRow[d] = dof[d];
      }
      // float64: P, O, LSE, dP, delta = rowsum(P dP) (exact), dS = P (dP - delta).
      s.assign(n, 0.0);
      p.assign(n, 0.0);
      dp.assign(n, 0.0);
      double mx = -INFINITY;
      for (size_t j = 0; j < n; ++j) {
        const double *kf = k.row(b, keys[j], kvh), *vf = v.row(b, keys[j], kvh);
        double dot = 0.0, dotV = 0.0;
        for (int d = 0; d < D; ++d) {
          dot += qRow[d] * kf[d];
          dotV += doRow[d] * vf[d];
        }
        s[j] = dot * kSoftmaxScale;
        dp[j] = dotV;
        mx = std::max(mx, s[j]);
      }
      double l = 0.0;
      for (size_t j = 0; j < n; ++j)
        l += (p[j] = std::exp(s[j] - mx));
      double delta = 0.0;
      const size_t oBase = static_cast<size_t>(((b * nq + i) * QUERY_HEADS + h) * D);
      for (size_t j = 0; j < n; ++j) {
        p[j] /= l;
        delta += p[j] * dp[j];
        const double *vf = v.row(b, keys[j], kvh);
        for (int d = 0; d < D; ++d)
          ref.o[oBase + d] += p[j] * vf[d];
      }
      ref.lse[static_cast<size_t>((b * QUERY_HEADS + h) * nq + i)] = mx + std::log(l);
      for (size_t j = 0; j < n; ++j) {
        const double dsj = p[j] * (dp[j] - delta) * kSoftmaxScale;
        const size_t kBase = static_cast<size_t>(keys[j] * D);
        const double *kf = k.row(b, keys[j], kvh);
        for (int d = 0; d < D; ++d) {
          ref.dq[oBase + d] += dsj * kf[d];
          dk[kBase + d] += dsj * qRow[d];
          dv[kBase + d] += p[j] * doRow[d];
        }
      }
      // Naive low precision, as PyTorch's math backend: S = round(round(Q K^T) scale),
      // P = round(softmax(S) in f32), dP = round(dO V^T), dS = round(P (dP - rowsum(P dP))),
      // dS' = round(dS scale); dQ = dS' K, dK = dS'^T Q, dV = P^T dO with f32 accumulation.
      sf.assign(n, 0.0f);
      pf.assign(n, 0.0f);
      dpf.assign(n, 0.0f);
      float mf = -INFINITY;
      for (size_t j = 0; j < n; ++j) {
        const double *kf = k.row(b, keys[j], kvh), *vf = v.row(b, keys[j], kvh);
        float dot = 0.0f, dotV = 0.0f;
        for (int d = 0; d < D; ++d) {
          dot += static_cast<float>(qf[d]) * static_cast<float>(kf[d]);
          dotV += static_cast<float>(dof[d]) * static_cast<float>(vf[d]);
        }
        sf[j] = roundToElement(roundToElement(dot) * scale);
        dpf[j] = roundToElement(dotV);
        mf = std::max(mf, sf[j]);
      }
      float lf = 0.0f;
      for (size_t j = 0; j < n; ++j)
        lf += (pf[j] = std::exp(sf[j] - mf));
      float sumPdP = 0.0f;
      for (size_t j = 0; j < n; ++j) {
        pf[j] = roundToElement(pf[j] / lf);
        sumPdP += pf[j] * dpf[j];
      }
      std::vector<float> dqRow(D, 0.0f);
      for (size_t j = 0; j < n; ++j) {
        const float dsj = roundToElement(roundToElement(pf[j] * (dpf[j] - sumPdP)) * scale);
        const size_t kBase = static_cast<size_t>(keys[j] * D);
        const double *kf = k.row(b, keys[j], kvh);
        for (int d = 0; d < D; ++d) {
          dqRow[d] += dsj * static_cast<float>(kf[d]);
          ndk[kBase + d] += dsj * static_cast<float>(qf[d]);
          ndv[kBase + d] += pf[j] * static_cast<float>(dof[d]);
        }
      }
      for (int d = 0; d < D; ++d)
        ref.naiveDq[oBase + d] = roundToElement(dqRow[d]);
    }
    for (size_t e = 0; e < ndk.size(); ++e) {
      ndk[e] = roundToElement(ndk[e]);
      ndv[e] = roundToElement(ndv[e]);
    }
    headDk[static_cast<size_t>(item)] = std::move(dk);
    headDv[static_cast<size_t>(item)] = std::move(dv);
    headNaiveDk[static_cast<size_t>(item)] = std::move(ndk);
    headNaiveDv[static_cast<size_t>(item)] = std::move(ndv);
  });
  // GQA: dK, dV of kv head g sum over the query heads of its group.
  for (int64_t item = 0; item < items; ++item) {
    const int64_t b = item / QUERY_HEADS, kvh = (item % QUERY_HEADS) / group;
    for (int64_t key = 0; key < nk; ++key)
      for (int d = 0; d < D; ++d) {
        const size_t src = static_cast<size_t>(key * D + d);
        const size_t dst = static_cast<size_t>(((b * nk + key) * KV_HEADS + kvh) * D + d);
        ref.dk[dst] += headDk[static_cast<size_t>(item)][src];
        ref.dv[dst] += headDv[static_cast<size_t>(item)][src];
        ref.naiveDk[dst] += headNaiveDk[static_cast<size_t>(item)][src];
        ref.naiveDv[dst] += headNaiveDv[static_cast<size_t>(item)][src];
      }
  }
  for (size_t e = 0; e < kvElems; ++e) {
    ref.naiveDk[e] = roundToElement(ref.naiveDk[e]);
    ref.naiveDv[e] = roundToElement(ref.naiveDv[e]);
  }
  return ref;
}

/// Checks the float64 reference itself (no GPU needed): its dQ, dK, dV against central differences
/// of L = sum(dO O) on tiny cases with unrounded inputs (nq < nk and nq > nk, the latter with fully
/// masked rows under causal masks). Returns the number of failed checks.
int selfCheckReference() {
  constexpr double kEps = 1e-5, kTolerance = 1e-6;
  constexpr int kProbes = 8;
  const int64_t sizes[2][2] = {{9, 13}, {13, 9}};
  int failed = 0;
  uint64_t state = 42;
  auto uniform = [&]() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
  };
  for (const auto &size : sizes) {
    const int64_t nq = size[0], nk = size[1];
    auto randomTensor = [&](int64_t n, int64_t heads) {
      std::vector<double> x(static_cast<size_t>(n * heads * HEAD_DIM));
      for (double &e : x)
        e = 2.0 * uniform();
      return HostTensor(std::move(x), n, heads);
    };
    HostTensor q = randomTensor(nq, QUERY_HEADS), k = randomTensor(nk, KV_HEADS),
               v = randomTensor(nk, KV_HEADS), dO = randomTensor(nq, QUERY_HEADS);
    const Reference ref = computeReference(q, k, v, dO, 1, nq, nk);
    auto loss = [&]() {
      const Reference r = computeReference(q, k, v, dO, 1, nq, nk);
      double l = 0.0;
      for (size_t e = 0; e < r.o.size(); ++e)
        l += dO.data[e] * r.o[e];
      return l;
    };
    HostTensor *inputs[3] = {&q, &k, &v};
    const std::vector<double> *grads[3] = {&ref.dq, &ref.dk, &ref.dv};
    const char *names[3] = {"dQ", "dK", "dV"};
    for (int t = 0; t < 3; ++t) {
      double maxGrad = 0.0, maxError = 0.0;
      for (double g : *grads[t])
        maxGrad = std::max(maxGrad, std::fabs(g));
      for (int probe = 0; probe < kProbes; ++probe) {
        const size_t e = static_cast<size_t>((uniform() * 0.5 + 0.5) * inputs[t]->data.size()) %
                         inputs[t]->data.size();
        const double x = inputs[t]->data[e];
        inputs[t]->data[e] = x + kEps;
        const double plus = loss();
        inputs[t]->data[e] = x - kEps;
        const double minus = loss();
        inputs[t]->data[e] = x;
        maxError = std::max(maxError, std::fabs((plus - minus) / (2 * kEps) - (*grads[t])[e]));
      }
      const bool pass = maxGrad > 0.0 && maxError <= kTolerance * std::max(1.0, maxGrad);
      std::printf("%-4s reference self-check Nq %lld Nk %lld %s: max |central difference - "
                  "reference| %.2e (max |grad| %.2e)\n",
                  pass ? "PASS" : "FAIL", static_cast<long long>(nq), static_cast<long long>(nk),
                  names[t], maxError, maxGrad);
      failed += !pass;
    }
  }
  return failed;
}

/// Checks bandRowTiles (the column schedule of a band, no GPU needed) against brute force: for
/// random bands (dilated, one-sided, unbounded, empty) and shapes, [first, last] holds every query
/// tile with an allowed pair for kv tile kt, and bandTile classifies every tile as brute force
/// does. Returns the number of failed checks.
int selfCheckBandColumns() {
  constexpr int kCases = 400;
  constexpr int64_t kTileM = 16, kTileN = 8; // small tiles: many tiles per case
  uint64_t state = 7;
  auto next = [&](int64_t bound) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int64_t>((state >> 33) % static_cast<uint64_t>(bound));
  };
  int failed = 0;
  for (int c = 0; c < kCases; ++c) {
    const int64_t nq = 1 + next(90), nk = 1 + next(90), period = 1 + next(4);
    int64_t lo = next(3) == 0 ? -kUnbounded : next(80) - 40;
    int64_t hi = next(3) == 0 ? kUnbounded : next(80) - 40;
    const Band band = tightenBand(lo, hi, period);
    auto allowed = [&](int64_t i, int64_t k) {
      const int64_t d = i + nk - nq - k;
      return band.lo <= band.hi && d >= band.lo && d <= band.hi && d % band.period == 0;
    };
    for (int64_t kt = 0; kt * kTileN < nk; ++kt) {
      int64_t first = 0, last = -1;
      bandRowTiles(band, kt, kTileM, kTileN, nq, nk, first, last);
      for (int64_t qt = 0; qt * kTileM < nq; ++qt) {
        int64_t pairs = 0, allowedPairs = 0;
        for (int64_t i = qt * kTileM; i < std::min(nq, (qt + 1) * kTileM); ++i)
          for (int64_t k = kt * kTileN; k < std::min(nk, (kt + 1) * kTileN); ++k) {
            ++pairs;
            allowedPairs += allowed(i, k);
          }
        const TileClass expected = allowedPairs == 0   ? TileClass::Empty
                                   : allowedPairs == pairs ? TileClass::Full
                                                           : TileClass::Partial;
        const TileClass got = bandTile(band, qt, kt, kTileM, kTileN, nq, nk);
        const bool inRange = qt >= first && qt <= last;
        if (got != expected || (expected != TileClass::Empty && !inRange)) {
          if (failed < 5)
            std::printf("FAIL band columns: band [%lld, %lld] / %lld, nq %lld nk %lld, kt %lld qt %lld: "
                        "class %d (expected %d), range [%lld, %lld]\n",
                        static_cast<long long>(band.lo), static_cast<long long>(band.hi),
                        static_cast<long long>(band.period), static_cast<long long>(nq),
                        static_cast<long long>(nk), static_cast<long long>(kt),
                        static_cast<long long>(qt), static_cast<int>(got),
                        static_cast<int>(expected), static_cast<long long>(first),
                        static_cast<long long>(last));
          ++failed;
        }
      }
    }
  }
  std::printf("%-4s band column schedule self-check: %d random bands and shapes, %d mismatches\n",
              failed == 0 ? "PASS" : "FAIL", kCases, failed);
  return failed == 0 ? 0 : 1;
}

//===----------------------------------------------------------------------===//
// Schedule tables (brute force over tiles; the runtime uses mask::BlockSchedule)
//===----------------------------------------------------------------------===//

struct HostTable {
  std::vector<int64_t> rowOffsets{0}, colTiles, bitOffsets;
  std::vector<uint8_t> full;
  std::vector<uint64_t> bits;
  int64_t wordsPerRow = (BLOCK_N + 63) / 64;
};

#if defined(ATTNC_REFERENCE_WINDOW_TABLE)
/// The forward (row) table and its transpose (column table, same bits array) of the current mask.
void buildTables(int64_t nq, int64_t nk, HostTable &rows, HostTable &columns) {
  rows = HostTable{};
  columns = HostTable{};
  const int64_t rowTiles = (nq + BLOCK_M - 1) / BLOCK_M, colTiles = (nk + BLOCK_N - 1) / BLOCK_N;
  std::vector<int64_t> entryOf(static_cast<size_t>(rowTiles * colTiles), -1);
  std::vector<uint64_t> tileBits(static_cast<size_t>(BLOCK_M * rows.wordsPerRow));
  for (int64_t r = 0; r < rowTiles; ++r) {
    for (int64_t c = 0; c < colTiles; ++c) {
      std::fill(tileBits.begin(), tileBits.end(), 0);
      int64_t allowed = 0, pairs = 0;
      for (int64_t i = r * BLOCK_M; i < std::min(nq, (r + 1) * BLOCK_M); ++i)
        for (int64_t key = c * BLOCK_N; key < std::min(nk, (c + 1) * BLOCK_N); ++key) {
          ++pairs;
          if (allowedPair(i + nk - nq, key)) {
            ++allowed;
            const int64_t row = i - r * BLOCK_M, col = key - c * BLOCK_N;
            tileBits[static_cast<size_t>(row * rows.wordsPerRow + col / 64)] |= uint64_t{1} << (col % 64);
          }
        }
      if (allowed == 0)
        continue;
      entryOf[static_cast<size_t>(r * colTiles + c)] = static_cast<int64_t>(rows.colTiles.size());
      rows.colTiles.push_back(c);
      const bool isFull = allowed == pairs;
      rows.full.push_back(isFull ? 1 : 0);
      if (isFull) {
        rows.bitOffsets.push_back(-1);
      } else {
        rows.bitOffsets.push_back(static_cast<int64_t>(rows.bits.size()));
        rows.bits.insert(rows.bits.end(), tileBits.begin(), tileBits.end());
      }
    }
    rows.rowOffsets.push_back(static_cast<int64_t>(rows.colTiles.size()));
  }
  // The transpose: for kv tile c, its query tiles ascending, pointing at the same bits.
  columns.bits = rows.bits;
  for (int64_t c = 0; c < colTiles; ++c) {
    for (int64_t r = 0; r < rowTiles; ++r) {
      const int64_t e = entryOf[static_cast<size_t>(r * colTiles + c)];
      if (e < 0)
        continue;
      columns.colTiles.push_back(r);
      columns.full.push_back(rows.full[static_cast<size_t>(e)]);
      columns.bitOffsets.push_back(rows.bitOffsets[static_cast<size_t>(e)]);
    }
    columns.rowOffsets.push_back(static_cast<int64_t>(columns.colTiles.size()));
  }
}
#endif

/// Device copies of a HostTable.
struct DeviceTable {
  std::vector<void *> buffers;
  attnc_schedule_table view{};
  template <typename T> const T *upload(const std::vector<T> &host) {
    void *p = nullptr;
    const size_t bytes = std::max<size_t>(host.size() * sizeof(T), sizeof(T));
    CUDA_CHECK(cudaMalloc(&p, bytes));
    if (!host.empty())
      CUDA_CHECK(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    buffers.push_back(p);
    return static_cast<const T *>(p);
  }
  explicit DeviceTable(const HostTable &t) {
    view.row_offsets = upload(t.rowOffsets);
    view.col_tiles = upload(t.colTiles);
    view.full = upload(t.full);
    view.bit_offsets = upload(t.bitOffsets);
    view.bits = upload(t.bits);
    view.words_per_row = t.wordsPerRow;
  }
  ~DeviceTable() {
    for (void *p : buffers)
      cudaFree(p);
  }
};

//===----------------------------------------------------------------------===//
// Device cases and launching
//===----------------------------------------------------------------------===//

attnc_tensor_view makeView(void *data, int64_t s0, int64_t s1, int64_t s2, int64_t s3,
                           const int64_t (&strides)[4], attnc_dtype dtype, int rank = 4) {
  attnc_tensor_view t{};
  t.data = data;
  t.shape[0] = s0;
  t.shape[1] = s1;
  t.shape[2] = s2;
  t.shape[3] = s3;
  for (int i = 0; i < 4; ++i)
    t.strides[i] = strides[i];
  t.rank = rank;
  t.dtype = dtype;
  return t;
}

template <typename T> T *deviceAlloc(int64_t n) {
  void *p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T)));
  return static_cast<T *>(p);
}

/// The device tensors of one case: Q, O, dO, dQ [B, Nq, Hq, D] packed; K, V [B, Nk, Hkv, D] packed
/// or interleaved as [B, Nk, 2, Hkv, D]; dK, dV packed; LSE, delta [B, Hq, Nq]; dq_accum [B, Nq, Hq, D].
struct DeviceCase {
  int64_t batch, nq, nk;
  bool interleavedKv;
  int64_t qElems, kvElems; // elements of Q and of one of K, V
  uint16_t *q, *kv, *o, *dO, *dq, *dk, *dv;
  float *lse, *delta, *dqAccum = nullptr;
  attnc_backward_args args{};
  std::unique_ptr<DeviceTable> rowTable, columnTable;

  DeviceCase(int64_t batch, int64_t nq, int64_t nk, bool interleavedKv)
      : batch(batch), nq(nq), nk(nk), interleavedKv(interleavedKv) {
    const attnc_dtype dtype = IS_BF16 ? ATTNC_DTYPE_BF16 : ATTNC_DTYPE_FP16;
    qElems = batch * nq * QUERY_HEADS * HEAD_DIM;
    kvElems = batch * nk * KV_HEADS * HEAD_DIM;
    q = deviceAlloc<uint16_t>(qElems);
    o = deviceAlloc<uint16_t>(qElems);
    dO = deviceAlloc<uint16_t>(qElems);
    dq = deviceAlloc<uint16_t>(qElems);
    kv = deviceAlloc<uint16_t>(2 * kvElems);
    dk = deviceAlloc<uint16_t>(kvElems);
    dv = deviceAlloc<uint16_t>(kvElems);
    lse = deviceAlloc<float>(batch * QUERY_HEADS * nq);
    delta = deviceAlloc<float>(batch * QUERY_HEADS * nq);
    if (!kDeterministic)
      dqAccum = deviceAlloc<float>(qElems);
    const int64_t qStrides[4] = {nq * QUERY_HEADS * HEAD_DIM, QUERY_HEADS * HEAD_DIM, HEAD_DIM, 1};
    const int64_t kvPacked[4] = {nk * KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, HEAD_DIM, 1};
    const int64_t kvInterleaved[4] = {nk * 2 * KV_HEADS * HEAD_DIM, 2 * KV_HEADS * HEAD_DIM, HEAD_DIM, 1};
    args.q = makeView(q, batch, nq, QUERY_HEADS, HEAD_DIM, qStrides, dtype);
    args.o = makeView(o, batch, nq, QUERY_HEADS, HEAD_DIM, qStrides, dtype);
    args.d_o = makeView(dO, batch, nq, QUERY_HEADS, HEAD_DIM, qStrides, dtype);
    args.dq = makeView(dq, batch, nq, QUERY_HEADS, HEAD_DIM, qStrides, dtype);
    uint16_t *k = kv, *v = interleavedKv ? kv + KV_HEADS * HEAD_DIM : kv + kvElems;
    args.k = makeView(k, batch, nk, KV_HEADS, HEAD_DIM, interleavedKv ? kvInterleaved : kvPacked, dtype);
    args.v = makeView(v, batch, nk, KV_HEADS, HEAD_DIM, interleavedKv ? kvInterleaved : kvPacked, dtype);
    args.dk = makeView(dk, batch, nk, KV_HEADS, HEAD_DIM, kvPacked, dtype);
    args.dv = makeView(dv, batch, nk, KV_HEADS, HEAD_DIM, kvPacked, dtype);
    const int64_t rowStrides[4] = {QUERY_HEADS * nq, nq, 1, 0};
    args.lse = makeView(lse, batch, QUERY_HEADS, nq, 1, rowStrides, ATTNC_DTYPE_FP32, 3);
    args.delta = makeView(delta, batch, QUERY_HEADS, nq, 1, rowStrides, ATTNC_DTYPE_FP32, 3);
    if (dqAccum)
      args.dq_accum = makeView(dqAccum, batch, nq, QUERY_HEADS, HEAD_DIM, qStrides, ATTNC_DTYPE_FP32);
    args.batch = batch;
    args.nq = nq;
    args.nk = nk;
    args.num_threads = 1;
#if defined(ATTNC_REFERENCE_WINDOW_TABLE)
    HostTable rows, columns;
    buildTables(nq, nk, rows, columns);
    rowTable = std::make_unique<DeviceTable>(rows);
    columnTable = std::make_unique<DeviceTable>(columns);
    args.schedule = rowTable->view;
    args.columns = columnTable->view;
#endif
  }
  ~DeviceCase() {
    for (void *p : {static_cast<void *>(q), static_cast<void *>(o), static_cast<void *>(dO),
                    static_cast<void *>(dq), static_cast<void *>(kv), static_cast<void *>(dk),
                    static_cast<void *>(dv), static_cast<void *>(lse), static_cast<void *>(delta),
                    static_cast<void *>(dqAccum)})
      cudaFree(p);
  }
  /// Poisons the outputs, delta and dq_accum with NaN so that unwritten elements show.
  void poison() {
    CUDA_CHECK(cudaMemset(dq, 0xff, qElems * 2));
    CUDA_CHECK(cudaMemset(dk, 0xff, kvElems * 2));
    CUDA_CHECK(cudaMemset(dv, 0xff, kvElems * 2));
    CUDA_CHECK(cudaMemset(delta, 0xff, batch * QUERY_HEADS * nq * sizeof(float)));
    if (dqAccum)
      CUDA_CHECK(cudaMemset(dqAccum, 0xff, qElems * sizeof(float)));
  }
  dim3 queryGrid() const {
    return dim3(static_cast<unsigned>((nq + BLOCK_M - 1) / BLOCK_M), QUERY_HEADS,
                static_cast<unsigned>(batch));
  }
  void launchPreprocess(cudaStream_t stream = 0) {
    attnc_backward_preprocess_kernel<<<queryGrid(), kDqThreads, 0, stream>>>(args);
    CUDA_CHECK(cudaGetLastError());
  }
  void launchDkdv(cudaStream_t stream = 0) {
    const dim3 grid(static_cast<unsigned>((nk + DkdvCfg::kBlockM - 1) / DkdvCfg::kBlockM), KV_HEADS,
                    static_cast<unsigned>(batch));
    attnc_backward_dkdv_kernel<<<grid, kDkdvThreads, kDkdvSharedBytes, stream>>>(args);
    CUDA_CHECK(cudaGetLastError());
  }
  void launchDq(cudaStream_t stream = 0) {
#if ATTNC_TEST_DETERMINISTIC
    attnc_backward_dq_kernel<<<queryGrid(), kDqThreads, kDqSharedBytes, stream>>>(args);
#else
    attnc_backward_dq_convert_kernel<<<queryGrid(), kDqThreads, 0, stream>>>(args);
#endif
    CUDA_CHECK(cudaGetLastError());
  }
  /// The whole backward, in the order of kernel_abi.h.
  void launch(cudaStream_t stream = 0) {
    launchPreprocess(stream);
    launchDkdv(stream);
    launchDq(stream);
  }
};

template <typename T> std::vector<T> download(const T *device, int64_t n) {
  std::vector<T> host(static_cast<size_t>(n));
  CUDA_CHECK(cudaMemcpy(host.data(), device, static_cast<size_t>(n) * sizeof(T), cudaMemcpyDeviceToHost));
  return host;
}

template <typename T> void upload(T *device, const std::vector<T> &host) {
  CUDA_CHECK(cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
}

//===----------------------------------------------------------------------===//
// Checks
//===----------------------------------------------------------------------===//

int failures = 0;

/// Error of one gradient against float64: relative L2 of the kernel and of the naive implementation,
/// non-finite elements, and elements that must be exactly zero but are not.
struct GradError {
  double kernel = 0.0, naive = 0.0; // relative L2 errors (RMS errors when exactZero)
  bool exactZero = false;           // the float64 gradient is zero everywhere
  int64_t nonFinite = 0, zeroWrong = 0, zeroRows = 0;
  bool pass() const {
    const bool accurate = exactZero ? kernel <= kZeroGradientRms
                                    : kernel <= kErrorFactor * naive + kErrorSlack;
    return nonFinite == 0 && zeroWrong == 0 && accurate;
  }
};

/// Compares `device` (element bits, packed [B, N, H, D]) with the references; `zeroRow[b * n + i]`
/// marks rows whose gradient must be exactly zero.
GradError compareGrad(const std::vector<uint16_t> &device, const std::vector<double> &exact,
                      const std::vector<float> &naive, const std::vector<uint8_t> &zeroRow,
                      int64_t heads) {
  GradError err;
  double num = 0.0, numNaive = 0.0, den = 0.0;
  const int64_t rowElems = heads * HEAD_DIM;
  for (size_t e = 0; e < device.size(); ++e) {
    const float x = toFloat(device[e]);
    const bool mustBeZero = zeroRow[e / static_cast<size_t>(rowElems)] != 0;
    if (!std::isfinite(x)) {
      ++err.nonFinite;
      continue;
    }
    if (mustBeZero && (device[e] & 0x7fffu) != 0)
      ++err.zeroWrong;
    num += (x - exact[e]) * (x - exact[e]);
    numNaive += (naive[e] - exact[e]) * (naive[e] - exact[e]);
    den += exact[e] * exact[e];
  }
  for (uint8_t z : zeroRow)
    err.zeroRows += z;
  err.exactZero = den == 0.0;
  const double scale = err.exactZero ? static_cast<double>(std::max<size_t>(device.size(), 1)) : den;
  err.kernel = std::sqrt(num / scale);
  err.naive = std::sqrt(numNaive / scale);
  return err;
}

void printGrad(const char *what, const GradError &e) {
  if (e.exactZero)
    std::printf("   %s exactly 0: RMS err %.3e (<= %.0e) naive %.3e", what, e.kernel, kZeroGradientRms,
                e.naive);
  else
    std::printf("   %s err %.3e naive %.3e ratio %5.2f", what, e.kernel, e.naive,
                e.naive > 0 ? e.kernel / e.naive : 0.0);
  if (e.nonFinite || e.zeroWrong)
    std::printf(" (non-finite %lld, nonzero where zero %lld)", static_cast<long long>(e.nonFinite),
                static_cast<long long>(e.zeroWrong));
}

/// Uploads random Q, K, V, dO and the reference O (rounded) and LSE of a case; returns the reference.
Reference prepareCase(DeviceCase &c, uint64_t seed) {
  const int64_t kvBuffer = 2 * c.kvElems;
  const std::vector<uint16_t> q = randomElements(c.qElems, seed * 4 + 1);
  const std::vector<uint16_t> k = randomElements(c.kvElems, seed * 4 + 2);
  const std::vector<uint16_t> v = randomElements(c.kvElems, seed * 4 + 3);
  const std::vector<uint16_t> dO = randomElements(c.qElems, seed * 4 + 4);
  // K and V into the (packed or interleaved) kv buffer.
  std::vector<uint16_t> kv(static_cast<size_t>(kvBuffer));
  const int64_t rowElems = KV_HEADS * HEAD_DIM;
  for (int64_t row = 0; row < c.batch * c.nk; ++row)
    for (int64_t x = 0; x < rowElems; ++x) {
      const size_t src = static_cast<size_t>(row * rowElems + x);
      if (c.interleavedKv) {
        kv[static_cast<size_t>(row * 2 * rowElems + x)] = k[src];
        kv[static_cast<size_t>(row * 2 * rowElems + rowElems + x)] = v[src];
      } else {
        kv[src] = k[src];
        kv[static_cast<size_t>(c.kvElems) + src] = v[src];
      }
    }
  upload(c.q, q);
  upload(c.kv, kv);
  upload(c.dO, dO);
  const HostTensor hq(q, c.nq, QUERY_HEADS), hk(k, c.nk, KV_HEADS), hv(v, c.nk, KV_HEADS),
      hdo(dO, c.nq, QUERY_HEADS);
  Reference ref = computeReference(hq, hk, hv, hdo, c.batch, c.nq, c.nk);
  std::vector<uint16_t> o(ref.o.size());
  for (size_t e = 0; e < o.size(); ++e)
    o[e] = fromFloat(static_cast<float>(ref.o[e]));
  std::vector<float> lse(ref.lse.size());
  for (size_t e = 0; e < lse.size(); ++e)
    lse[e] = static_cast<float>(ref.lse[e]);
  upload(c.o, o);
  upload(c.lse, lse);
  return ref;
}

void runCase(int64_t batch, int64_t nq, int64_t nk, bool interleavedKv, uint64_t seed) {
  DeviceCase c(batch, nq, nk, interleavedKv);
  const Reference ref = prepareCase(c, seed);
  c.poison();
  c.launch();
  CUDA_CHECK(cudaDeviceSynchronize());
  // Rows whose gradient is structurally zero: masked query rows (dQ, per head) and unseen keys.
  std::vector<uint8_t> zeroQ(static_cast<size_t>(batch * nq)), zeroK(static_cast<size_t>(batch * nk));
  for (size_t i = 0; i < zeroQ.size(); ++i)
    zeroQ[i] = ref.maskedRow[i];
  for (size_t i = 0; i < zeroK.size(); ++i)
    zeroK[i] = ref.unseenKey[i];
  // compareGrad counts rows of `heads * HEAD_DIM` elements.
  const GradError eq = compareGrad(download(c.dq, c.qElems), ref.dq, ref.naiveDq, zeroQ, QUERY_HEADS);
  const GradError ek = compareGrad(download(c.dk, c.kvElems), ref.dk, ref.naiveDk, zeroK, KV_HEADS);
  const GradError ev = compareGrad(download(c.dv, c.kvElems), ref.dv, ref.naiveDv, zeroK, KV_HEADS);
  const bool pass = eq.pass() && ek.pass() && ev.pass();
  char name[160];
#if defined(ATTNC_REFERENCE_WINDOW_TABLE)
  const char *maskName = kMaskNames[tableMask];
#else
  const char *maskName = kMaskName;
#endif
  std::snprintf(name, sizeof name, "%s B%lld Nq %lld Nk %lld%s", maskName,
                static_cast<long long>(batch), static_cast<long long>(nq),
                static_cast<long long>(nk), interleavedKv ? " (K,V interleaved)" : "");
  std::printf("%-4s %-52s masked rows %lld, unseen keys %lld\n", pass ? "PASS" : "FAIL", name,
              static_cast<long long>(eq.zeroRows), static_cast<long long>(ek.zeroRows));
  printGrad("dQ", eq);
  printGrad("| dK", ek);
  printGrad("| dV", ev);
  std::printf("\n");
  if (!pass)
    ++failures;
}

/// Runs the backward `runs` times on one case; all dQ, dK, dV must be bitwise equal to the first
/// run's in deterministic mode (atomic mode: reported only).
void runRepeatability(int64_t batch, int64_t nq, int64_t nk, int runs) {
  DeviceCase c(batch, nq, nk, false);
  prepareCase(c, 1234);
  std::vector<uint16_t> first[3];
  int64_t differing = 0;
  for (int run = 0; run < runs; ++run) {
    c.poison();
    c.launch();
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<uint16_t> now[3] = {download(c.dq, c.qElems), download(c.dk, c.kvElems),
                                    download(c.dv, c.kvElems)};
    for (int t = 0; t < 3; ++t) {
      if (run == 0)
        first[t] = now[t];
      else if (std::memcmp(first[t].data(), now[t].data(), now[t].size() * 2) != 0)
        ++differing;
    }
  }
  const bool pass = !kDeterministic || differing == 0;
  std::printf("%-4s %s: %d runs of B%lld Nq %lld Nk %lld, %lld (run, gradient) pairs differ from "
              "run 0\n",
              kDeterministic ? (pass ? "PASS" : "FAIL") : "INFO",
              kDeterministic ? "deterministic dQ bitwise repeatable" : "atomic dQ repeatability",
              runs, static_cast<long long>(batch), static_cast<long long>(nq),
              static_cast<long long>(nk), static_cast<long long>(differing));
  if (!pass)
    ++failures;
}

//===----------------------------------------------------------------------===//
// Timing
//===----------------------------------------------------------------------===//

/// Fills n elements with approximately normal random values on the device.
__global__ void fillRandom(uint16_t *data, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    uint64_t h = static_cast<uint64_t>(i) + seed * 0x9e3779b97f4a7c15ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    float sum = 0.0f;
    for (int part = 0; part < 4; ++part)
      sum += static_cast<float>((h >> (16 * part)) & 0xffff) / 32768.0f - 1.0f;
    const float x = sum * 0.8660254f;
    data[i] = IS_BF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(x)) : __half_as_ushort(__float2half_rn(x));
  }
}

/// A plausible LSE for unit-normal inputs: log(keys seen) + 1/2 (row i of a [B, H, Nq] tensor).
__global__ void fillLse(float *lse, int64_t rows, int64_t nq, int64_t nk) {
  for (int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; r < rows;
       r += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = r % nq, p = i + nk - nq;
    const int64_t seen = kCausalBand ? (p + 1 < nk ? p + 1 : nk) : nk;
    lse[r] = seen > 0 ? logf(static_cast<float>(seen)) + 0.5f : -INFINITY;
  }
}

/// Allowed (query, key) pairs of one (batch, head).
int64_t allowedPairs(int64_t nq, int64_t nk) {
  int64_t pairs = 0;
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t key = 0; key < nk; ++key)
      pairs += allowedPair(i + nk - nq, key);
  return pairs;
}

float median(std::vector<float> ms) {
  std::sort(ms.begin(), ms.end());
  return 0.5f * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
}

void bench(int64_t batch, int64_t n) {
  DeviceCase c(batch, n, n, false);
  fillRandom<<<1024, 256>>>(c.q, c.qElems, 11);
  fillRandom<<<1024, 256>>>(c.kv, 2 * c.kvElems, 12);
  fillRandom<<<1024, 256>>>(c.o, c.qElems, 13);
  fillRandom<<<1024, 256>>>(c.dO, c.qElems, 14);
  fillLse<<<1024, 256>>>(c.lse, batch * QUERY_HEADS * n, n, n);
  CUDA_CHECK(cudaGetLastError());
  cudaEvent_t events[4];
  for (cudaEvent_t &e : events)
    CUDA_CHECK(cudaEventCreate(&e));
  for (int i = 0; i < kWarmups; ++i)
    c.launch();
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> total, pre, dkdv, dq;
  for (int i = 0; i < kTimedRuns; ++i) {
    CUDA_CHECK(cudaEventRecord(events[0]));
    c.launchPreprocess();
    CUDA_CHECK(cudaEventRecord(events[1]));
    c.launchDkdv();
    CUDA_CHECK(cudaEventRecord(events[2]));
    c.launchDq();
    CUDA_CHECK(cudaEventRecord(events[3]));
    CUDA_CHECK(cudaEventSynchronize(events[3]));
    float t[3], all;
    for (int k = 0; k < 3; ++k)
      CUDA_CHECK(cudaEventElapsedTime(&t[k], events[k], events[k + 1]));
    CUDA_CHECK(cudaEventElapsedTime(&all, events[0], events[3]));
    pre.push_back(t[0]);
    dkdv.push_back(t[1]);
    dq.push_back(t[2]);
    total.push_back(all);
  }
  const double ms = median(total);
  // Backward useful FLOPs: 2.5x the forward's 4 B Hq D pairs (FlashAttention's convention).
  const double flops = 2.5 * 4.0 * batch * QUERY_HEADS * HEAD_DIM * static_cast<double>(allowedPairs(n, n));
#if defined(ATTNC_REFERENCE_WINDOW_TABLE)
  const char *maskName = kMaskNames[tableMask];
#else
  const char *maskName = kMaskName;
#endif
  std::printf("BENCH backward %s %s %s B%lld Hq%d/Hkv%d N%lld D%d tile %dx%d (dK/dV %dx%d): median %.3f ms "
              "(min %.3f, max %.3f) = %.1f TFLOP/s [preprocess %.3f, dkdv %.3f, %s %.3f ms]\n",
              maskName, IS_BF16 ? "bf16" : "fp16", kDeterministic ? "deterministic" : "atomic",
              static_cast<long long>(batch), QUERY_HEADS, KV_HEADS, static_cast<long long>(n),
              HEAD_DIM, BLOCK_M, BLOCK_N, DkdvCfg::kBlockN, DkdvCfg::kBlockM, ms,
              *std::min_element(total.begin(), total.end()),
              *std::max_element(total.begin(), total.end()), flops / (ms * 1e-3) / 1e12,
              median(pre), median(dkdv), kDeterministic ? "dq" : "convert", median(dq));
  for (cudaEvent_t &e : events)
    CUDA_CHECK(cudaEventDestroy(e));
}

/// Prints a kernel's registers, local memory and occupancy.
template <typename Kernel>
void describeKernel(const char *name, Kernel kernel, unsigned threads, unsigned sharedBytes) {
  if (sharedBytes > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, sharedBytes));
  cudaFuncAttributes attr{};
  CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  int blocksPerSm = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocksPerSm, kernel, threads, sharedBytes));
  std::printf("kernel %-34s %3u threads, %3d registers, %zu bytes local (spills), %6u bytes "
              "dynamic shared, %d blocks/SM = %d warps/SM\n",
              name, threads, attr.numRegs, attr.localSizeBytes, sharedBytes, blocksPerSm,
              blocksPerSm * static_cast<int>(threads) / kWarpSize);
}

} // namespace

int main(int argc, char **argv) {
  bool quick = false, sanitize = false, doBench = false, doTests = true;
  int repeat = 50;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick")
      quick = true;
    else if (a == "--sanitize")
      sanitize = true;
    else if (a == "--bench")
      doBench = true;
    else if (a == "--bench-only")
      doBench = true, doTests = false;
    else if (a == "--repeat" && i + 1 < argc)
      repeat = std::atoi(argv[++i]);
  }
  // The band column schedule against brute force, the float64 reference against central
  // differences: cheap, and need no GPU.
  failures += selfCheckBandColumns();
#if defined(ATTNC_REFERENCE_WINDOW_TABLE)
  for (tableMask = 0; tableMask < 2; ++tableMask)
    failures += selfCheckReference();
  tableMask = 0;
#else
  failures += selfCheckReference();
#endif
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIP: no CUDA GPU present (reference self-check: %d failure(s))\n", failures);
    return failures == 0 ? kSkipExitCode : 1;
  }
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
#if defined(ATTNC_REFERENCE_WINDOW_TABLE)
  const char *config = "table";
#else
  const char *config = ATTNC_TEST_DENSE ? "band (dense)" : "band (causal)";
#endif
  std::printf("%s, %d SMs, sm_%d%d | backward %s, %s, D %d, Hq %d, Hkv %d, tile %dx%d, dK/dV tile "
              "%dx%d, dQ %s\n",
              prop.name, prop.multiProcessorCount, prop.major, prop.minor, config,
              IS_BF16 ? "bf16" : "fp16", HEAD_DIM, QUERY_HEADS, KV_HEADS, BLOCK_M, BLOCK_N,
              DkdvCfg::kBlockN, DkdvCfg::kBlockM, kDeterministic ? "deterministic" : "atomic");
  describeKernel("attnc_backward_preprocess_kernel", attnc_backward_preprocess_kernel, kDqThreads, 0);
  describeKernel("attnc_backward_dkdv_kernel", attnc_backward_dkdv_kernel, kDkdvThreads,
                 kDkdvSharedBytes);
#if ATTNC_TEST_DETERMINISTIC
  describeKernel("attnc_backward_dq_kernel", attnc_backward_dq_kernel, kDqThreads, kDqSharedBytes);
#else
  describeKernel("attnc_backward_dq_convert_kernel", attnc_backward_dq_convert_kernel, kDqThreads, 0);
#endif
  if (doTests) {
    struct Shape {
      int64_t batch, nq, nk;
      bool interleaved;
    };
    std::vector<Shape> shapes = {{2, 1, 1, false},     {1, 17, 17, false},  {2, 127, 127, false},
                                 {1, 129, 129, false}, {1, 17, 1, false},   {1, 129, 300, false},
                                 {1, 300, 129, false}, {1, 129, 129, true}};
    if (sanitize) // small and few: compute-sanitizer runs them slowly
      shapes = {{1, 129, 300, false}, {1, 300, 129, false}, {2, 127, 127, true}};
    else if (!quick) {
      shapes.push_back({1, 1000, 1000, false});
      shapes.push_back({1, 1000, 127, false});
      shapes.push_back({1, 127, 1000, false});
      shapes.push_back({2, 1000, 1000, true});
    }
    uint64_t seed = 1;
#if defined(ATTNC_REFERENCE_WINDOW_TABLE)
    for (tableMask = 0; tableMask < 2; ++tableMask)
#endif
      for (const Shape &s : shapes)
        runCase(s.batch, s.nq, s.nk, s.interleaved, seed++);
#if defined(ATTNC_REFERENCE_WINDOW_TABLE)
    tableMask = 0;
#endif
    if (quick || sanitize)
      runRepeatability(1, 129, 300, std::min(repeat, 3));
    else
      runRepeatability(2, 1000, 1000, repeat);
  }
  if (doBench)
    bench(2, 8192);
  std::printf("%s: %d failure(s)\n", failures == 0 ? "ALL PASSED" : "FAILED", failures);
  return failures == 0 ? 0 : 1;
}
