//===- attnc_cpu.h - Helpers of generated CPU kernels -----------*- C++ -*-===//
//
// Small, documented helpers that every kernel emitted by attnc's emit-cpp
// includes: element conversions, the base-2 exponential and a worker pool.
// The runtime writes this header next to the kernel source it compiles.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_CPU_H
#define ATTNC_CPU_H

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace attnc_cpu {

/// log2(e): exp(x) == exp2(x * kLog2e).
constexpr float kLog2e = 1.4426950408889634f;
/// ln(2): log(x) == log2(x) * kLn2.
constexpr float kLn2 = 0.6931471805599453f;

/// bfloat16 bits -> float (exact).
inline float bf16ToFloat(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// float -> bfloat16 bits, rounding to nearest even (NaN stays NaN).
inline uint16_t floatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

/// IEEE half bits -> float (exact, subnormals included).
inline float fp16ToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  uint32_t u;
  if (exponent == 0x1f) {
    u = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    u = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    u = sign;
  } else { // subnormal: normalize
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

/// float -> IEEE half bits, rounding to nearest even; overflow gives inf.
inline uint16_t floatToFp16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t absBits = u & 0x7fffffffu;
  if (absBits > 0x7f800000u) // NaN
    return static_cast<uint16_t>(sign | 0x7e00u);
  if (absBits >= 0x477ff000u) // rounds to >= 65520: inf
    return static_cast<uint16_t>(sign | 0x7c00u);
  if (absBits < 0x38800000u) { // below the smallest normal: subnormal or zero
    float a;
    std::memcpy(&a, &absBits, sizeof a);
    // a / 2^-24 rounded to nearest even is the subnormal mantissa.
    float scaled = a * 16777216.0f;
    uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t rounded = absBits + 0xfffu + ((absBits >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

/// Element `i` of a bf16 or fp16 buffer as float.
template <bool IsBf16> inline float load(const uint16_t *p, int64_t i) {
  return IsBf16 ? bf16ToFloat(p[i]) : fp16ToFloat(p[i]);
}

/// Stores `v` rounded to bf16 or fp16.
template <bool IsBf16> inline void store(uint16_t *p, int64_t i, float v) {
  p[i] = IsBf16 ? floatToBf16(v) : floatToFp16(v);
}

/// Runs body(item) for item in [0, items) on `threads` workers (>= 1).
template <typename Body> void parallelFor(int64_t items, int threads, const Body &body) {
  if (threads <= 1 || items <= 1) {
    for (int64_t i = 0; i < items; ++i)
      body(i);
    return;
  }
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    for (int64_t i = next++; i < items; i = next++)
      body(i);
  };
  std::vector<std::thread> pool;
  int n = static_cast<int>(std::min<int64_t>(threads, items));
  for (int t = 1; t < n; ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &t : pool)
    t.join();
}

} // namespace attnc_cpu

#endif // ATTNC_CPU_H
