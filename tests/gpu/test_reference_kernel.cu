// GPU test of the hand-written reference kernel (reference_kernel.cu): numerics
// against a float64 CPU reference, with ARCHITECTURE.md's error rule (relative
// L2 error <= 2x that of a naive bf16/fp16 implementation on the same inputs),
// exact O = 0 / LSE = -inf on fully masked rows, every output written, one
// case whose Q has more than 2^31 elements, and the timing of the PEERS.md case.
//
// Build one binary per configuration (nvcc only, no other dependency):
//   nvcc -std=c++17 -O3 -arch=sm_90 -lineinfo -Xptxas -v -DATTNC_REFERENCE_CAUSAL_GQA \
//        -Iruntime/device -Iruntime/include/attnc/runtime tests/gpu/test_reference_kernel.cu
// Flags: --quick (small cases only), --no-bench, --bench-only, --no-huge.
// Exit status 0 iff every check passed; 77 (skip) when no GPU is present.

#include "reference_kernel.cu"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

/// Dynamic shared memory and threads of one thread block of the kernel under test.
constexpr unsigned ATTNC_SHARED_BYTES = kSharedBytes<Cfg>;
constexpr unsigned ATTNC_NUM_THREADS = Cfg::kNumThreads;

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

//===----------------------------------------------------------------------===//
// The configuration under test, as the host sees it
//===----------------------------------------------------------------------===//

#if defined(ATTNC_REFERENCE_CAUSAL_GQA)
const char *const kConfigName = "causal GQA bf16";
/// The mask: causal == window{left inf, right 0}.
bool allowedPair(int64_t p, int64_t k) { return p - k >= 0; }
#else
const char *const kConfigName = "window256|global0 table fp16";
constexpr int64_t kWindow = 256;
/// The mask: window{left 256, right 256} | global{tokens [0]}.
bool allowedPair(int64_t p, int64_t k) {
  return (p - k <= kWindow && k - p <= kWindow) || p == 0 || k == 0;
}
#endif
const double kSoftmaxScale = 1.0 / std::sqrt(static_cast<double>(HEAD_DIM));

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
// Device inputs: hashed, approximately normal random values
//===----------------------------------------------------------------------===//

__device__ uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

/// Fills n elements with the sum of 4 uniforms in [-1, 1) scaled to unit variance, rounded.
__global__ void fillRandom(uint16_t *data, int64_t n, uint64_t seed, bool bf16) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    uint64_t h = mix64(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i));
    float sum = 0.0f;
    for (int part = 0; part < 4; ++part)
      sum += static_cast<float>((h >> (16 * part)) & 0xffff) / 32768.0f - 1.0f;
    float x = sum * 0.8660254f; // var(U[-1,1)) = 1/3: 4/3 * 0.75 = 1
    data[i] = bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(x)) : __half_as_ushort(__float2half_rn(x));
  }
}

#if defined(ATTNC_REFERENCE_CAUSAL_GQA)
/// Counts elements other than +-0 among elements [begin, end) of a bf16/fp16 buffer.
__global__ void countNonZero(const uint16_t *data, int64_t begin, int64_t end,
                             unsigned long long *count) {
  unsigned long long local = 0;
  for (int64_t i = begin + blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < end;
       i += int64_t{gridDim.x} * blockDim.x)
    local += (data[i] & 0x7fffu) != 0; // +0 and -0 count as zero
  atomicAdd(count, local);
}
#endif

void fillDevice(uint16_t *data, int64_t n, uint64_t seed) {
  fillRandom<<<1024, 256>>>(data, n, seed, IS_BF16);
  CUDA_CHECK(cudaGetLastError());
}

//===----------------------------------------------------------------------===//
// Host references
//===----------------------------------------------------------------------===//

/// A [B, N, H, D] host tensor view over element bits.
struct HostTensor {
  const uint16_t *data;
  int64_t strides[3]; // batch, sequence, head (elements)
  float at(int64_t b, int64_t n, int64_t h, int64_t d) const {
    return toFloat(data[b * strides[0] + n * strides[1] + h * strides[2] + d]);
  }
};

