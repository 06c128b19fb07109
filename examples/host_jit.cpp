//===- host_jit.cpp - JIT an attention spec from a host application -------===//
//
// The whole path in one process: a spec string -> libattnc (kernel package in
// memory) -> libattnrt (compile, cache, run) -> O and LSE, checked against the
// float64 reference.
//
//   host_jit                 CPU kernel (the system C++ compiler)
//   host_jit --target cuda   CUDA kernel (NVRTC), inputs and outputs in device
//                            memory (cudaMalloc)
//
// Exit status: 0 when the result matches the reference, 1 on any error or if
// the result is off, 77 (skip) for --target cuda where there is no GPU.
//
//===----------------------------------------------------------------------===//

#include "attnc/Compiler/Compiler.h"
#include "attnc/Reference/Reference.h"
#include "attnc/Spec/Spec.h"
#include "attnc/runtime/attnrt.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#if ATTNC_HOST_JIT_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace {

/// A sliding window of 64 keys on each side plus global token 0, GQA 8/2.
const char *kSpec = R"({
  "attnc": 1, "name": "host_jit_longformer", "dtype": "bf16", "head_dim": 64,
  "heads": {"query": 8, "kv": 2},
  "mask": {"union": [{"window": {"left": 64, "right": 64}}, {"global": {"tokens": [0]}}]}
})";

/// Exit status of a skipped run (ctest's SKIP_RETURN_CODE).
constexpr int kSkip = 77;

/// Largest relative L2 errors against the float64 reference: bf16 rounding
/// of O alone is ~2^-9 relative; LSE is computed and stored in float32.
constexpr double kMaxErrorO = 1e-2;
constexpr double kMaxErrorLse = 1e-5;

/// float -> bfloat16 bits, rounding to nearest even.
uint16_t toBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/// bfloat16 bits -> float.
double fromBf16(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// The five tensors of a forward call, in host memory.
struct HostTensors {
  std::vector<uint16_t> q, k, v, o; ///< bf16 bits, [B, N, H, D]
  std::vector<float> lse;           ///< [B, HQ, N]
};

/// The views a forward call takes.
struct Views {
  attnc_tensor_view q, k, v, o, lse;
};

/// Contiguous views of Q, O [b, n, hq, d], K, V [b, n, hkv, d] (bf16) and
/// LSE [b, hq, n] (float32) at the given host or device pointers.
Views makeViews(void *q, void *k, void *v, void *o, void *lse, int64_t b, int64_t n, int64_t hq,
                int64_t hkv, int64_t d) {
  return {attnrt::contiguousView(q, ATTNC_DTYPE_BF16, {b, n, hq, d}),
          attnrt::contiguousView(k, ATTNC_DTYPE_BF16, {b, n, hkv, d}),
          attnrt::contiguousView(v, ATTNC_DTYPE_BF16, {b, n, hkv, d}),
          attnrt::contiguousView(o, ATTNC_DTYPE_BF16, {b, n, hq, d}),
          attnrt::contiguousView(lse, ATTNC_DTYPE_FP32, {b, hq, n})};
}

#if ATTNC_HOST_JIT_HAVE_CUDA
/// Device memory of `bytes` bytes (cudaMalloc), freed on destruction.
struct DeviceBuffer {
  void *ptr = nullptr;
  cudaError_t status;
  explicit DeviceBuffer(size_t bytes) : status(cudaMalloc(&ptr, bytes)) {}
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
};

/// Why there is no usable GPU, or "" if there is one.
std::string noGpuReason() {
  int devices = 0;
  cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess)
    return cudaGetErrorString(status);
  return devices == 0 ? "no CUDA device" : "";
}

/// Copies the inputs to the device, runs the kernel there, copies O and LSE
/// back into `t`.
attnrt::Status runOnGpu(attnrt::Kernel &kernel, HostTensors &t, int64_t b, int64_t n, int64_t hq,
                        int64_t hkv, int64_t d) {
  auto bytesOf = [](const auto &vec) { return vec.size() * sizeof(vec[0]); };
  DeviceBuffer q(bytesOf(t.q)), k(bytesOf(t.k)), v(bytesOf(t.v)), o(bytesOf(t.o)),
      lse(bytesOf(t.lse));
  for (const DeviceBuffer *buffer : {&q, &k, &v, &o, &lse})
    if (buffer->status != cudaSuccess)
      return {ATTNRT_ERROR_KERNEL,
              std::string("cudaMalloc: ") + cudaGetErrorString(buffer->status)};
  cudaError_t status = cudaSuccess;
  for (auto [dst, src] : {std::pair{&q, &t.q}, std::pair{&k, &t.k}, std::pair{&v, &t.v}})
    if (status == cudaSuccess)
      status = cudaMemcpy(dst->ptr, src->data(), bytesOf(*src), cudaMemcpyHostToDevice);
  if (status != cudaSuccess)
    return {ATTNRT_ERROR_KERNEL, std::string("cudaMemcpy: ") + cudaGetErrorString(status)};
  Views views = makeViews(q.ptr, k.ptr, v.ptr, o.ptr, lse.ptr, b, n, hq, hkv, d);
  if (attnrt::Status s = kernel.forward(views.q, views.k, views.v, views.o, views.lse); !s)
    return s;
  status = cudaMemcpy(t.o.data(), o.ptr, bytesOf(t.o), cudaMemcpyDeviceToHost);
  if (status == cudaSuccess)
    status = cudaMemcpy(t.lse.data(), lse.ptr, bytesOf(t.lse), cudaMemcpyDeviceToHost);
  if (status != cudaSuccess)
    return {ATTNRT_ERROR_KERNEL, std::string("cudaMemcpy: ") + cudaGetErrorString(status)};
  return {};
}
#endif

