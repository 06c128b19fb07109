//===- CudaCompiler.h - CUDA kernels: compile, cache, load ------*- C++ -*-===//
//
// Turns a CUDA package's source into a loaded module: the device is the one
// of the calling thread's current context, else device 0 (its primary
// context); its compute capability picks the architecture; a cache hit hands
// the cached cubin to cuModuleLoadData, a miss compiles it with NVRTC and
// publishes it. A package whose launch.arch is arch-specific (sm_90a) is
// compiled for that target, and only on a GPU of its compute capability
// (TargetArch.h). The disk cache is the CPU target's (DiskCache.h): same
// directory, same sealed entries, `<name>-cuda-sm90-<key>.cubin` (sm90a for
// sm_90a).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_CUDACOMPILER_H
#define ATTNC_RUNTIME_LIB_CUDACOMPILER_H

#include "CudaDriver.h"
#include "Package.h"

#include "attnc/runtime/attnrt.h"

#include <memory>

namespace attnc::runtime {

/// A CUDA kernel loaded into a context. Owns the module and, when it took
/// one, a reference to the device's primary context; unloads and releases
/// them when destroyed (after the context's work is done).
class CudaModule {
public:
  explicit CudaModule(const cuda::Driver &driver) : driver(driver) {}
  ~CudaModule();
  CudaModule(const CudaModule &) = delete;
  CudaModule &operator=(const CudaModule &) = delete;

  const cuda::Driver &driver;
  cuda::CUdevice device = 0;
  cuda::CUcontext context = nullptr;
  bool retainedPrimary = false; ///< context is device's primary context, retained by us
  cuda::CUmodule module = nullptr;
  cuda::CUfunction function = nullptr; ///< the entry point
  /// The backward kernels (PackageData's preprocess, dkdv, dq, dqConvert);
  /// null where the package has none.
  cuda::CUfunction preprocess = nullptr, dkdv = nullptr, dq = nullptr, dqConvert = nullptr,
                   dkdvConvert = nullptr;
  std::string deviceArch; ///< the GPU's architecture, from its compute capability: "sm_90"
  std::string arch;       ///< the one compiled for: deviceArch, or launch.arch ("sm_90a")
  bool fromCache = false;              ///< loaded from an existing cache entry
};

/// Compiles or loads the package's CUDA kernel. `options` may be null (its
/// `cxx` is ignored). Throws Error: ATTNRT_ERROR_UNSUPPORTED without a driver
/// or a GPU, when the package's launch.arch rules the GPU out, or when the
/// device cannot give launch.shared_bytes;
/// ATTNRT_ERROR_COMPILE with NVRTC's log when it fails.
std::unique_ptr<CudaModule> loadCudaKernel(const PackageData &package,
                                           const attnrt_compile_options *options);

/// attnrt_nvrtc_check: compiles the package for `arch` (null: what
/// loadCudaKernel would compile for on the current GPU) with ptxas's verbose
/// report and reads the entry's figures. Throws Error.
attnrt_nvrtc_report nvrtcCheck(const PackageData &package, const char *arch);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_CUDACOMPILER_H
