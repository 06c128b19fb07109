//===- host_jit.cpp - JIT an attention spec from a host application -------===//
//
// The whole path in one process: a spec string -> libattnc (kernel package in
// memory) -> libattnrt (compile, cache, run) -> O and LSE, checked against the
// float64 reference. Run it with no arguments; it exits non-zero on any error
// or if the result is off.
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
#include <vector>

namespace {

/// A sliding window of 64 keys on each side plus global token 0, GQA 8/2.
const char *kSpec = R"({
  "attnc": 1, "name": "host_jit_longformer", "dtype": "bf16", "head_dim": 64,
  "heads": {"query": 8, "kv": 2},
  "mask": {"union": [{"window": {"left": 64, "right": 64}}, {"global": {"tokens": [0]}}]}
})";

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

} // namespace

int main() {
  // 1. Compile the spec to a kernel package, in memory.
  attnc::CompileResult compiled = attnc::compileSpecText(kSpec, "host_jit.json", {});
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
  std::vector<uint16_t> q(B * N * HQ * D), k(B * N * HKV * D), v(B * N * HKV * D), o(q.size());
  std::vector<float> lse(B * HQ * N);
  for (auto *t : {&q, &k, &v})
    for (uint16_t &x : *t)
      x = toBf16(normal(rng));
  auto qv = attnrt::contiguousView(q.data(), ATTNC_DTYPE_BF16, {B, N, HQ, D});
  auto kv = attnrt::contiguousView(k.data(), ATTNC_DTYPE_BF16, {B, N, HKV, D});
  auto vv = attnrt::contiguousView(v.data(), ATTNC_DTYPE_BF16, {B, N, HKV, D});
  auto ov = attnrt::contiguousView(o.data(), ATTNC_DTYPE_BF16, {B, N, HQ, D});
  auto lv = attnrt::contiguousView(lse.data(), ATTNC_DTYPE_FP32, {B, HQ, N});
  if (attnrt::Status s = kernel->forward(qv, kv, vv, ov, lv); !s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
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
      spec.spec->mask, {B, N, N, HQ, HKV, D}, spec.spec->scale, widen(q), widen(k), widen(v));
  double errO = attnc::reference::relativeL2(widen(o), ref.o);
  double errLse = attnc::reference::relativeL2(std::vector<double>(lse.begin(), lse.end()), ref.lse);
  std::printf("host_jit: kernel %s; relative L2 error O %.2e, LSE %.2e\n",
              kernel->fromCache() ? "from the disk cache" : "compiled", errO, errLse);
  // bf16 output rounding alone is ~2^-9 relative; LSE is float32.
  return errO < 1e-2 && errLse < 1e-5 ? 0 : 1;
}
