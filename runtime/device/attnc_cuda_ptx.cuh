//===- attnc_cuda_ptx.cuh - PTX wrappers of generated CUDA kernels -*- CUDA -*-===//
//
// The few sm_80+ instructions the flash loop is built from, one inline-asm
// wrapper each: cp.async (global -> shared copies), ldmatrix (shared -> mma
// fragments), mma.sync m16n8k16 (bf16/fp16 in, f32 accumulate), the packing
// conversions f32 -> bf16x2/f16x2 (and back), the approximate base-2
// exponential and logarithm of the special function unit, and for the
// backward pass 4-byte cp.async and float32 red.global.add (an 8-byte vector
// on sm_90), and the sm_90 proxy fence that wgmma kernels need
// (attnc_cuda_sm90.cuh holds the wgmma wrappers).
//
// Compiles under nvcc and NVRTC (no host header; <cuda/std/cstdint> needs
// -I<cuda>/include/cccl under NVRTC).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_CUDA_PTX_CUH
#define ATTNC_CUDA_PTX_CUH

#include <cuda/std/cstdint>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "attnc CUDA kernels need sm_80 or later (cp.async, ldmatrix, bf16 mma.sync)"
#endif

namespace attnc_cuda {

using ::cuda::std::int64_t;
using ::cuda::std::uint16_t;
using ::cuda::std::uint32_t;
using ::cuda::std::uint64_t;

/// Bytes moved by one cp.async and read per row by one ldmatrix 8x8 matrix.
constexpr int kChunkBytes = 16;

/// The shared-memory address (PTX .shared window) of a generic pointer into shared memory.
__device__ __forceinline__ uint32_t sharedAddress(const void *pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

/// Starts an asynchronous 16-byte copy global -> shared (cached in L2 only); zero-fills when !valid.
__device__ __forceinline__ void cpAsync16(uint32_t sharedDst, const void *globalSrc, bool valid) {
  const int sourceBytes = valid ? kChunkBytes : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sharedDst), "l"(globalSrc),
               "r"(sourceBytes)
               : "memory");
}

/// Closes the group of cp.async copies started since the last commit.
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

/// Waits until at most `Pending` committed cp.async groups of this thread are still in flight.
template <int Pending> __device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

/// Loads four 8x8 b16 matrices from shared memory (lane i addresses row i % 8 of matrix i / 8).
__device__ __forceinline__ void ldmatrixX4(uint32_t (&r)[4], uint32_t sharedAddr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(sharedAddr));
}

/// ldmatrixX4, each 8x8 matrix transposed (row-major V rows -> the mma B operand of P V).
__device__ __forceinline__ void ldmatrixX4Trans(uint32_t (&r)[4], uint32_t sharedAddr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(sharedAddr));
}

/// D += A B for one m16n8k16 tensor-core tile: A (16x16, row), B (16x8, col), bf16 or fp16 in, f32 D.
template <bool IsBf16>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  if constexpr (IsBf16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

/// Two floats rounded to nearest even as packed bf16x2 or f16x2 (`lo` in the low half).
template <bool IsBf16> __device__ __forceinline__ uint32_t packFloat2(float lo, float hi) {
  uint32_t packed;
  if constexpr (IsBf16)
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(packed) : "f"(hi), "f"(lo));
  else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(packed) : "f"(hi), "f"(lo));
  return packed;
}

/// Starts an asynchronous 4-byte copy global -> shared (cached in L1 and L2); zero-fills when !valid.
__device__ __forceinline__ void cpAsync4(uint32_t sharedDst, const void *globalSrc, bool valid) {
  const int sourceBytes = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(sharedDst), "l"(globalSrc),
               "r"(sourceBytes)
               : "memory");
}

/// Two packed bf16 or f16 values (`lo` in the low half) as floats.
template <bool IsBf16> __device__ __forceinline__ void unpackFloat2(uint32_t packed, float &lo, float &hi) {
  if constexpr (IsBf16) {
    lo = __uint_as_float(packed << 16);
    hi = __uint_as_float(packed & 0xffff0000u);
  } else {
    asm("{\n .reg .f16 l, h;\n mov.b32 {l, h}, %2;\n cvt.f32.f16 %0, l;\n cvt.f32.f16 %1, h;\n}\n"
        : "=f"(lo), "=f"(hi)
        : "r"(packed));
  }
}

/// *address += (lo, hi) without a result (red.global): one 8-byte vector reduction on sm_90, two
/// 4-byte ones before. `address` is 8-byte aligned global memory.
__device__ __forceinline__ void redAddFloat2(float *address, float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(address), "f"(lo), "f"(hi)
               : "memory");
#else
  asm volatile("red.global.add.f32 [%0], %1;\n" ::"l"(address), "f"(lo) : "memory");
  asm volatile("red.global.add.f32 [%0], %1;\n" ::"l"(address + 1), "f"(hi) : "memory");
#endif
}

/// Orders this thread's earlier generic-proxy shared-memory writes (st.shared, cp.async) before
/// later async-proxy reads of them (wgmma operands); pair it with a barrier. sm_90 and later.
__device__ __forceinline__ void fenceProxyAsyncShared() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

/// 2^x on the special function unit (ex2.approx.ftz: 2^-inf = +0, ~2 ulp).
__device__ __forceinline__ float fastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

/// log2(x) on the special function unit (lg2.approx.ftz, x > 0).
__device__ __forceinline__ float fastLog2(float x) {
  float y;
  asm("lg2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

} // namespace attnc_cuda

#endif // ATTNC_CUDA_PTX_CUH