/// Runs body(item) for item in [0, items) on all hardware threads.
template <typename Body> void parallelFor(int64_t items, const Body &body) {
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    for (int64_t i = next++; i < items; i = next++)
      body(i);
  };
  std::vector<std::thread> pool;
  unsigned n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned t = 1; t < n; ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &t : pool)
    t.join();
}

/// Reference outputs of rows [row0, row0 + rows) for every (b, h): float64 and naive low precision.
struct Reference {
  int64_t rows = 0;
  std::vector<double> o;       // [B, rows, Hq, D]
  std::vector<double> lse;     // [B, Hq, rows]
  std::vector<float> naive;    // [B, rows, Hq, D]
  std::vector<uint8_t> masked; // [B, rows, Hq]: the row attends nothing
};

Reference computeReference(const HostTensor &q, const HostTensor &k, const HostTensor &v,
                           int64_t batch, int64_t nq, int64_t nk, int64_t row0, int64_t rows) {
  Reference ref;
  ref.rows = rows;
  ref.o.assign(static_cast<size_t>(batch * rows * QUERY_HEADS * HEAD_DIM), 0.0);
  ref.naive.assign(ref.o.size(), 0.0f);
  ref.lse.assign(static_cast<size_t>(batch * QUERY_HEADS * rows), 0.0);
  ref.masked.assign(static_cast<size_t>(batch * rows * QUERY_HEADS), 0);
  const int64_t group = QUERY_HEADS / KV_HEADS;
  parallelFor(batch * QUERY_HEADS * rows, [&](int64_t item) {
    const int64_t r = item % rows, h = (item / rows) % QUERY_HEADS, b = item / (rows * QUERY_HEADS);
    const int64_t i = row0 + r, p = i + nk - nq, kvh = h / group;
    std::vector<int64_t> keys;
    for (int64_t key = 0; key < nk; ++key)
      if (allowedPair(p, key))
        keys.push_back(key);
    const size_t outBase = static_cast<size_t>(((b * rows + r) * QUERY_HEADS + h) * HEAD_DIM);
    const size_t lseIndex = static_cast<size_t>((b * QUERY_HEADS + h) * rows + r);
    if (keys.empty()) {
      ref.masked[static_cast<size_t>((b * rows + r) * QUERY_HEADS + h)] = 1;
      ref.lse[lseIndex] = -INFINITY;
      return;
    }
    std::vector<double> qRow(HEAD_DIM);
    for (int d = 0; d < HEAD_DIM; ++d)
      qRow[d] = q.at(b, i, h, d);
    // float64
    std::vector<double> s(keys.size());
    double mx = -INFINITY;
    for (size_t j = 0; j < keys.size(); ++j) {
      double dot = 0.0;
      for (int d = 0; d < HEAD_DIM; ++d)
        dot += qRow[d] * k.at(b, keys[j], kvh, d);
      s[j] = dot * kSoftmaxScale;
      mx = std::max(mx, s[j]);
    }
    double l = 0.0;
    std::vector<double> acc(HEAD_DIM, 0.0);
    for (size_t j = 0; j < keys.size(); ++j) {
      const double w = std::exp(s[j] - mx);
      l += w;
      for (int d = 0; d < HEAD_DIM; ++d)
        acc[d] += w * v.at(b, keys[j], kvh, d);
    }
    for (int d = 0; d < HEAD_DIM; ++d)
      ref.o[outBase + d] = acc[d] / l;
    ref.lse[lseIndex] = mx + std::log(l);
    // Naive low precision, as a framework computes it: S = round(Q K^T), round(S * scale),
    // P = round(softmax(S) in f32), O = round(P V) with f32 accumulation.
    std::vector<float> sf(keys.size());
    float mf = -INFINITY;
    for (size_t j = 0; j < keys.size(); ++j) {
      float dot = 0.0f;
      for (int d = 0; d < HEAD_DIM; ++d)
        dot += static_cast<float>(qRow[d]) * k.at(b, keys[j], kvh, d);
      sf[j] = roundToElement(roundToElement(dot) * static_cast<float>(kSoftmaxScale));
      mf = std::max(mf, sf[j]);
    }
    float lf = 0.0f;
    for (size_t j = 0; j < keys.size(); ++j) {
      sf[j] = std::exp(sf[j] - mf);
      lf += sf[j];
    }
    std::vector<float> accf(HEAD_DIM, 0.0f);
    for (size_t j = 0; j < keys.size(); ++j) {
      const float pj = roundToElement(sf[j] / lf);
      for (int d = 0; d < HEAD_DIM; ++d)
        accf[d] += pj * v.at(b, keys[j], kvh, d);
    }
    for (int d = 0; d < HEAD_DIM; ++d)
      ref.naive[outBase + d] = roundToElement(accf[d]);
  });
  return ref;
}

