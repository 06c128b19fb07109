//===- attnc-run.cpp - Run, check and benchmark a spec's kernel -----------===//
//
//   attnc-run SPEC|PACKAGE [--target cpu|cuda] [--batch B] [--seq-len NQ[,NKV]]
//             [--seed S] [--inputs DIR] [--save DIR] [--check] [--bench]
//             [--backward] [--json] [--global-tokens T1,T2,...] [--threads N]
//             [--tile MxN]
//
// Compiles a spec with libattnc (or takes a kernel package directory written
// by attnc --emit=package), loads it into libattnrt (which builds it with the
// system C++ compiler or NVRTC and caches it on disk), runs it on random or
// given inputs on the CPU or the GPU, and optionally checks it against the
// float64 reference (and a naive implementation in the spec's dtype, the
// baseline of the error rule) or benchmarks it. --backward runs the backward
// pass after the forward and checks and times the gradients too.
//
// attnc-run needs neither MLIR nor LLVM: built without MLIR (the GPU machine),
// it runs packages only. Errors name the file, flag or argument at fault; a
// failed run exits non-zero and writes nothing.
//
//===----------------------------------------------------------------------===//

#include "CommandLine.h"
#include "Naive.h"
#include "NpyIO.h"

#include "attnc/Compiler/Flags.h"
#include "attnc/Mask/Tiles.h"
#include "attnc/Reference/Reference.h"
#include "attnc/Spec/Spec.h"
#include "attnc/Version.h"
#include "attnc/runtime/attnrt.h"

#if ATTNC_RUN_COMPILER
#include "attnc/Compiler/Compiler.h"
#endif
#if ATTNC_RUN_CUDA
#include <cuda_runtime.h>
#endif

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <malloc.h>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace attnc;
using npy::HalfType;
namespace fs = std::filesystem;

namespace {

/// Timed runs of --bench when --runs is not given: the CPU's runs are long,
/// the GPU's short and noisier.
constexpr int64_t kDefaultCpuRuns = 5, kDefaultCudaRuns = 20;
/// The fewest timed runs --runs accepts.
constexpr int64_t kMinRuns = 5;
/// Untimed runs before the GPU's timed ones (clocks, caches, lazy loading).
constexpr int kCudaWarmups = 3;
/// Exact cases (e.g. one key per row) leave the naive without error: allow
/// attnc float32 noise there.
constexpr double kErrorFloor = 1e-6;
/// The error rules: attnc's relative L2 error <= this many times the naive's.
constexpr double kForwardLimit = 2, kGradientLimit = 3;
/// Useful FLOPs of forward+backward per forward FLOP (ARCHITECTURE.md).
constexpr double kBackwardFlopFactor = 3.5;

/// Every flag's value.
struct Flags {
  std::string input;
  std::string target = "cpu";
  int64_t batch = 1;
  std::string seqLen;
  uint64_t seed = 0;
  std::string inputs, save, writeInputs, globalTokens, tile;
  bool check = false, bench = false, backward = false, json = false, verbose = false;
  int64_t runs = 0; ///< 0: kDefaultCpuRuns or kDefaultCudaRuns
  int64_t threads = 0;
};

constexpr const char *kOverview =
    "attnc-run: runs an attention spec's kernel, checks it, benchmarks it\n\n"
    "  attnc-run SPEC|PACKAGE [--target cpu|cuda] [--batch B] [--seq-len NQ[,NKV]]\n"
    "            [--seed S] [--inputs DIR] [--save DIR] [--check] [--bench]\n"
    "            [--backward] [--json] [--global-tokens T1,T2,...] [--threads N]\n"
    "            [--tile MxN]\n\n"
    "SPEC is a spec file, compiled for --target; PACKAGE a kernel package\n"
    "directory (attnc SPEC --emit=package [--target=cuda] -o DIR), run on its\n"
    "own target. An attnc-run built without MLIR runs packages only.\n\n"
    "Inputs are random (standard normal, seeded, rounded to the spec's dtype) or\n"
    "read with --inputs DIR from DIR/q.npy [B, Nq, Hq, D], DIR/k.npy and DIR/v.npy\n"
    "[B, Nkv, Hkv, D] (NumPy .npy, format 1.0 or 2.0, little-endian, C order),\n"
    "and with --backward DIR/do.npy [B, Nq, Hq, D] (dL/dO).\n"
    "B and the lengths then come from the arrays. Element types:\n"
    "  float32 ('<f4')  rounded to the spec's dtype (nearest even)\n"
    "  float16 ('<f2')  taken as is for fp16 specs; for bf16 specs converted\n"
    "                   exactly to float and rounded to bfloat16\n"
    "  uint16  ('<u2')  bfloat16 bits (NumPy has no bfloat16: save\n"
    "                   x.view(np.uint16)); taken as is for bf16 specs; for fp16\n"
    "                   specs converted exactly to float and rounded to float16\n"
    "Values must be finite in the spec's dtype. --write-inputs DIR (hidden) writes\n"
    "the inputs of a run as float32 q.npy, k.npy, v.npy (and do.npy), which\n"
    "--inputs DIR reads back exactly.\n\n"
    "--target cuda copies the inputs to the GPU (device 0, or the one\n"
    "CUDA_VISIBLE_DEVICES names first), runs there and copies the results back;\n"
    "--check and the naive implementation run on the CPU, --bench times the GPU\n"
    "with CUDA events.\n\n"
    "--save writes float32 arrays even when the check fails (the exit status\n"
    "says so). Exit status: 0 success, 1 error (nothing written), 2 check failed.";

int fail(const std::string &message) {
  std::cerr << "attnc-run: error: " << message << "\n";
  return 1;
}

/// Registers every flag of attnc-run with `parser`, storing into `f`.
void addFlags(cli::Parser &parser, Flags &f) {
  parser.setPositional("SPEC|PACKAGE", f.input);
  parser.addText("target", "TARGET", f.target,
                 "Where to run: cpu (default) or cuda (the first GPU); a PACKAGE runs on its own "
                 "target");
  parser.addInteger("batch", "B", f.batch,
                    "Batch size of random inputs (default 1; with --inputs it comes from the "
                    "arrays and must agree if given)");
  parser.addText("seq-len", "NQ[,NKV]", f.seqLen,
                 "Query and key lengths (NKV defaults to NQ); needed for random inputs when the "
                 "spec has no seq_len, and must agree with the spec's seq_len and with --inputs");
  parser.addUnsigned("seed", "S", f.seed, "Seed of the random inputs (default 0)");
  parser.addText("inputs", "DIR", f.inputs,
                 "Read Q, K, V (and dO) from DIR/q.npy, k.npy, v.npy (do.npy) instead of random "
                 "values (formats above)");
  parser.addText("save", "DIR", f.save,
                 "Write DIR/o.npy [B, Nq, Hq, D] and DIR/lse.npy [B, Hq, Nq], and with --backward "
                 "DIR/dq.npy, dk.npy, dv.npy, float32 (DIR is created)");
  parser.addSwitch("check", f.check,
                   "Compare with the float64 reference: attnc's relative L2 error of O and LSE "
                   "must be <= 2x that of a naive implementation in the spec's dtype, of dQ, dK "
                   "and dV (--backward) <= 3x, and fully masked rows exactly O = 0, LSE = -inf, "
                   "dQ = 0 (exit status 2 otherwise)");
  parser.addSwitch("bench", f.bench,
                   "Time attnc (median of --runs after a warm-up): on the CPU against the naive "
                   "materialized implementation, with the peak memory of both; on the GPU with "
                   "CUDA events. With --backward, forward+backward");
  parser.addSwitch("backward", f.backward,
                   "Run the backward pass after the forward (the spec needs \"backward\": true): "
                   "dQ, dK, dV from random or given dO");
  parser.addInteger("runs", "N", f.runs,
                    "--bench: timed runs of each implementation (>= 5; default 5 on the CPU, 20 "
                    "on the GPU)");
  parser.addSwitch("json", f.json, "Print every result as one JSON object");
  parser.addText("global-tokens", "T1,T2,...", f.globalTokens,
                 "The launch-time token list of a runtime global mask (default: none)");
  parser.addText("tile", "MxN", f.tile,
                 "Tile BLOCK_M x BLOCK_N, powers of two in [16, 256] (default: the attn-tile "
                 "heuristic; SPEC only)");
  parser.addSwitch("verbose", f.verbose,
                   "Let the runtime print cache hits, misses and compiler commands");
  parser.addInteger("threads", "N", f.threads,
                    "Worker threads of attnc (CPU), the naive implementation and the reference "
                    "(default 0: all hardware threads)");
  parser.addText("write-inputs", "DIR", f.writeInputs,
                 "Also write the inputs as DIR/q.npy, k.npy, v.npy (and do.npy) (float32, the "
                 "dtype-rounded values, so that --inputs DIR reproduces the run exactly)",
                 /*hidden=*/true);
}

/// The capacity of the mask's runtime global token list (0: none).
int64_t runtimeTokenCapacity(const mask::Mask &m) {
  int64_t capacity = m.kind == mask::Kind::GlobalRuntime ? m.runtimeMax : 0;
  for (const mask::Mask &child : m.children)
    capacity = std::max(capacity, runtimeTokenCapacity(child));
  return capacity;
}

/// splitmix64: the generator of the random inputs (the same values on every
/// platform and standard library).
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in (0, 1].
  double uniform() { return static_cast<double>((next() >> 11) + 1) * 0x1.0p-53; }
};