int usage(const char *program) {
  std::fprintf(stderr, "usage: %s [--target cpu|cuda]\n", program);
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  std::string target = "cpu";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--target" && i + 1 < argc)
      target = argv[++i];
    else if (arg.rfind("--target=", 0) == 0)
      target = arg.substr(std::strlen("--target="));
    else
      return usage(argv[0]);
  }
  if (target != "cpu" && target != "cuda")
    return usage(argv[0]);
  if (target == "cuda") {
#if ATTNC_HOST_JIT_HAVE_CUDA
    if (std::string reason = noGpuReason(); !reason.empty()) {
      std::printf("host_jit: skipped: no GPU (%s)\n", reason.c_str());
      return kSkip;
    }
#else
    std::fprintf(stderr, "host_jit: built without the CUDA Toolkit: --target cuda is unavailable\n");
    return 1;
#endif
  }

  // 1. Compile the spec to a kernel package, in memory.
  attnc::CompileOptions options;
  options.target = target;
  attnc::CompileResult compiled = attnc::compileSpecText(kSpec, "host_jit.json", options);
  if (!compiled.ok()) {
    std::fprintf(stderr, "%s", compiled.diagnostics.c_str());
    return 1;
  }
  // 2. Load it into the runtime and build the kernel (or take it from the disk cache).
  auto package = attnrt::Package::fromMemory(compiled.package->manifestJson,
                                             compiled.package->source);
  if (!package) {
    std::fprintf(stderr, "%s\n", package.status().message().c_str());
    return 1;
  }
  auto kernel = attnrt::Kernel::create(*package);
  if (!kernel) {
    std::fprintf(stderr, "%s\n", kernel.status().message().c_str());
    return 1;
  }

  // 3. Run it on random inputs: B 2, 300 queries over 300 keys.
  const int64_t B = 2, N = 300, HQ = 8, HKV = 2, D = 64;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  HostTensors t;
  t.q.resize(B * N * HQ * D);
  t.k.resize(B * N * HKV * D);
  t.v.resize(B * N * HKV * D);
  t.o.resize(t.q.size());
  t.lse.resize(B * HQ * N);
  for (auto *x : {&t.q, &t.k, &t.v})
    for (uint16_t &e : *x)
      e = toBf16(normal(rng));
  attnrt::Status status;
  if (target == "cpu") {
    Views views = makeViews(t.q.data(), t.k.data(), t.v.data(), t.o.data(), t.lse.data(), B, N,
                            HQ, HKV, D);
    status = kernel->forward(views.q, views.k, views.v, views.o, views.lse);
  } else {
#if ATTNC_HOST_JIT_HAVE_CUDA
    status = runOnGpu(*kernel, t, B, N, HQ, HKV, D);
#endif
  }
  if (!status) {
    std::fprintf(stderr, "%s\n", status.message().c_str());
    return 1;
  }

  // 4. Check against the float64 reference on the same (bf16) inputs.
  attnc::spec::LoadResult spec = attnc::spec::loadSpecFromString(kSpec, "host_jit.json");
  auto widen = [](const std::vector<uint16_t> &t) {
    std::vector<double> out(t.size());
    for (size_t i = 0; i < t.size(); ++i)
      out[i] = fromBf16(t[i]);
    return out;
  };
  attnc::reference::Output ref = attnc::reference::forward(
      spec.spec->mask, {B, N, N, HQ, HKV, D}, spec.spec->scale, widen(t.q), widen(t.k), widen(t.v));
  double errO = attnc::reference::relativeL2(widen(t.o), ref.o);
  double errLse =
      attnc::reference::relativeL2(std::vector<double>(t.lse.begin(), t.lse.end()), ref.lse);
  bool ok = errO < kMaxErrorO && errLse < kMaxErrorLse;
  std::printf("host_jit: %s kernel %s; relative L2 error O %.2e, LSE %.2e: %s\n", target.c_str(),
              kernel->fromCache() ? "from the disk cache" : "compiled", errO, errLse,
              ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