//===----------------------------------------------------------------------===//
// The launch-time schedule table (brute force over tiles; the runtime uses mask::BlockSchedule)
//===----------------------------------------------------------------------===//

struct HostTable {
  std::vector<int64_t> rowOffsets{0}, colTiles, bitOffsets;
  std::vector<uint8_t> full;
  std::vector<uint64_t> bits;
  int64_t wordsPerRow = (BLOCK_N + 63) / 64;
};

#if defined(ATTNC_REFERENCE_WINDOW_TABLE)
HostTable buildTable(int64_t nq, int64_t nk) {
  HostTable t;
  const int64_t rowTiles = (nq + BLOCK_M - 1) / BLOCK_M, colTiles = (nk + BLOCK_N - 1) / BLOCK_N;
  std::vector<uint64_t> tileBits(static_cast<size_t>(BLOCK_M * t.wordsPerRow));
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
            tileBits[static_cast<size_t>(row * t.wordsPerRow + col / 64)] |= uint64_t{1} << (col % 64);
          }
        }
      if (allowed == 0)
        continue;
      t.colTiles.push_back(c);
      const bool isFull = allowed == pairs;
      t.full.push_back(isFull ? 1 : 0);
      if (isFull) {
        t.bitOffsets.push_back(-1);
      } else {
        t.bitOffsets.push_back(static_cast<int64_t>(t.bits.size()));
        t.bits.insert(t.bits.end(), tileBits.begin(), tileBits.end());
      }
    }
    t.rowOffsets.push_back(static_cast<int64_t>(t.colTiles.size()));
  }
  return t;
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
// Launching
//===----------------------------------------------------------------------===//

attnc_tensor_view makeView(void *data, int64_t s0, int64_t s1, int64_t s2, int64_t s3,
                           const int64_t (&strides)[4], attnc_dtype dtype) {
  attnc_tensor_view t{};
  t.data = data;
  t.shape[0] = s0;
  t.shape[1] = s1;
  t.shape[2] = s2;
  t.shape[3] = s3;
  for (int i = 0; i < 4; ++i)
    t.strides[i] = strides[i];
  t.rank = 4;
  t.dtype = dtype;
  return t;
}

/// The device tensors of one case: Q, O [B, Nq, Hq, D] packed; K, V [B, Nk, Hkv, D], optionally interleaved as [B, Nk, 2, Hkv, D].
struct DeviceCase {
  int64_t batch, nq, nk;
  bool interleavedKv;
  uint16_t *q = nullptr, *kv = nullptr, *o = nullptr;
  float *lse = nullptr;
  int64_t qElems, kvElems;
  attnc_forward_args args{};
  std::unique_ptr<DeviceTable> table;