/// The random tensors of a run, by their seed stream.
enum RandomTensor { kRandomQ = 0, kRandomK = 1, kRandomV = 2, kRandomDO = 3 };

/// `n` standard normal values (Box-Muller), seeded by (seed, tensor),
/// rounded to `type`.
std::vector<uint16_t> randomTensor(size_t n, uint64_t seed, int tensor, HalfType type) {
  SplitMix64 gen{seed * 0x2545f4914f6cdd1dull +
                 static_cast<uint64_t>(tensor + 1) * 0x9e3779b97f4a7c15ull};
  std::vector<uint16_t> bits(n);
  for (size_t i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(gen.uniform()));
    const double theta = 2.0 * M_PI * gen.uniform();
    bits[i] = npy::floatToHalf(static_cast<float>(r * std::cos(theta)), type);
    if (i + 1 < n)
      bits[i + 1] = npy::floatToHalf(static_cast<float>(r * std::sin(theta)), type);
  }
  return bits;
}

std::vector<float> halfToFloats(const std::vector<uint16_t> &bits, HalfType type) {
  std::vector<float> f(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    f[i] = npy::halfToFloat(bits[i], type);
  return f;
}

std::vector<double> halfToDoubles(const std::vector<uint16_t> &bits, HalfType type) {
  std::vector<double> d(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    d[i] = npy::halfToFloat(bits[i], type);
  return d;
}

/// A contiguous [d0, d1, d2, d3] (or 3-d) view.
attnc_tensor_view view(void *data, std::vector<int64_t> shape, attnc_dtype dtype) {
  attnc_tensor_view v{};
  v.data = data;
  v.rank = static_cast<int32_t>(shape.size());
  v.dtype = dtype;
  int64_t stride = 1;
  for (int d = v.rank - 1; d >= 0; --d) {
    v.shape[d] = shape[static_cast<size_t>(d)];
    v.strides[d] = stride;
    stride *= shape[static_cast<size_t>(d)];
  }
  return v;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// A field of /proc/self/status in bytes (VmRSS, VmHWM), or -1.
int64_t procStatusBytes(const char *field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.compare(0, prefix.size(), prefix) == 0)
      return std::atoll(line.c_str() + prefix.size()) * 1024;
  return -1;
}

/// The growth of the resident set's high-water mark while `body` runs
/// (Linux: writing 5 to /proc/self/clear_refs resets VmHWM to VmRSS), or -1
/// where that is not available.
int64_t measurePeakBytes(const std::function<void()> &body) {
  bool resettable = false;
  if (std::FILE *f = std::fopen("/proc/self/clear_refs", "w")) {
    resettable = std::fputs("5", f) >= 0;
    resettable = (std::fclose(f) == 0) && resettable;
  }
  const int64_t before = procStatusBytes("VmRSS");
  body();
  const int64_t peak = procStatusBytes("VmHWM");
  if (!resettable || before < 0 || peak < 0)
    return -1;
  return std::max<int64_t>(0, peak - before);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// printf into a std::string.
template <typename... Args> std::string format(const char *pattern, Args... args) {
  char buf[128];
  std::snprintf(buf, sizeof buf, pattern, args...);
  return buf;
}

/// "1.23 MiB".
std::string humanBytes(double bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return format(u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
}

std::string sci(double v) {
  if (std::isinf(v))
    return "inf";
  return format("%.3e", v);
}

/// `dir`/`name`.
std::string joinPath(const std::string &dir, const std::string &name) {
  return (fs::path(dir) / name).string();
}

/// One relative L2 comparison of the check.
struct Comparison {
  double attnc = 0, naive = 0;
  bool ok = true;
};

/// Compares `got` and the naive's `naive` with `want`: ok iff attnc's error
/// is at most `limit` times the naive's (plus kErrorFloor).
Comparison compare(const std::vector<double> &got, const std::vector<double> &naive,
                   const std::vector<double> &want, double limit) {
  Comparison c;
  c.attnc = reference::relativeL2(got, want);
  c.naive = reference::relativeL2(naive, want);
  c.ok = c.attnc <= limit * c.naive + kErrorFloor;
  return c;
}

/// Everything a run produced, for the text and JSON reports.
struct Results {
  // Problem.
  int64_t batch = 0, nq = 0, nk = 0;
  std::string inputs; // "random" or the directory
  std::vector<std::string> inputNotes;
  std::vector<int64_t> tokens;
  bool hasRuntimeTokens = false;
  // Kernel.
  std::string target, device;
  int64_t blockM = 0, blockN = 0;
  std::string schedule;
  bool fromCache = false;
  double buildSeconds = 0, runSeconds = 0;
  int threads = 0;
  // Check.
  bool checked = false, passed = true;
  Comparison o, lse, dq, dk, dv;
  int64_t maskedRows = 0, rows = 0, maskedWrong = 0, maskedDqWrong = 0;
  // Bench.
  bool benched = false, benchedNaive = false;
  int64_t runs = 0;
  double attncMedian = 0, attncMin = 0, naiveMedian = 0, naiveMin = 0;
  int64_t attncPeak = -1, naivePeak = -1, attncOutputBytes = 0, naiveMaterialized = 0;
  int64_t allowedPairs = 0;
  std::vector<std::string> saved;
};

/// The tile and schedule kind a manifest names (left alone if it does not).
void readManifestSummary(const std::string &manifestJson, Results &res) {
  try {
    const nlohmann::json m = nlohmann::json::parse(manifestJson);
    if (m.contains("tile") && m["tile"].is_object()) {
      res.blockM = m["tile"].value("block_m", int64_t{0});
      res.blockN = m["tile"].value("block_n", int64_t{0});
    }
    if (m.contains("schedule") && m["schedule"].is_object())
      res.schedule = m["schedule"].value("kind", std::string());
  } catch (const std::exception &) {
    // Only the report reads these; the runtime has validated the manifest.
  }
}

/// Reads a whole file; false if it cannot.
bool readText(const std::string &path, std::string &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::ostringstream text;
  text << in.rdbuf();
  out = text.str();
  return static_cast<bool>(in) || in.eof();
}

#if ATTNC_RUN_CUDA
/// Device memory, freed when it goes out of scope.
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  ~DeviceBuffer() {
    if (ptr_)
      cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  /// Allocates `bytes` (at least 16); returns "" or the CUDA error.
  std::string allocate(size_t bytes) {
    cudaError_t e = cudaMalloc(&ptr_, std::max<size_t>(bytes, 16));
    if (e != cudaSuccess) {
      ptr_ = nullptr;
      return "cudaMalloc(" + std::to_string(bytes) + " bytes): " + cudaGetErrorString(e);
    }
    return "";
  }
  void *get() const { return ptr_; }

private:
  void *ptr_ = nullptr;
};

/// Makes device 0 current (cudart's primary context, which libattnrt then
/// uses) and returns its name; "" and `error` without a usable GPU.
std::string openGpu(std::string &error) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    error = std::string("no usable GPU here (cudaGetDeviceCount: ") + cudaGetErrorString(e) + ")";
    return "";
  }
  if (count == 0) {
    error = "no usable GPU here (cudaGetDeviceCount: no CUDA device)";
    return "";
  }
  cudaDeviceProp prop{};
  if ((e = cudaSetDevice(0)) != cudaSuccess || (e = cudaFree(nullptr)) != cudaSuccess ||
      (e = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) {
    error = std::string("cannot use GPU 0: ") + cudaGetErrorString(e);
    return "";
  }
  return prop.name;
}

/// "" if `e` is success, else "WHAT: the CUDA error".
std::string cudaProblem(cudaError_t e, const std::string &what) {
  return e == cudaSuccess ? "" : what + ": " + cudaGetErrorString(e);
}
#endif

/// The tensors of a run and the kernel that runs on them. Host vectors hold
/// the inputs and, after fetch(), the outputs; CPU kernels work on them in
/// place, CUDA kernels on device copies (upload() and fetch() move the data).
class Runner {
public:
  Runner(attnrt_kernel *kernel, bool cuda, const reference::Shape &shape, attnc_dtype dtype,
         const std::vector<int64_t> *tokens, int threads)
      : kernel_(kernel), cuda_(cuda), shape_(shape), dtype_(dtype), tokens_(tokens),
        threads_(threads) {}
  ~Runner() {
#if ATTNC_RUN_CUDA
    if (stream_)
      cudaStreamDestroy(stream_);
#endif
  }

  // Host tensors ([B, N, H, D] in the dtype; LSE [B, Hq, Nq] float32).
  std::vector<uint16_t> q, k, v, dO, o, dq, dk, dv;
  std::vector<float> lse;

  int64_t qElements() const { return shape_.batch * shape_.nq * shape_.hq * shape_.d; }
  int64_t kvElements() const { return shape_.batch * shape_.nk * shape_.hkv * shape_.d; }
  int64_t lseElements() const { return shape_.batch * shape_.hq * shape_.nq; }

  /// Sizes the outputs and, for CUDA, copies the inputs to the device.
  /// Returns "" or what failed.
  std::string upload(bool backward) {
    o.assign(static_cast<size_t>(qElements()), 0);
    lse.assign(static_cast<size_t>(lseElements()), std::numeric_limits<float>::quiet_NaN());
    if (backward) {
      dq.assign(static_cast<size_t>(qElements()), 0);
      dk.assign(static_cast<size_t>(kvElements()), 0);
      dv.assign(static_cast<size_t>(kvElements()), 0);
    }
    if (!cuda_) {
      buffers_ = {q.data(),  k.data(),  v.data(),  o.data(), lse.data(),
                  dO.data(), dq.data(), dk.data(), dv.data()};
      return "";
    }
#if ATTNC_RUN_CUDA
    if (std::string e = cudaProblem(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                                    "cudaStreamCreate");
        !e.empty())
      return e;
    const size_t qBytes = static_cast<size_t>(qElements()) * 2,
                 kvBytes = static_cast<size_t>(kvElements()) * 2,
                 lseBytes = static_cast<size_t>(lseElements()) * 4;
    struct Piece {
      DeviceBuffer &buffer;
      size_t bytes;
      const void *from; // host data to copy, or null
    };
    std::vector<Piece> pieces = {{devQ_, qBytes, q.data()},
                                 {devK_, kvBytes, k.data()},
                                 {devV_, kvBytes, v.data()},
                                 {devO_, qBytes, nullptr},
                                 {devLse_, lseBytes, nullptr}};
    if (backward) {
      pieces.push_back({devDO_, qBytes, dO.data()});
      pieces.push_back({devDQ_, qBytes, nullptr});
      pieces.push_back({devDK_, kvBytes, nullptr});
      pieces.push_back({devDV_, kvBytes, nullptr});
    }
    for (Piece &p : pieces) {
      if (std::string e = p.buffer.allocate(p.bytes); !e.empty())
        return e;
      // Outputs start as NaN patterns: a kernel that skips an element shows.
      cudaError_t r = p.from ? cudaMemcpy(p.buffer.get(), p.from, p.bytes, cudaMemcpyHostToDevice)
                             : cudaMemset(p.buffer.get(), 0xff, p.bytes);
      if (std::string e = cudaProblem(r, "copying the inputs to the GPU"); !e.empty())
        return e;
    }
    buffers_ = {devQ_.get(),  devK_.get(),  devV_.get(),  devO_.get(), devLse_.get(),
                devDO_.get(), devDQ_.get(), devDK_.get(), devDV_.get()};
    return "";
#else
    return "this attnc-run was built without the CUDA toolkit";
#endif
  }

  /// Copies the outputs back to the host vectors (CUDA; nothing for CPU).
  std::string fetch(bool backward) {
    if (!cuda_)
      return "";
#if ATTNC_RUN_CUDA
    auto down = [&](void *to, const void *from, size_t bytes) {
      return cudaProblem(cudaMemcpy(to, from, bytes, cudaMemcpyDeviceToHost),
                         "copying the results from the GPU");
    };
    std::string e = down(o.data(), buffers_.o, o.size() * 2);
    if (e.empty())
      e = down(lse.data(), buffers_.lse, lse.size() * 4);
    if (e.empty() && backward) {
      e = down(dq.data(), buffers_.dq, dq.size() * 2);
      if (e.empty())
        e = down(dk.data(), buffers_.dk, dk.size() * 2);
      if (e.empty())
        e = down(dv.data(), buffers_.dv, dv.size() * 2);
    }
    return e;
#else
    return "";
#endif
  }

  /// The forward pass into the run's O and LSE, waiting for it.
  attnrt_status forward() { return forwardInto(buffers_.o, buffers_.lse, /*wait=*/true); }

  /// The forward into other buffers of the same shapes (host memory on the
  /// CPU): --bench's memory measurement.
  attnrt_status forwardInto(void *out, void *outLse, bool wait) {
    const reference::Shape &s = shape_;
    attnc_tensor_view qv = view(buffers_.q, {s.batch, s.nq, s.hq, s.d}, dtype_);
    attnc_tensor_view kv = view(buffers_.k, {s.batch, s.nk, s.hkv, s.d}, dtype_);
    attnc_tensor_view vv = view(buffers_.v, {s.batch, s.nk, s.hkv, s.d}, dtype_);
    attnc_tensor_view ov = view(out, {s.batch, s.nq, s.hq, s.d}, dtype_);
    attnc_tensor_view lv = view(outLse, {s.batch, s.hq, s.nq}, ATTNC_DTYPE_FP32);
    if (wait)
      return attnrt_forward(kernel_, &qv, &kv, &vv, &ov, &lv, tokenData(), tokenCount(), threads_);
    return attnrt_forward_async(kernel_, &qv, &kv, &vv, &ov, &lv, tokenData(), tokenCount(),
                                threads_, stream());
  }

  /// The backward pass from the run's O, LSE and dO into dQ, dK, dV.
  attnrt_status backward(bool wait) {
    const reference::Shape &s = shape_;
    attnc_tensor_view qv = view(buffers_.q, {s.batch, s.nq, s.hq, s.d}, dtype_);
    attnc_tensor_view kv = view(buffers_.k, {s.batch, s.nk, s.hkv, s.d}, dtype_);
    attnc_tensor_view vv = view(buffers_.v, {s.batch, s.nk, s.hkv, s.d}, dtype_);
    attnc_tensor_view ov = view(buffers_.o, {s.batch, s.nq, s.hq, s.d}, dtype_);
    attnc_tensor_view lv = view(buffers_.lse, {s.batch, s.hq, s.nq}, ATTNC_DTYPE_FP32);
    attnc_tensor_view dov = view(buffers_.dO, {s.batch, s.nq, s.hq, s.d}, dtype_);
    attnc_tensor_view dqv = view(buffers_.dq, {s.batch, s.nq, s.hq, s.d}, dtype_);
    attnc_tensor_view dkv = view(buffers_.dk, {s.batch, s.nk, s.hkv, s.d}, dtype_);
    attnc_tensor_view dvv = view(buffers_.dv, {s.batch, s.nk, s.hkv, s.d}, dtype_);
    if (wait)
      return attnrt_backward(kernel_, &qv, &kv, &vv, &ov, &lv, &dov, &dqv, &dkv, &dvv, tokenData(),
                             tokenCount(), threads_);
    return attnrt_backward_async(kernel_, &qv, &kv, &vv, &ov, &lv, &dov, &dqv, &dkv, &dvv,
                                 tokenData(), tokenCount(), threads_, stream());
  }

  /// Times `runs` runs of the forward (and the backward), each alone: CUDA
  /// events on the run's stream after kCudaWarmups untimed runs, or the wall
  /// clock on the CPU after one. Returns "" or what failed.
  std::string time(int64_t runs, bool backward, std::vector<double> &seconds) {
    auto once = [&]() -> std::string {
      if (forwardInto(buffers_.o, buffers_.lse, /*wait=*/!cuda_) != ATTNRT_OK ||
          (backward && this->backward(/*wait=*/!cuda_) != ATTNRT_OK))
        return attnrt_last_error();
      return "";
    };
    if (!cuda_) {
      if (std::string e = once(); !e.empty()) // warm-up
        return e;
      for (int64_t r = 0; r < runs; ++r) {
        auto start = std::chrono::steady_clock::now();
        if (std::string e = once(); !e.empty())
          return e;
        seconds.push_back(secondsSince(start));
      }
      return "";
    }
#if ATTNC_RUN_CUDA
    cudaEvent_t start = nullptr, stop = nullptr;
    std::string e = cudaProblem(cudaEventCreate(&start), "cudaEventCreate");
    if (e.empty())
      e = cudaProblem(cudaEventCreate(&stop), "cudaEventCreate");
    for (int w = 0; e.empty() && w < kCudaWarmups; ++w)
      e = once();
    for (int64_t r = 0; e.empty() && r < runs; ++r) {
      e = cudaProblem(cudaEventRecord(start, stream_), "cudaEventRecord");
      if (e.empty())
        e = once();
      if (e.empty())
        e = cudaProblem(cudaEventRecord(stop, stream_), "cudaEventRecord");
      if (e.empty())
        e = cudaProblem(cudaEventSynchronize(stop), "the timed kernels");
      float ms = 0;
      if (e.empty())
        e = cudaProblem(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
      if (e.empty())
        seconds.push_back(ms * 1e-3);
    }
    if (start)
      cudaEventDestroy(start);
    if (stop)
      cudaEventDestroy(stop);
    if (e.empty())
      e = cudaProblem(cudaStreamSynchronize(stream_), "the timed kernels");
    return e;
#else
    return "";
#endif
  }

private:
  const int64_t *tokenData() const { return tokens_ ? tokens_->data() : nullptr; }
  int64_t tokenCount() const { return tokens_ ? static_cast<int64_t>(tokens_->size()) : 0; }
  void *stream() const {
#if ATTNC_RUN_CUDA
    return stream_;
#else
    return nullptr;
#endif
  }

  /// Where the kernel reads and writes: host vectors or device buffers.
  struct Pointers {
    void *q, *k, *v, *o, *lse, *dO, *dq, *dk, *dv;
  };

  attnrt_kernel *kernel_;
  bool cuda_;
  reference::Shape shape_;
  attnc_dtype dtype_;
  const std::vector<int64_t> *tokens_;
  int threads_;
  Pointers buffers_{};
#if ATTNC_RUN_CUDA
  cudaStream_t stream_ = nullptr;
  DeviceBuffer devQ_, devK_, devV_, devO_, devLse_, devDO_, devDQ_, devDK_, devDV_;
#endif
};

/// Reads DIR/NAME (a .npy file) and checks that it has 4 dimensions.
/// Returns "" or the error; `path` is the file's path.
std::string readInput(const std::string &dir, const char *name, npy::Array &array,
                      std::string &path) {
  path = joinPath(dir, name);
  std::string error;
  if (!npy::readFile(path, path, array, error))
    return error;
  if (array.shape.size() != 4)
    return path + ": expected 4 dimensions [B, N, H, D], got " + std::to_string(array.shape.size());
  return "";
}

/// How an input of element type `et` is taken for a spec of `type`.
std::string inputNote(npy::ElementType et, HalfType type, const char *dtypeName) {
  if (et == npy::ElementType::Float32)
    return std::string("float32, rounded to ") + dtypeName;
  if (et == npy::ElementType::Float16)
    return type == HalfType::FP16 ? "float16, as is" : "float16, rounded to bf16";
  return type == HalfType::BF16 ? "bfloat16 bits (uint16), as is"
                                : "bfloat16 bits (uint16), rounded to fp16";
}

} // namespace

int main(int argc, char **argv) {
  Flags f;
  cli::Parser parser("attnc-run", kOverview, std::string("attnc-run ") + ATTNC_VERSION);
  addFlags(parser, f);
  if (std::string error = parser.parse(argc, argv, std::cout); !error.empty())
    return fail(error);
  if (parser.exitNow())
    return 0;
  // Large buffers come from fresh mmaps (no dynamic threshold), so that the
  // resident-set high-water marks of --bench see every byte allocated.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  // Flags.
  if (f.target != "cpu" && f.target != "cuda")
    return fail("--target=" + f.target + ": unknown target; valid targets: cpu, cuda");
  int64_t blockM = 0, blockN = 0;
  if (!f.tile.empty())
    if (std::string error = parseTileFlag(f.tile, blockM, blockN); !error.empty())
      return fail(error);
  std::optional<std::pair<int64_t, int64_t>> flagLengths;
  if (!f.seqLen.empty()) {
    int64_t nq = 0, nk = 0;
    if (std::string error = parseSeqLenFlag(f.seqLen, nq, nk); !error.empty())
      return fail(error);
    flagLengths = {nq, nk};
  }
  Results res;
  if (std::string error = parseTokensFlag(f.globalTokens, res.tokens); !error.empty())
    return fail(error);
  if (f.batch < 1)
    return fail("--batch=" + std::to_string(f.batch) + ": must be >= 1");
  if (f.threads < 0)
    return fail("--threads=" + std::to_string(f.threads) + ": must be >= 0");
  if (parser.given("runs") && f.runs < kMinRuns)
    return fail("--runs=" + std::to_string(f.runs) + ": must be >= " + std::to_string(kMinRuns));
  const int threads = f.threads > 0
                          ? static_cast<int>(f.threads)
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  res.threads = threads;

  // The kernel's source: a package directory, or a spec to compile.
  const bool isPackage = fs::is_directory(f.input);
  std::unique_ptr<attnrt_package, void (*)(attnrt_package *)> package(nullptr, attnrt_package_free);
  std::optional<spec::LoadResult> loaded;
  if (isPackage) {
    attnrt_package *p = nullptr;
    if (attnrt_package_load(f.input.c_str(), &p) != ATTNRT_OK)
      return fail(attnrt_last_error());
    package.reset(p);
    const std::string manifestPath = joinPath(f.input, "manifest.json");
    loaded = spec::loadSpecFromString(attnrt_package_spec_json(p), manifestPath);
    std::string manifest;
    if (readText(manifestPath, manifest))
      readManifestSummary(manifest, res);
    const std::string packageTarget = attnrt_package_target(p);
    if (parser.given("target") && f.target != packageTarget)
      return fail("--target=" + f.target + ": package " + f.input + " holds a " + packageTarget +
                  " kernel");
    f.target = packageTarget;
    if (!f.tile.empty())
      return fail("--tile=" + f.tile + ": package " + f.input + " is compiled with tile " +
                  std::to_string(res.blockM) + "x" + std::to_string(res.blockN) +
                  "; pass a spec to choose the tile");
  } else {
#if !ATTNC_RUN_COMPILER
    return fail(f.input +
                ": this attnc-run is built without the compiler (MLIR): it runs kernel "
                "package directories (attnc SPEC --emit=package [--target=cuda] -o DIR); pass "
                "one instead of a spec");
#endif
    loaded = spec::loadSpecFromFile(f.input);
  }
  for (const spec::Diagnostic &d : loaded->diagnostics)
    std::cerr << d.format() << "\n";
  if (!loaded->ok())
    return 1;
  spec::Spec &s = *loaded->spec;
  const bool cuda = f.target == "cuda";
  res.target = f.target;
  if (f.backward && !s.backward)
    return fail("--backward: " + (isPackage ? "package " + f.input : "spec " + s.name) +
                " has no backward pass (its spec needs \"backward\": true)");
  if (cuda) {
#if ATTNC_RUN_CUDA
    std::string error;
    res.device = openGpu(error);
    if (res.device.empty())
      return fail("--target=cuda: " + error);
#else
    return fail("--target=cuda: this attnc-run was built without the CUDA toolkit");
#endif
  }
  const int64_t runs = f.runs ? f.runs : cuda ? kDefaultCudaRuns : kDefaultCpuRuns;

  const HalfType type = s.dtype == spec::DType::BF16 ? HalfType::BF16 : HalfType::FP16;
  const attnc_dtype abiType = s.dtype == spec::DType::BF16 ? ATTNC_DTYPE_BF16 : ATTNC_DTYPE_FP16;
  const char *dtypeName = spec::dtypeName(s.dtype);
  const int64_t Hq = s.queryHeads, Hkv = s.kvHeads, D = s.headDim;
  if (flagLengths && s.seqLenQ &&
      (flagLengths->first != *s.seqLenQ || flagLengths->second != *s.seqLenKV))
    return fail("--seq-len=" + f.seqLen + ": the spec fixes seq_len to " +
                std::to_string(*s.seqLenQ) + "," + std::to_string(*s.seqLenKV));

  // The inputs, in the spec's dtype.
  std::vector<uint16_t> q, k, v, dO;
  if (!f.inputs.empty()) {
    const int count = f.backward ? 4 : 3;
    npy::Array arrays[4];
    const char *names[4] = {"q.npy", "k.npy", "v.npy", "do.npy"};
    std::string paths[4];
    for (int t = 0; t < count; ++t)
      if (std::string error = readInput(f.inputs, names[t], arrays[t], paths[t]); !error.empty())
        return fail(error);
    const std::vector<int64_t> &qs = arrays[0].shape, &ks = arrays[1].shape, &vs = arrays[2].shape;
    auto mismatch = [&](int t, const std::string &what) {
      return fail(paths[t] + ": shape " + npy::shapeString(arrays[t].shape) + " does not match " +
                  what);
    };
    if (qs[0] < 1 || qs[1] < 1)
      return fail(paths[0] + ": shape " + npy::shapeString(qs) +
                  ": the batch and the length must be >= 1");
    if (qs[2] != Hq)
      return mismatch(0, "the spec's query heads " + std::to_string(Hq));
    if (qs[3] != D)
      return mismatch(0, "the spec's head_dim " + std::to_string(D));
    if (ks[0] != qs[0])
      return mismatch(1, "q.npy's batch " + std::to_string(qs[0]));
    if (ks[1] < 1)
      return fail(paths[1] + ": shape " + npy::shapeString(ks) + ": the length must be >= 1");
    if (ks[2] != Hkv)
      return mismatch(1, "the spec's kv heads " + std::to_string(Hkv));
    if (ks[3] != D)
      return mismatch(1, "the spec's head_dim " + std::to_string(D));
    if (vs != ks)
      return mismatch(2, "k.npy's shape " + npy::shapeString(ks));
    if (f.backward && arrays[3].shape != qs)
      return mismatch(3, "q.npy's shape " + npy::shapeString(qs));
    res.batch = qs[0];
    res.nq = qs[1];
    res.nk = ks[1];
    if (parser.given("batch") && f.batch != res.batch)
      return fail(paths[0] + ": batch " + std::to_string(res.batch) +
                  " does not match --batch=" + std::to_string(f.batch));
    if (flagLengths && flagLengths->first != res.nq)
      return fail(paths[0] + ": length " + std::to_string(res.nq) +
                  " does not match --seq-len=" + f.seqLen);
    if (flagLengths && flagLengths->second != res.nk)
      return fail(paths[1] + ": length " + std::to_string(res.nk) +
                  " does not match --seq-len=" + f.seqLen);
    if (s.seqLenQ && *s.seqLenQ != res.nq)
      return fail(paths[0] + ": length " + std::to_string(res.nq) +
                  " does not match the spec's seq_len.q " + std::to_string(*s.seqLenQ));
    if (s.seqLenKV && *s.seqLenKV != res.nk)
      return fail(paths[1] + ": length " + std::to_string(res.nk) +
                  " does not match the spec's seq_len.kv " + std::to_string(*s.seqLenKV));
    std::vector<uint16_t> *outs[4] = {&q, &k, &v, &dO};
    for (int t = 0; t < count; ++t) {
      std::string error;
      if (!npy::toHalf(arrays[t], type, paths[t], *outs[t], error))
        return fail(error);
      res.inputNotes.push_back(std::string(names[t]) + ": " +
                               inputNote(arrays[t].type, type, dtypeName));
      arrays[t].data.clear();
      arrays[t].data.shrink_to_fit();
    }
    res.inputs = f.inputs;
  } else {
    res.batch = f.batch;
    if (flagLengths) {
      res.nq = flagLengths->first;
      res.nk = flagLengths->second;
    } else if (s.seqLenQ) {
      res.nq = *s.seqLenQ;
      res.nk = *s.seqLenKV;
    } else {
      return fail("the spec leaves seq_len to launch time; give --seq-len NQ[,NKV] or --inputs "
                  "DIR");
    }
    res.inputs = "random";
  }
  const int64_t B = res.batch, Nq = res.nq, Nk = res.nk;

  // The naive implementation materializes [Nq, Nk] matrices: refuse sizes
  // that cannot fit rather than be killed half-way. (--bench runs it on the
  // CPU target only.)
  {
    const double pairs = static_cast<double>(Nq) * static_cast<double>(Nk);
    const double workers = static_cast<double>(std::min<int64_t>(threads, B * Hq));
    const double physical =
        static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
    auto tooLarge = [&](const char *flag, double bytes, const char *what) -> std::string {
      if (physical <= 0 || bytes <= 0.75 * physical)
        return "";
      char buf[320];
      std::snprintf(buf, sizeof buf,
                    "%s: the naive implementation would materialize %.0f bytes (%s), more than "
                    "3/4 of this machine's memory (%.0f bytes)",
                    flag, bytes, what, physical);
      return buf;
    };
    if (f.bench && !cuda)
      if (std::string e =
              tooLarge("--bench", pairs * (1 + 4.0 * B * Hq), "S and P of [B, Hq, Nq, Nk]");
          !e.empty())
        return fail(e);
    if (f.check)
      if (std::string e =
              tooLarge("--check", pairs * (1 + 4.0 * workers), "S and P of [Nq, Nk] per thread");
          !e.empty())
        return fail(e);
  }

  // The runtime global token list.
  const int64_t capacity = runtimeTokenCapacity(s.mask);
  res.hasRuntimeTokens = capacity > 0;
  if (!f.globalTokens.empty() && capacity == 0)
    return fail("--global-tokens: the spec's mask has no runtime global tokens");
  if (static_cast<int64_t>(res.tokens.size()) > capacity && capacity > 0)
    return fail("--global-tokens: " + std::to_string(res.tokens.size()) +
                " tokens given, the spec takes at most " + std::to_string(capacity));
  for (int64_t t : res.tokens)
    if (t >= Nk)
      return fail("--global-tokens: token " + std::to_string(t) +
                  " is out of range for kv length " + std::to_string(Nk));
  const std::vector<int64_t> *tokens = res.hasRuntimeTokens ? &res.tokens : nullptr;

  // Random inputs, once every size is known to be acceptable.
  if (res.inputs == "random") {
    q = randomTensor(static_cast<size_t>(B * Nq * Hq * D), f.seed, kRandomQ, type);
    k = randomTensor(static_cast<size_t>(B * Nk * Hkv * D), f.seed, kRandomK, type);
    v = randomTensor(static_cast<size_t>(B * Nk * Hkv * D), f.seed, kRandomV, type);
    if (f.backward)
      dO = randomTensor(static_cast<size_t>(B * Nq * Hq * D), f.seed, kRandomDO, type);
  }

  // Compile the spec (or take the package) and build (or fetch) the kernel.
  auto buildStart = std::chrono::steady_clock::now();
#if ATTNC_RUN_COMPILER
  if (!isPackage) {
    CompileOptions compileOptions;
    compileOptions.target = f.target;
    compileOptions.blockM = blockM;
    compileOptions.blockN = blockN;
    CompileResult compiled = compileSpec(s, compileOptions);
    if (!compiled.diagnostics.empty()) {
      std::cerr << compiled.diagnostics;
      if (compiled.diagnostics.back() != '\n')
        std::cerr << "\n";
    }
    if (!compiled.ok())
      return 1;
    readManifestSummary(compiled.package->manifestJson, res);
    attnrt_package *p = nullptr;
    if (attnrt_package_from_memory(compiled.package->manifestJson.c_str(),
                                   compiled.package->source.c_str(), &p) != ATTNRT_OK)
      return fail(attnrt_last_error());
    package.reset(p);
  }
#endif
  if (f.backward && !attnrt_package_has_backward(package.get()))
    return fail("--backward: the " + f.target + " kernel of " +
                (isPackage ? "package " + f.input : "spec " + s.name) +
                " has no backward pass (attnc does not print one for this target yet)");
  attnrt_compile_options runtimeOptions{};
  runtimeOptions.verbose = f.verbose ? 1 : 0;
  attnrt_kernel *kernelPtr = nullptr;
  if (attnrt_kernel_create(package.get(), &runtimeOptions, &kernelPtr) != ATTNRT_OK)
    return fail(attnrt_last_error());
  std::unique_ptr<attnrt_kernel, void (*)(attnrt_kernel *)> kernel(kernelPtr, attnrt_kernel_free);
  res.fromCache = attnrt_kernel_from_cache(kernelPtr) != 0;
  res.buildSeconds = secondsSince(buildStart);

  // Run attnc: the forward, then the backward.
  const reference::Shape shape{B, Nq, Nk, Hq, Hkv, D};
  Runner runner(kernelPtr, cuda, shape, abiType, tokens, threads);
  runner.q = std::move(q);
  runner.k = std::move(k);
  runner.v = std::move(v);
  runner.dO = std::move(dO);
  if (std::string error = runner.upload(f.backward); !error.empty())
    return fail(error);
  auto runStart = std::chrono::steady_clock::now();
  if (runner.forward() != ATTNRT_OK)
    return fail(attnrt_last_error());
  if (f.backward && runner.backward(/*wait=*/true) != ATTNRT_OK)
    return fail(attnrt_last_error());
  res.runSeconds = secondsSince(runStart);
  if (std::string error = runner.fetch(f.backward); !error.empty())
    return fail(error);
  const size_t oSize = runner.o.size(), lseSize = runner.lse.size();

  std::optional<naive::Result> naiveResult;
  const float scale = static_cast<float>(s.scale);

  // --bench: memory first (before other large buffers come and go), then time.
  if (f.bench) {
    res.benched = true;
    res.runs = runs;
    res.attncOutputBytes = static_cast<int64_t>(oSize * 2 + lseSize * 4);
    if (f.backward)
      res.attncOutputBytes +=
          static_cast<int64_t>((runner.dq.size() + runner.dk.size() + runner.dv.size()) * 2);
    if (!cuda) {
      res.benchedNaive = true;
      res.attncPeak = measurePeakBytes([&] {
        std::vector<uint16_t> o2(oSize);
        std::vector<float> lse2(lseSize);
        runner.forwardInto(o2.data(), lse2.data(), /*wait=*/true);
        if (f.backward)
          runner.backward(/*wait=*/true);
      });
      res.naivePeak = measurePeakBytes([&] {
        naive::Result r = naive::forward(s.mask, shape, type, scale, runner.q.data(),
                                         runner.k.data(), runner.v.data(), tokens, threads);
        res.naiveMaterialized = r.materializedBytes;
        res.allowedPairs = r.allowedPairs;
        if (f.backward)
          naive::backward(s.mask, shape, type, scale, runner.q.data(), runner.k.data(),
                          runner.v.data(), runner.dO.data(), tokens, threads);
      });
    } else {
      mask::Geometry geometry(mask::canonicalize(s.mask), mask::Extent{Nq, Nk, tokens});
      res.allowedPairs = geometry.countAllowed(mask::Rect{0, Nq, 0, Nk});
    }
    std::vector<double> times;
    if (std::string error = runner.time(runs, f.backward, times); !error.empty())
      return fail(error);
    res.attncMedian = median(times);
    res.attncMin = *std::min_element(times.begin(), times.end());
    if (!cuda) {
      times.clear();
      // The memory run above was the naive's warm-up.
      for (int64_t r = 0; r < runs; ++r) {
        auto start = std::chrono::steady_clock::now();
        naiveResult = naive::forward(s.mask, shape, type, scale, runner.q.data(), runner.k.data(),
                                     runner.v.data(), tokens, threads);
        if (f.backward)
          naive::backward(s.mask, shape, type, scale, runner.q.data(), runner.k.data(),
                          runner.v.data(), runner.dO.data(), tokens, threads);
        times.push_back(secondsSince(start));
      }
      res.naiveMedian = median(times);
      res.naiveMin = *std::min_element(times.begin(), times.end());
    }
    // The timed runs rewrote the outputs with the same values: fetch them
    // again all the same, so that what is checked and saved is what ran last.
    if (std::string error = runner.fetch(f.backward); !error.empty())
      return fail(error);
  }

  // --check.
  if (f.check) {
    res.checked = true;
    if (!naiveResult)
      naiveResult = naive::forward(s.mask, shape, type, scale, runner.q.data(), runner.k.data(),
                                   runner.v.data(), tokens, threads,
                                   /*materializeAll=*/false);
    const std::vector<double> qD = halfToDoubles(runner.q, type),
                              kD = halfToDoubles(runner.k, type),
                              vD = halfToDoubles(runner.v, type);
    reference::Output ref =
        naive::parallelReference(s.mask, shape, s.scale, qD, kD, vD, tokens, threads);
    const std::vector<double> lseD(runner.lse.begin(), runner.lse.end());
    const std::vector<double> naiveLseD(naiveResult->lse.begin(), naiveResult->lse.end());
    res.o = compare(halfToDoubles(runner.o, type), halfToDoubles(naiveResult->o, type), ref.o,
                    kForwardLimit);
    res.lse = compare(lseD, naiveLseD, ref.lse, kForwardLimit);
    res.rows = static_cast<int64_t>(lseSize);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t i = 0; i < Nq; ++i) {
          const size_t at = static_cast<size_t>((b * Hq + h) * Nq + i);
          if (!std::isinf(ref.lse[at]))
            continue;
          ++res.maskedRows;
          bool exact = std::isinf(runner.lse[at]) && runner.lse[at] < 0;
          const size_t rowStart = static_cast<size_t>(((b * Nq + i) * Hq + h) * D);
          bool zeroDq = true;
          for (int64_t c = 0; c < D; ++c) {
            exact &= npy::halfToFloat(runner.o[rowStart + c], type) == 0.0f;
            if (f.backward)
              zeroDq &= npy::halfToFloat(runner.dq[rowStart + c], type) == 0.0f;
          }
          res.maskedWrong += !exact;
          res.maskedDqWrong += !zeroDq;
        }
    res.passed = res.o.ok && res.lse.ok && res.maskedWrong == 0;
    if (f.backward) {
      naive::Gradients naiveGrads =
          naive::backward(s.mask, shape, type, scale, runner.q.data(), runner.k.data(),
                          runner.v.data(), runner.dO.data(), tokens, threads);
      reference::Gradients refGrads = naive::parallelReferenceBackward(
          s.mask, shape, s.scale, qD, kD, vD, halfToDoubles(runner.dO, type), tokens, threads);
      res.dq = compare(halfToDoubles(runner.dq, type), halfToDoubles(naiveGrads.dq, type),
                       refGrads.dq, kGradientLimit);
      res.dk = compare(halfToDoubles(runner.dk, type), halfToDoubles(naiveGrads.dk, type),
                       refGrads.dk, kGradientLimit);
      res.dv = compare(halfToDoubles(runner.dv, type), halfToDoubles(naiveGrads.dv, type),
                       refGrads.dv, kGradientLimit);
      res.passed &= res.dq.ok && res.dk.ok && res.dv.ok && res.maskedDqWrong == 0;
    }
  }

  // Outputs, all computed: write them, all or nothing (each file atomically;
  // on a failure the files and directories this run created are removed).
  struct OutputFile {
    std::string dir, name;
    npy::Array array;
  };
  std::vector<OutputFile> outputs;
  if (!f.writeInputs.empty()) {
    outputs.push_back(
        {f.writeInputs, "q.npy", npy::fromFloats({B, Nq, Hq, D}, halfToFloats(runner.q, type))});
    outputs.push_back(
        {f.writeInputs, "k.npy", npy::fromFloats({B, Nk, Hkv, D}, halfToFloats(runner.k, type))});
    outputs.push_back(
        {f.writeInputs, "v.npy", npy::fromFloats({B, Nk, Hkv, D}, halfToFloats(runner.v, type))});
    if (f.backward)
      outputs.push_back({f.writeInputs, "do.npy",
                         npy::fromFloats({B, Nq, Hq, D}, halfToFloats(runner.dO, type))});
  }
  if (!f.save.empty()) {
    outputs.push_back(
        {f.save, "o.npy", npy::fromFloats({B, Nq, Hq, D}, halfToFloats(runner.o, type))});
    outputs.push_back({f.save, "lse.npy", npy::fromFloats({B, Hq, Nq}, runner.lse)});
    if (f.backward) {
      outputs.push_back(
          {f.save, "dq.npy", npy::fromFloats({B, Nq, Hq, D}, halfToFloats(runner.dq, type))});
      outputs.push_back(
          {f.save, "dk.npy", npy::fromFloats({B, Nk, Hkv, D}, halfToFloats(runner.dk, type))});
      outputs.push_back(
          {f.save, "dv.npy", npy::fromFloats({B, Nk, Hkv, D}, halfToFloats(runner.dv, type))});
    }
  }
  std::vector<std::string> createdDirs, writtenFiles;
  auto undo = [&](const std::string &message) {
    std::error_code ignored;
    for (auto it = writtenFiles.rbegin(); it != writtenFiles.rend(); ++it)
      fs::remove(*it, ignored);
    for (auto it = createdDirs.rbegin(); it != createdDirs.rend(); ++it)
      fs::remove(*it, ignored);
    return fail(message);
  };
  for (const OutputFile &out : outputs) {
    // The missing ancestors of the directory, outermost first.
    std::vector<std::string> missing;
    std::error_code ec;
    for (fs::path d = out.dir; !d.empty() && !fs::exists(d, ec); d = d.parent_path()) {
      missing.insert(missing.begin(), d.string());
      if (d == d.parent_path())
        break;
    }
    for (const std::string &d : missing) {
      if (fs::create_directory(d, ec); ec)
        return undo(out.dir + ": cannot create directory: " + ec.message());
      createdDirs.push_back(d);
    }
  }
  for (const OutputFile &out : outputs) {
    const std::string path = joinPath(out.dir, out.name);
    std::string error;
    if (!npy::writeFile(path, out.array, error))
      return undo(error);
    writtenFiles.push_back(path);
  }
  res.saved = writtenFiles;

  // Report.
  const double usefulFlops = 4.0 * static_cast<double>(B * Hq * D) *
                             static_cast<double>(res.allowedPairs) *
                             (f.backward ? kBackwardFlopFactor : 1.0);
  auto throughput = [&](double seconds) { return usefulFlops / seconds * 1e-9; };
  if (f.json) {
    cli::JsonWriter j(std::cout);
    j.object([&] {
      j.attribute("spec", s.name);
      j.attribute("target", f.target);
      j.attribute("dtype", dtypeName);
      j.attribute("head_dim", D);
      j.attributeObject("heads", [&] {
        j.attribute("query", Hq);
        j.attribute("kv", Hkv);
      });
      j.attribute("batch", B);
      j.attributeObject("seq_len", [&] {
        j.attribute("q", Nq);
        j.attribute("kv", Nk);
      });
      j.attribute("scale", s.scale);
      j.attribute("mask", mask::toString(s.mask));
      if (isPackage)
        j.attribute("package", f.input);
      if (f.backward)
        j.attribute("backward", true);
      j.attributeObject("inputs", [&] {
        if (res.inputs == "random") {
          j.attribute("source", "random");
          j.attribute("seed", static_cast<int64_t>(f.seed));
        } else {
          j.attribute("source", "npy");
          j.attribute("dir", res.inputs);
        }
      });
      if (res.hasRuntimeTokens)
        j.attributeArray("global_tokens", [&] {
          for (int64_t t : res.tokens)
            j.value(t);
        });
      j.attributeObject("kernel", [&] {
        j.attributeObject("tile", [&] {
          j.attribute("block_m", res.blockM);
          j.attribute("block_n", res.blockN);
        });
        j.attribute("schedule", res.schedule);
        j.attribute("from_cache", res.fromCache);
        j.attribute("build_seconds", res.buildSeconds);
        j.attribute("run_seconds", res.runSeconds);
        j.attribute("threads", threads);
        if (cuda)
          j.attribute("device", res.device);
      });
      auto comparison = [&](const char *key, const Comparison &c) {
        j.attributeObject(key, [&] {
          j.attribute("attnc", c.attnc);
          j.attribute("naive", c.naive);
          j.attribute("ok", c.ok);
        });
      };
      if (res.checked)
        j.attributeObject("check", [&] {
          j.attribute("passed", res.passed);
          j.attribute("limit", kForwardLimit);
          comparison("o", res.o);
          comparison("lse", res.lse);
          j.attribute("rows", res.rows);
          j.attribute("fully_masked_rows", res.maskedRows);
          j.attribute("fully_masked_rows_wrong", res.maskedWrong);
          if (f.backward)
            j.attributeObject("gradients", [&] {
              j.attribute("limit", kGradientLimit);
              comparison("dq", res.dq);
              comparison("dk", res.dk);
              comparison("dv", res.dv);
              j.attribute("fully_masked_rows_dq_wrong", res.maskedDqWrong);
            });
        });
      if (res.benched)
        j.attributeObject("bench", [&] {
          j.attribute("runs", res.runs);
          j.attribute("allowed_pairs", res.allowedPairs);
          if (f.backward)
            j.attribute("timed", "forward+backward");
          j.attributeObject("attnc", [&] {
            j.attribute("median_ms", res.attncMedian * 1e3);
            j.attribute("min_ms", res.attncMin * 1e3);
            j.attribute("gflops", throughput(res.attncMedian));
            if (res.attncPeak >= 0)
              j.attribute("peak_bytes", res.attncPeak);
            else
              j.attributeNull("peak_bytes");
            j.attribute("output_bytes", res.attncOutputBytes);
          });
          if (res.benchedNaive) {
            j.attributeObject("naive", [&] {
              j.attribute("median_ms", res.naiveMedian * 1e3);
              j.attribute("min_ms", res.naiveMin * 1e3);
              j.attribute("gflops", throughput(res.naiveMedian));
              if (res.naivePeak >= 0)
                j.attribute("peak_bytes", res.naivePeak);
              else
                j.attributeNull("peak_bytes");
              j.attribute("materialized_bytes", res.naiveMaterialized);
            });
            j.attribute("speedup", res.naiveMedian / res.attncMedian);
          }
        });
      if (!res.saved.empty())
        j.attributeArray("saved", [&] {
          for (const std::string &path : res.saved)
            j.value(path);
        });
    });
    std::cout << "\n";
  } else {
    std::ostream &os = std::cout;
    os << s.name << ": " << dtypeName << ", head_dim " << D << ", heads " << Hq << " query / "
       << Hkv << " kv, batch " << B << ", q " << Nq << " x kv " << Nk << "\n";
    os << "  mask: " << mask::toString(s.mask) << "\n";
    if (isPackage)
      os << "  package: " << f.input << "\n";
    if (res.inputs == "random")
      os << "  inputs: random (standard normal, seed " << f.seed << ")\n";
    else
      for (const std::string &note : res.inputNotes)
        os << "  inputs: " << res.inputs << "/" << note << "\n";
    if (res.hasRuntimeTokens) {
      os << "  global tokens (launch time):";
      if (res.tokens.empty())
        os << " none (--global-tokens)";
      for (int64_t t : res.tokens)
        os << " " << t;
      os << "\n";
    }
    os << "  kernel: " << f.target << ", tile " << res.blockM << "x" << res.blockN << ", "
       << (res.schedule.empty() ? "?" : res.schedule) << " schedule; "
       << (res.fromCache ? "from the disk cache" : "compiled") << " in "
       << format("%.2f", res.buildSeconds) << " s\n";
    os << "  run: " << format("%.3f", res.runSeconds * 1e3) << " ms ";
    if (f.backward)
      os << "forward+backward ";
    if (cuda)
      os << "(" << res.device << ", with the launch and table setup)\n";
    else
      os << "(" << threads << (threads == 1 ? " thread)\n" : " threads)\n");
    auto line = [&](const char *what, const Comparison &c) {
      os << "  " << what << "  attnc " << sci(c.attnc) << "  naive " << sci(c.naive) << "  "
         << (c.ok ? "ok" : "FAIL") << "\n";
    };
    if (res.checked) {
      os << "check: relative L2 error against the float64 reference (attnc <= 2x naive "
         << dtypeName << ")\n";
      line("O  ", res.o);
      line("LSE", res.lse);
      os << "  fully masked rows: " << res.maskedRows << " of " << res.rows;
      if (res.maskedRows)
        os << (res.maskedWrong
                   ? ", " + std::to_string(res.maskedWrong) + " not O = 0, LSE = -inf: FAIL"
                   : ", all O = 0, LSE = -inf: ok");
      os << "\n";
      if (f.backward) {
        os << "check: gradients, relative L2 error against the float64 reference (attnc <= 3x "
              "naive "
           << dtypeName << ")\n";
        line("dQ ", res.dq);
        line("dK ", res.dk);
        line("dV ", res.dv);
        if (res.maskedRows)
          os << "  fully masked rows: "
             << (res.maskedDqWrong ? std::to_string(res.maskedDqWrong) + " not dQ = 0: FAIL"
                                   : std::string("all dQ = 0: ok"))
             << "\n";
      }
      os << "check: " << (res.passed ? "PASS" : "FAIL") << "\n";
    }
    if (res.benched) {
      const char *what = f.backward ? "forward+backward, " : "";
      if (cuda) {
        os << "bench: " << what << "median of " << res.runs << " runs after " << kCudaWarmups
           << " warm-ups, CUDA events on " << res.device << ", " << res.allowedPairs
           << " allowed pairs per head\n";
        os << "  attnc  " << format("%10.3f", res.attncMedian * 1e3) << " ms (min "
           << format("%.3f", res.attncMin * 1e3) << ")  "
           << format("%8.2f", throughput(res.attncMedian) * 1e-3) << " TFLOP/s useful\n";
      } else {
        os << "bench: " << what << "median of " << res.runs << " runs after a warm-up, " << threads
           << (threads == 1 ? " thread, " : " threads, ") << res.allowedPairs
           << " allowed pairs per head\n";
        auto peak = [&](int64_t bytes) {
          return bytes >= 0 ? std::to_string(bytes) + " bytes (" +
                                  humanBytes(static_cast<double>(bytes)) + ")"
                            : std::string("n/a");
        };
        os << "  attnc  " << format("%10.3f", res.attncMedian * 1e3) << " ms  "
           << format("%8.2f", throughput(res.attncMedian)) << " GFLOP/s  peak memory "
           << peak(res.attncPeak) << "\n";
        os << "  naive  " << format("%10.3f", res.naiveMedian * 1e3) << " ms  "
           << format("%8.2f", throughput(res.naiveMedian)) << " GFLOP/s  peak memory "
           << peak(res.naivePeak) << ", S, P and mask materialized: " << res.naiveMaterialized
           << " bytes (" << humanBytes(static_cast<double>(res.naiveMaterialized)) << ")\n";
        os << "  attnc is " << format("%.2f", res.naiveMedian / res.attncMedian)
           << "x as fast as the naive\n";
      }
    }
    for (const std::string &path : res.saved)
      os << "wrote " << path << "\n";
  }
  return res.passed ? 0 : 2;
}
