//===- Validate.h - Forward arguments, checked before a launch --*- C++ -*-===//
//
// Every argument of attnrt_forward is checked against the package before the
// kernel runs: pointers, ranks, dtypes, shapes against the spec (batch,
// lengths, heads, head_dim), contiguity of the last dimension, and the
// runtime global-token list. Each error names the argument and what was
// expected:
//   q: expected 4 dimensions [batch, seq_len.q, 12, 64], got [2, 100, 12]
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_VALIDATE_H
#define ATTNC_RUNTIME_LIB_VALIDATE_H

#include "Package.h"

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

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_VALIDATE_H