  DeviceCase(int64_t batch, int64_t nq, int64_t nk, bool interleavedKv, uint64_t seed)
      : batch(batch), nq(nq), nk(nk), interleavedKv(interleavedKv) {
    const attnc_dtype dtype = IS_BF16 ? ATTNC_DTYPE_BF16 : ATTNC_DTYPE_FP16;
    qElems = batch * nq * QUERY_HEADS * HEAD_DIM;
    kvElems = 2 * batch * nk * KV_HEADS * HEAD_DIM; // K then V, or interleaved
    CUDA_CHECK(cudaMalloc(&q, qElems * 2));
    CUDA_CHECK(cudaMalloc(&o, qElems * 2));
    CUDA_CHECK(cudaMalloc(&kv, kvElems * 2));
    CUDA_CHECK(cudaMalloc(&lse, batch * QUERY_HEADS * nq * sizeof(float)));
    fillDevice(q, qElems, seed * 3 + 1);
    fillDevice(kv, kvElems, seed * 3 + 2);
    const int64_t qStrides[4] = {nq * QUERY_HEADS * HEAD_DIM, QUERY_HEADS * HEAD_DIM, HEAD_DIM, 1};
    args.q = makeView(q, batch, nq, QUERY_HEADS, HEAD_DIM, qStrides, dtype);
    args.o = makeView(o, batch, nq, QUERY_HEADS, HEAD_DIM, qStrides, dtype);
    uint16_t *k = kv, *v;
    int64_t kvStrides[4];
    if (interleavedKv) {
      v = kv + KV_HEADS * HEAD_DIM;
      const int64_t s[4] = {nk * 2 * KV_HEADS * HEAD_DIM, 2 * KV_HEADS * HEAD_DIM, HEAD_DIM, 1};
      std::copy(s, s + 4, kvStrides);
    } else {
      v = kv + kvElems / 2;
      const int64_t s[4] = {nk * KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, HEAD_DIM, 1};
      std::copy(s, s + 4, kvStrides);
    }
    args.k = makeView(k, batch, nk, KV_HEADS, HEAD_DIM, kvStrides, dtype);
    args.v = makeView(v, batch, nk, KV_HEADS, HEAD_DIM, kvStrides, dtype);
    const int64_t lseStrides[4] = {QUERY_HEADS * nq, nq, 1, 0};
    args.lse = makeView(lse, batch, QUERY_HEADS, nq, 1, lseStrides, ATTNC_DTYPE_FP32);
    args.lse.rank = 3;
    args.batch = batch;
    args.nq = nq;
    args.nk = nk;
    args.num_threads = 1;
#if defined(ATTNC_REFERENCE_WINDOW_TABLE)
    table = std::make_unique<DeviceTable>(buildTable(nq, nk));
    args.schedule = table->view;
#endif
  }
  ~DeviceCase() {
    cudaFree(q);
    cudaFree(o);
    cudaFree(kv);
    cudaFree(lse);
  }
  /// Poisons O and LSE with NaN so that unwritten elements show.
  void poison() {
    CUDA_CHECK(cudaMemset(o, 0xff, qElems * 2));
    CUDA_CHECK(cudaMemset(lse, 0xff, batch * QUERY_HEADS * nq * sizeof(float)));
  }
  void launch(cudaStream_t stream = 0) {
    const dim3 grid(static_cast<unsigned>((nq + BLOCK_M - 1) / BLOCK_M), QUERY_HEADS,
                    static_cast<unsigned>(batch));
    attnc_forward_kernel<<<grid, ATTNC_NUM_THREADS, ATTNC_SHARED_BYTES, stream>>>(args);
    CUDA_CHECK(cudaGetLastError());
  }
  /// Host view of K or V over a host copy of the kv buffer.
  HostTensor hostKv(const std::vector<uint16_t> &host, bool values) const {
    const attnc_tensor_view &t = values ? args.v : args.k;
    const int64_t offset = static_cast<const uint16_t *>(t.data) - kv;
    return HostTensor{host.data() + offset, {t.strides[0], t.strides[1], t.strides[2]}};
  }
};

double relativeL2(const std::vector<double> &num, const std::vector<double> &den) {
  double a = 0.0, b = 0.0;
  for (size_t i = 0; i < num.size(); ++i) {
    a += num[i] * num[i];
    b += den[i] * den[i];
  }
  return b == 0.0 ? std::sqrt(a) : std::sqrt(a / b);
}

int failures = 0;

