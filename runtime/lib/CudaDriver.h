//===- CudaDriver.h - The CUDA driver API, loaded at first use --*- C++ -*-===//
//
// libattnrt never links libcuda: the driver is dlopen'ed ("libcuda.so.1") the
// first time a CUDA kernel is created, and only the functions the runtime
// calls are resolved. The few driver types and enum values it needs are
// declared here (values as in CUDA's cuda.h), so the runtime builds without
// the CUDA headers and runs without a GPU: a machine without the driver or a
// device gets a readable "no CUDA driver" or "no GPU" message.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_CUDADRIVER_H
#define ATTNC_RUNTIME_LIB_CUDADRIVER_H

#include <cstddef>
#include <string>

namespace attnc::runtime::cuda {

// Types of the driver API (cuda.h), opaque where the runtime never looks inside.
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;

// The enum values the runtime passes or compares (cuda.h's).
constexpr CUresult CUDA_SUCCESS = 0;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
constexpr int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
constexpr int CU_POINTER_ATTRIBUTE_MEMORY_TYPE = 2;
constexpr int CU_POINTER_ATTRIBUTE_IS_MANAGED = 8;
constexpr unsigned CU_MEMORYTYPE_HOST = 1;

/// Dynamic shared memory a kernel gets without opting in (48 KiB).
constexpr long long kDefaultDynamicSharedBytes = 48 * 1024;

/// The driver functions the runtime calls, resolved from libcuda.so.1 (by
/// their versioned symbol names where cuda.h maps them: cuMemAlloc_v2, ...).
struct Driver {
  CUresult (*cuInit)(unsigned flags);
  CUresult (*cuGetErrorName)(CUresult error, const char **name);
  CUresult (*cuGetErrorString)(CUresult error, const char **text);
  CUresult (*cuDeviceGet)(CUdevice *device, int ordinal);
  CUresult (*cuDeviceGetAttribute)(int *value, int attribute, CUdevice device);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *context, CUdevice device);
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice device);
  CUresult (*cuCtxGetCurrent)(CUcontext *context);
  CUresult (*cuCtxSetCurrent)(CUcontext context);
  CUresult (*cuCtxGetDevice)(CUdevice *device);
  CUresult (*cuCtxSynchronize)();
  CUresult (*cuModuleLoadData)(CUmodule *module, const void *image);
  CUresult (*cuModuleUnload)(CUmodule module);
  CUresult (*cuModuleGetFunction)(CUfunction *function, CUmodule module, const char *name);
  CUresult (*cuFuncSetAttribute)(CUfunction function, int attribute, int value);
  CUresult (*cuLaunchKernel)(CUfunction function, unsigned gridX, unsigned gridY, unsigned gridZ,
                             unsigned blockX, unsigned blockY, unsigned blockZ,
                             unsigned sharedBytes, CUstream stream, void **params, void **extra);
  CUresult (*cuMemAlloc)(CUdeviceptr *pointer, size_t bytes);
  CUresult (*cuMemFree)(CUdeviceptr pointer);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr destination, const void *source, size_t bytes);
  CUresult (*cuPointerGetAttributes)(unsigned count, int *attributes, void **values,
                                     CUdeviceptr pointer);
  CUresult (*cuStreamSynchronize)(CUstream stream);
  CUresult (*cuMemAllocAsync)(CUdeviceptr *pointer, size_t bytes, CUstream stream);
  CUresult (*cuMemFreeAsync)(CUdeviceptr pointer, CUstream stream);
};

/// The driver, loaded and initialized (cuInit(0)) once per process. Returns
/// null when there is none, `problem` saying why: "no CUDA driver
/// (libcuda.so.1 not found)", "no GPU: cuInit failed: CUDA_ERROR_NO_DEVICE
/// (no CUDA-capable device is detected)".
const Driver *loadDriver(std::string &problem);

/// "CUDA_ERROR_X (the driver's description)" for a driver result.
std::string resultText(const Driver &driver, CUresult result);

/// Makes `context` current on this thread for its lifetime, then restores
/// the thread's previous context (the caller's own CUDA state is left as it
/// was). Throws Error(ATTNRT_ERROR_KERNEL) if the driver refuses.
class ContextGuard {
public:
  ContextGuard(const Driver &driver, CUcontext context);
  ~ContextGuard();
  ContextGuard(const ContextGuard &) = delete;
  ContextGuard &operator=(const ContextGuard &) = delete;

private:
  const Driver &driver_;
  CUcontext previous_ = nullptr;
  bool switched_ = false;
};

} // namespace attnc::runtime::cuda

#endif // ATTNC_RUNTIME_LIB_CUDADRIVER_H
