//===- Validate.h - Forward arguments, checked before a launch --*- C++ -*-===//
//
// Every argument of attnrt_forward is checked against the package before the
// kernel runs: pointers, ranks, dtypes, shapes against the spec (batch,
// lengths, heads, head_dim), contiguity of the last dimension, and the
// runtime global-token list; CUDA kernels add where the data lives, its
// alignment and the strides their vector loads need. Each error names the
// argument and what was expected:
//   q: expected 4 dimensions [batch, seq_len.q, 12, 64], got [2, 100, 12]
//   k: host pointer given, expected device memory (cudaMalloc)
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_VALIDATE_H
#define ATTNC_RUNTIME_LIB_VALIDATE_H

#include "Package.h"

#include <functional>

namespace attnc::runtime {

/// The lengths of a launch, read from validated arguments.
struct LaunchShape {
  int64_t batch = 0, nq = 0, nk = 0;
};

/// Validates the arguments of one forward call; throws Error
/// (ATTNRT_ERROR_INVALID_ARGUMENT) naming the first argument at fault.
LaunchShape validateForward(const PackageData &package, const attnc_tensor_view *q,
                            const attnc_tensor_view *k, const attnc_tensor_view *v,
                            const attnc_tensor_view *o, const attnc_tensor_view *lse,
                            const int64_t *globalTokens, int64_t numGlobalTokens);

/// Where a pointer's memory is, as the CUDA driver sees it.
/// validateForward's checks for the forward's tensors (o and lse as the
/// forward wrote them), then d_o like o and dq, dk, dv like q, k, v.
LaunchShape validateBackward(const PackageData &package, const attnc_tensor_view *q,
                             const attnc_tensor_view *k, const attnc_tensor_view *v,
                             const attnc_tensor_view *o, const attnc_tensor_view *lse,
                             const attnc_tensor_view *dO, const attnc_tensor_view *dq,
                             const attnc_tensor_view *dk, const attnc_tensor_view *dv,
                             const int64_t *globalTokens, int64_t numGlobalTokens);

enum class MemoryKind {
  Device,       ///< device or managed memory: a kernel may read it
  PageableHost, ///< unknown to CUDA: malloc, new, the stack
  PinnedHost,   ///< page-locked host memory (cudaMallocHost, cudaHostRegister)
};

/// The checks CUDA launches add to validateForward's (run after it): q, k,
/// v, o and lse data in device memory (asked of `memoryKind`) and 16-byte
/// aligned; the strides of q, k, v and o but the last multiples of 8
/// elements (16 bytes). Throws Error (ATTNRT_ERROR_INVALID_ARGUMENT).
void validateCudaTensors(const attnc_tensor_view &q, const attnc_tensor_view &k,
                         const attnc_tensor_view &v, const attnc_tensor_view &o,
                         const attnc_tensor_view &lse,
                         const std::function<MemoryKind(const void *)> &memoryKind);

/// validateCudaTensors' checks for the backward's d_o, dq, dk and dv.
void validateCudaGradients(const attnc_tensor_view &dO, const attnc_tensor_view &dq,
                           const attnc_tensor_view &dk, const attnc_tensor_view &dv,
                           const std::function<MemoryKind(const void *)> &memoryKind);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_VALIDATE_H
