//===- gpu_numerics.cpp - Emitted CUDA kernels against float64 ------------===//
//
//   gpu_numerics PACKAGES_DIR [--quick]
//
// For every CUDA kernel package under PACKAGES_DIR (made by attnc
// --emit=package --target=cuda, lengths left to launch time), runs the kernel
// through libattnrt on random inputs for a list of (q, kv) lengths (odd
// lengths, q != kv both ways, fully masked rows), and checks O and LSE
// against the float64 reference with the error rule: relative L2 error <=
// 2x that of a naive implementation in the spec's dtype on the same inputs,
// and exactly O = 0, LSE = -inf on fully masked rows. Exits 77 (skip) when
// no GPU is present, 1 on any failure. Prints "N passed, M failed".
//
//===----------------------------------------------------------------------===//

#include "Naive.h"

#include "attnc/Reference/Reference.h"
#include "attnc/Spec/Spec.h"
#include "attnc/runtime/attnrt.hpp"

#include <cuda_runtime.h>
#include <dirent.h>

#include <algorithm>
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

double relL2(const std::vector<double> &got, const std::vector<double> &want) {
  return reference::relativeL2(got, want);
}

struct DeviceBuffer {
  void *ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) { cudaMalloc(&ptr, std::max<size_t>(bytes, 16)); }
  ~DeviceBuffer() { cudaFree(ptr); }
};

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: gpu_numerics PACKAGES_DIR [--quick]\n");
    return 1;
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("gpu_numerics: skipped: no GPU\n");
    return kSkip;
  }
  bool quick = argc > 2 && std::string(argv[2]) == "--quick";
  std::vector<std::pair<int64_t, int64_t>> lengths = {
      {1, 1}, {17, 17}, {127, 127}, {129, 129}, {1000, 1000}, {1023, 1023},
      {100, 300}, {300, 100}, {17, 1000}};
  if (quick)
    lengths = {{17, 17}, {129, 129}, {300, 100}};
  std::vector<std::string> packages;
  if (DIR *dir = opendir(argv[1])) {
    while (dirent *e = readdir(dir))
      if (e->d_name[0] != '.')
        packages.push_back(std::string(argv[1]) + "/" + e->d_name);
    closedir(dir);
  }
  std::sort(packages.begin(), packages.end());
  int threads = std::max(1u, std::thread::hardware_concurrency());
  int passed = 0, failed = 0;
  for (const std::string &dir : packages) {
    auto package = attnrt::Package::load(dir);
    if (!package) {
      std::printf("FAIL %s: %s\n", dir.c_str(), package.status().message().c_str());
      ++failed;
      continue;
    }
    auto kernel = attnrt::Kernel::create(*package);
    if (!kernel) {
      std::printf("FAIL %s: %s\n", dir.c_str(), kernel.status().message().c_str());
      ++failed;
      continue;
    }
    spec::LoadResult loaded = spec::loadSpecFromString(package->specJson(), dir + "/manifest.json");
    const spec::Spec &s = *loaded.spec;
    bool bf16 = s.dtype == spec::DType::BF16;
    bool runtimeGlobal = std::string(package->specJson()).find("\"runtime\"") != std::string::npos;
    for (auto [nq, nk] : lengths) {
      if (s.seqLenQ && (*s.seqLenQ != nq || *s.seqLenKV != nk))
        continue;
      const int64_t B = 1, HQ = s.queryHeads, HKV = s.kvHeads, D = s.headDim;
      std::mt19937 rng(static_cast<uint32_t>(nq * 7919 + nk));
      std::normal_distribution<float> normal;
      std::vector<uint16_t> q(B * nq * HQ * D), k(B * nk * HKV * D), v(k.size()), o(q.size());
      std::vector<float> lse(B * HQ * nq);
      for (auto *t : {&q, &k, &v})
        for (uint16_t &x : *t)
          x = toHalf(normal(rng), bf16);
      std::vector<int64_t> tokens;
      if (runtimeGlobal)
        tokens = {0, nk / 2, nk - 1};
      DeviceBuffer dq(q.size() * 2), dk(k.size() * 2), dv(v.size() * 2), dOut(o.size() * 2),
          dl(lse.size() * 4);
      cudaMemcpy(dq.ptr, q.data(), q.size() * 2, cudaMemcpyHostToDevice);
      cudaMemcpy(dk.ptr, k.data(), k.size() * 2, cudaMemcpyHostToDevice);
      cudaMemcpy(dv.ptr, v.data(), v.size() * 2, cudaMemcpyHostToDevice);
      // NaN everywhere first: an element the kernel does not write fails the check.
      cudaMemset(dOut.ptr, 0xff, o.size() * 2);
      cudaMemset(dl.ptr, 0xff, lse.size() * 4);
      attnc_dtype dt = bf16 ? ATTNC_DTYPE_BF16 : ATTNC_DTYPE_FP16;
      auto qv = attnrt::contiguousView(dq.ptr, dt, {B, nq, HQ, D});
      auto kv = attnrt::contiguousView(dk.ptr, dt, {B, nk, HKV, D});
      auto vv = attnrt::contiguousView(dv.ptr, dt, {B, nk, HKV, D});
      auto ov = attnrt::contiguousView(dOut.ptr, dt, {B, nq, HQ, D});
      auto lv = attnrt::contiguousView(dl.ptr, ATTNC_DTYPE_FP32, {B, HQ, nq});
      attnrt::Status st = kernel->forward(qv, kv, vv, ov, lv, tokens);
      char label[256];
      std::snprintf(label, sizeof label, "%s nq=%lld nk=%lld", s.name.c_str(),
                    static_cast<long long>(nq), static_cast<long long>(nk));
      if (!st) {
        std::printf("FAIL %s: %s\n", label, st.message().c_str());
        ++failed;
        continue;
      }
      cudaMemcpy(o.data(), dOut.ptr, o.size() * 2, cudaMemcpyDeviceToHost);
      cudaMemcpy(lse.data(), dl.ptr, lse.size() * 4, cudaMemcpyDeviceToHost);

      std::vector<double> qd(q.size()), kd(k.size()), vd(v.size());
      for (size_t i = 0; i < q.size(); ++i)
        qd[i] = fromHalf(q[i], bf16);
      for (size_t i = 0; i < k.size(); ++i) {
        kd[i] = fromHalf(k[i], bf16);
        vd[i] = fromHalf(v[i], bf16);
      }
      reference::Shape shape{B, nq, nk, HQ, HKV, D};
      reference::Output ref = naive::parallelReference(s.mask, shape, s.scale, qd, kd, vd,
                                                       runtimeGlobal ? &tokens : nullptr, threads);
      naive::Result nv = naive::forward(s.mask, shape, bf16 ? npy::HalfType::BF16 : npy::HalfType::FP16,
                                        static_cast<float>(s.scale), q.data(), k.data(), v.data(),
                                        runtimeGlobal ? &tokens : nullptr, threads, false);
      std::vector<double> od(o.size()), nod(o.size()), ld(lse.begin(), lse.end()),
          nld(nv.lse.begin(), nv.lse.end());
      for (size_t i = 0; i < o.size(); ++i) {
        od[i] = fromHalf(o[i], bf16);
        nod[i] = fromHalf(nv.o[i], bf16);
      }
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
      bool ok = eO <= 2 * nO + 1e-6 && eL <= 2 * nL + 1e-6 && maskedOk;
      std::printf("%s %-48s O %.2e (naive %.2e)  LSE %.2e (naive %.2e)  masked rows %lld%s\n",
                  ok ? "ok  " : "FAIL", label, eO, nO, eL, nL, static_cast<long long>(masked),
                  maskedOk ? "" : " NOT ZERO/-INF");
      (ok ? passed : failed)++;
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