/// Compares rows [row0, row0 + ref.rows) of the device outputs with the reference; returns pass.
bool compareRows(const char *name, const DeviceCase &c, const Reference &ref, int64_t row0) {
  const int64_t rows = ref.rows, rowElems = QUERY_HEADS * HEAD_DIM;
  std::vector<uint16_t> o(static_cast<size_t>(c.batch * rows * rowElems));
  std::vector<float> lse(static_cast<size_t>(c.batch * QUERY_HEADS * rows));
  for (int64_t b = 0; b < c.batch; ++b) {
    CUDA_CHECK(cudaMemcpy(o.data() + b * rows * rowElems, c.o + (b * c.nq + row0) * rowElems,
                          rows * rowElems * 2, cudaMemcpyDeviceToHost));
    for (int64_t h = 0; h < QUERY_HEADS; ++h)
      CUDA_CHECK(cudaMemcpy(lse.data() + (b * QUERY_HEADS + h) * rows,
                            c.lse + (b * QUERY_HEADS + h) * c.nq + row0, rows * sizeof(float),
                            cudaMemcpyDeviceToHost));
  }
  std::vector<double> diffKernel, diffNaive, refValid;
  int64_t nonFinite = 0, maskedWrong = 0, maskedRows = 0;
  double lseError = 0.0;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t h = 0; h < QUERY_HEADS; ++h) {
        const size_t base = static_cast<size_t>(((b * rows + r) * QUERY_HEADS + h) * HEAD_DIM);
        const size_t li = static_cast<size_t>((b * QUERY_HEADS + h) * rows + r);
        const bool masked = ref.masked[static_cast<size_t>((b * rows + r) * QUERY_HEADS + h)];
        maskedRows += masked;
        if (masked) {
          bool ok = lse[li] == -INFINITY;
          for (int d = 0; d < HEAD_DIM; ++d)
            ok = ok && (o[base + d] & 0x7fffu) == 0;
          maskedWrong += !ok;
          continue;
        }
        if (!std::isfinite(lse[li]))
          ++nonFinite;
        else
          lseError = std::max(lseError, std::fabs(lse[li] - ref.lse[li]));
        for (int d = 0; d < HEAD_DIM; ++d) {
          const float x = toFloat(o[base + d]);
          if (!std::isfinite(x)) {
            ++nonFinite;
            continue;
          }
          diffKernel.push_back(x - ref.o[base + d]);
          diffNaive.push_back(ref.naive[base + d] - ref.o[base + d]);
          refValid.push_back(ref.o[base + d]);
        }
      }
  const double errKernel = relativeL2(diffKernel, refValid);
  const double errNaive = relativeL2(diffNaive, refValid);
  constexpr double kLseTolerance = 1e-3;
  const bool pass = nonFinite == 0 && maskedWrong == 0 && errKernel <= 2.0 * errNaive + 1e-7 &&
                    lseError <= kLseTolerance;
  std::printf("%-4s %-44s err %.3e naive %.3e ratio %5.2f  lse %.1e  masked rows %lld (wrong %lld)"
              "  non-finite %lld\n",
              pass ? "PASS" : "FAIL", name, errKernel, errNaive,
              errNaive > 0 ? errKernel / errNaive : 0.0, lseError,
              static_cast<long long>(maskedRows), static_cast<long long>(maskedWrong),
              static_cast<long long>(nonFinite));
  if (!pass)
    ++failures;
  return pass;
}

