//===- CpuCompiler.h - CPU kernels: compile, cache, load --------*- C++ -*-===//
//
// Turns a package's C++ source into a loaded shared object: a cache hit
// loads the cached entry; a miss compiles the source with the system C++
// compiler in a private temporary directory, publishes the result to the
// cache and loads it. A corrupt entry is warned about and rebuilt; an
// unusable cache directory is warned about and the kernel runs from a private
// temporary copy.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_CPUCOMPILER_H
#define ATTNC_RUNTIME_LIB_CPUCOMPILER_H

#include "Package.h"

#include "attnc/runtime/attnrt.h"

namespace attnc::runtime {

/// A kernel's shared object, opened with dlopen.
struct LoadedKernel {
  void *handle = nullptr;             ///< dlclose it when done
  attnc_forward_fn forward = nullptr; ///< the entry point
  attnc_backward_fn backward = nullptr; ///< the backward entry point, if the package has one
  bool fromCache = false;             ///< loaded from an existing cache entry
};

/// Compiles or loads the package's CPU kernel. `options` may be null. Throws
/// Error (ATTNRT_ERROR_COMPILE with the compiler's log when it fails).
LoadedKernel loadCpuKernel(const PackageData &package, const attnrt_compile_options *options);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_CPUCOMPILER_H