void runCase(int64_t batch, int64_t nq, int64_t nk, bool interleavedKv, uint64_t seed) {
  DeviceCase c(batch, nq, nk, interleavedKv, seed);
  c.poison();
  c.launch();
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint16_t> q(static_cast<size_t>(c.qElems)), kv(static_cast<size_t>(c.kvElems));
  CUDA_CHECK(cudaMemcpy(q.data(), c.q, c.qElems * 2, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(kv.data(), c.kv, c.kvElems * 2, cudaMemcpyDeviceToHost));
  const HostTensor hq{q.data(), {nq * QUERY_HEADS * HEAD_DIM, QUERY_HEADS * HEAD_DIM, HEAD_DIM}};
  const Reference ref = computeReference(hq, c.hostKv(kv, false), c.hostKv(kv, true), batch, nq, nk, 0, nq);
  char name[128];
  std::snprintf(name, sizeof name, "B%lld Nq %lld Nk %lld%s", static_cast<long long>(batch),
                static_cast<long long>(nq), static_cast<long long>(nk),
                interleavedKv ? " (K,V interleaved)" : "");
  compareRows(name, c, ref, 0);
}

#if defined(ATTNC_REFERENCE_CAUSAL_GQA)
/// Q with more than 2^31 elements: causal with Nq >> Nk, so all rows but the last Nk are fully masked.
void runHugeCase() {
  const int64_t nk = 256, nq = (int64_t{1} << 31) / (QUERY_HEADS * HEAD_DIM) + 2 * BLOCK_M;
  DeviceCase c(1, nq, nk, false, 99);
  std::printf("     huge case: Q has %lld elements (2^31 = %lld)\n", static_cast<long long>(c.qElems),
              static_cast<long long>(int64_t{1} << 31));
  c.poison();
  c.launch();
  CUDA_CHECK(cudaDeviceSynchronize());
  // The tail rows (the last 2 * Nk, half of them fully masked) against the reference.
  const int64_t rows = 2 * nk, row0 = nq - rows, rowElems = QUERY_HEADS * HEAD_DIM;
  std::vector<uint16_t> q(static_cast<size_t>(rows * rowElems)), kv(static_cast<size_t>(c.kvElems));
  CUDA_CHECK(cudaMemcpy(q.data(), c.q + row0 * rowElems, q.size() * 2, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(kv.data(), c.kv, c.kvElems * 2, cudaMemcpyDeviceToHost));
  // A view whose row `i` (absolute) lands in the copied slice.
  const HostTensor hq{q.data() - row0 * rowElems, {0, rowElems, HEAD_DIM}};
  const Reference ref = computeReference(hq, c.hostKv(kv, false), c.hostKv(kv, true), 1, nq, nk, row0, rows);
  compareRows("huge: Q > 2^31 elements, tail rows", c, ref, row0);
  // Every other row is fully masked: O exactly 0 (no NaN poison left), LSE -inf.
  unsigned long long *count = nullptr;
  CUDA_CHECK(cudaMalloc(&count, sizeof *count));
  CUDA_CHECK(cudaMemset(count, 0, sizeof *count));
  countNonZero<<<4096, 256>>>(c.o, 0, row0 * rowElems, count);
  CUDA_CHECK(cudaGetLastError());
  unsigned long long nonZero = 0;
  CUDA_CHECK(cudaMemcpy(&nonZero, count, sizeof nonZero, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(count));
  std::vector<float> lse(static_cast<size_t>(QUERY_HEADS * nq));
  CUDA_CHECK(cudaMemcpy(lse.data(), c.lse, lse.size() * sizeof(float), cudaMemcpyDeviceToHost));
  int64_t lseWrong = 0;
  for (int64_t h = 0; h < QUERY_HEADS; ++h)
    for (int64_t i = 0; i < row0; ++i)
      lseWrong += lse[static_cast<size_t>(h * nq + i)] != -INFINITY;
  const bool pass = nonZero == 0 && lseWrong == 0;
  std::printf("%-4s huge: rows [0, %lld) fully masked: O != 0 elements %llu, LSE != -inf %lld\n",
              pass ? "PASS" : "FAIL", static_cast<long long>(row0), nonZero,
              static_cast<long long>(lseWrong));
  if (!pass)
    ++failures;
}
#endif

/// Allowed (query, key) pairs of one (batch, head).
int64_t allowedPairs(int64_t nq, int64_t nk) {
  int64_t pairs = 0;
  for (int64_t i = 0; i < nq; ++i) {
    const int64_t p = i + nk - nq;
#if defined(ATTNC_REFERENCE_CAUSAL_GQA)
    pairs += std::max<int64_t>(0, std::min(p + 1, nk));
#else
    const int64_t lo = std::max<int64_t>(0, p - kWindow), hi = std::min(nk - 1, p + kWindow);
    int64_t count = hi >= lo ? hi - lo + 1 : 0;
    if (p == 0)
      count = nk; // the global query attends every key
    else if (!(lo <= 0 && 0 <= hi))
      count += 1; // the global key outside the window
    pairs += count;
#endif
  }
  return pairs;
}

void bench(int64_t batch, int64_t n) {
  DeviceCase c(batch, n, n, false, 7);
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < kWarmups; ++i)
    c.launch();
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> ms;
  for (int i = 0; i < kTimedRuns; ++i) {
    CUDA_CHECK(cudaEventRecord(start));
    c.launch();
    CUDA_CHECK(cudaEventRecord(stop));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  const double median = 0.5 * (ms[kTimedRuns / 2 - 1] + ms[kTimedRuns / 2]);
  const double flops = 4.0 * batch * QUERY_HEADS * HEAD_DIM * static_cast<double>(allowedPairs(n, n));
  std::printf("BENCH %s B%lld Hq%d/Hkv%d N%lld D%d tile %dx%d warps %d stages %d: median %.3f ms "
              "(min %.3f, max %.3f) = %.1f TFLOP/s\n",
              kConfigName, static_cast<long long>(batch), QUERY_HEADS, KV_HEADS,
              static_cast<long long>(n), HEAD_DIM, BLOCK_M, BLOCK_N, NUM_WARPS, STAGES, median,
              ms.front(), ms.back(), flops / (median * 1e-3) / 1e12);
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
}

} // namespace

int main(int argc, char **argv) {
  bool quick = false, doBench = true, doTests = true;
  [[maybe_unused]] bool doHuge = true; // the huge case needs fully masked rows: causal only
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick")
      quick = true;
    else if (a == "--no-bench")
      doBench = false;
    else if (a == "--bench-only")
      doTests = false;
    else if (a == "--no-huge")
      doHuge = false;
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIP: no CUDA GPU present\n");
    return kSkipExitCode;
  }
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  CUDA_CHECK(cudaFuncSetAttribute(attnc_forward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  ATTNC_SHARED_BYTES));
  cudaFuncAttributes attr{};
  CUDA_CHECK(cudaFuncGetAttributes(&attr, attnc_forward_kernel));
  int blocksPerSm = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocksPerSm, attnc_forward_kernel,
                                                           ATTNC_NUM_THREADS, ATTNC_SHARED_BYTES));
  std::printf("%s, %d SMs, sm_%d%d | %s: tile %dx%d, %d warps, %d stages, D %d, Hq %d, Hkv %d\n",
              prop.name, prop.multiProcessorCount, prop.major, prop.minor, kConfigName, BLOCK_M,
              BLOCK_N, NUM_WARPS, STAGES, HEAD_DIM, QUERY_HEADS, KV_HEADS);
  std::printf("kernel: %d registers, %zu bytes local (spills), %u bytes dynamic shared, %d blocks/SM"
              " = %d warps/SM\n",
              attr.numRegs, attr.localSizeBytes, ATTNC_SHARED_BYTES, blocksPerSm,
              blocksPerSm * NUM_WARPS);
  if (doTests) {
    uint64_t seed = 1;
    struct Shape {
      int64_t batch, nq, nk;
      bool interleaved;
    };
    std::vector<Shape> shapes = {{2, 1, 1, false},    {1, 17, 17, false},  {2, 129, 129, false},
                                 {1, 17, 1, false},    {1, 129, 1000, false}, {1, 300, 100, false},
                                 {1, 129, 129, true}};
    if (!quick) {
      shapes.push_back({1, 1000, 1000, false});
      shapes.push_back({1, 1000, 300, false});
      shapes.push_back({1, 1000, 1000, true});
      shapes.push_back({2, 1023, 2047, false});
    }
    for (const Shape &s : shapes)
      runCase(s.batch, s.nq, s.nk, s.interleaved, seed++);
#if defined(ATTNC_REFERENCE_CAUSAL_GQA)
    if (doHuge && !quick)
      runHugeCase();
#endif
  }
  if (doBench) {
#if defined(ATTNC_REFERENCE_CAUSAL_GQA)
    bench(2, 8192);
#else
    bench(1, 16384);
#endif
  }
  std::printf("%s: %d failure(s)\n", failures == 0 ? "ALL PASSED" : "FAILED", failures);
  return failures == 0 ? 0 : 1;
}
