//===- CudaDriver.cpp - The CUDA driver API, loaded at first use ----------===//
//
// The library is opened once per process and never closed (kernels, tables
// and contexts may outlive any one caller). The outcome, a driver or the
// reason there is none, is kept: a machine without a GPU pays for the failed
// dlopen once.
//
//===----------------------------------------------------------------------===//

#include "CudaDriver.h"

#include "Error.h"

#include <dlfcn.h>
#include <mutex>

namespace attnc::runtime::cuda {

namespace {

/// The only name the runtime opens: the driver's SONAME, installed with the
/// NVIDIA driver (the toolkit's stubs/libcuda.so is a link-time stub).
constexpr const char *kDriverLibrary = "libcuda.so.1";

/// The result of the one attempt to load the driver.
struct Loaded {
  Driver driver{};
  bool ok = false;
  std::string problem;
};

/// Resolves `name` into `slot`; returns false (and says why) if it is missing.
template <typename Fn>
bool resolve(void *library, const char *name, Fn &slot, std::string &problem) {
  slot = reinterpret_cast<Fn>(::dlsym(library, name));
  if (!slot)
    problem = std::string("the CUDA driver ") + kDriverLibrary + " lacks " + name +
              " (a driver older than CUDA 11.0?)";
  return slot != nullptr;
}

Loaded load() {
  Loaded loaded;
  void *library = ::dlopen(kDriverLibrary, RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    loaded.problem = std::string("no CUDA driver (") + kDriverLibrary + " not found)";
    return loaded;
  }
  Driver &d = loaded.driver;
  std::string &why = loaded.problem;
  bool ok = resolve(library, "cuInit", d.cuInit, why) &&
            resolve(library, "cuGetErrorName", d.cuGetErrorName, why) &&
            resolve(library, "cuGetErrorString", d.cuGetErrorString, why) &&
            resolve(library, "cuDeviceGet", d.cuDeviceGet, why) &&
            resolve(library, "cuDeviceGetAttribute", d.cuDeviceGetAttribute, why) &&
            resolve(library, "cuDevicePrimaryCtxRetain", d.cuDevicePrimaryCtxRetain, why) &&
            resolve(library, "cuDevicePrimaryCtxRelease_v2", d.cuDevicePrimaryCtxRelease, why) &&
            resolve(library, "cuCtxGetCurrent", d.cuCtxGetCurrent, why) &&
            resolve(library, "cuCtxSetCurrent", d.cuCtxSetCurrent, why) &&
            resolve(library, "cuCtxGetDevice", d.cuCtxGetDevice, why) &&
            resolve(library, "cuCtxSynchronize", d.cuCtxSynchronize, why) &&
            resolve(library, "cuModuleLoadData", d.cuModuleLoadData, why) &&
            resolve(library, "cuModuleUnload", d.cuModuleUnload, why) &&
            resolve(library, "cuModuleGetFunction", d.cuModuleGetFunction, why) &&
            resolve(library, "cuFuncSetAttribute", d.cuFuncSetAttribute, why) &&
            resolve(library, "cuLaunchKernel", d.cuLaunchKernel, why) &&
            resolve(library, "cuMemAlloc_v2", d.cuMemAlloc, why) &&
            resolve(library, "cuMemFree_v2", d.cuMemFree, why) &&
            resolve(library, "cuMemcpyHtoD_v2", d.cuMemcpyHtoD, why) &&
            resolve(library, "cuPointerGetAttributes", d.cuPointerGetAttributes, why) &&
            resolve(library, "cuStreamSynchronize", d.cuStreamSynchronize, why) &&
            resolve(library, "cuMemAllocAsync", d.cuMemAllocAsync, why) &&
            resolve(library, "cuMemFreeAsync", d.cuMemFreeAsync, why);
  if (!ok)
    return loaded;
  if (CUresult result = d.cuInit(0)) {
    loaded.problem = "no GPU: cuInit failed: " + resultText(d, result);
    return loaded;
  }
  loaded.ok = true;
  return loaded;
}

} // namespace

const Driver *loadDriver(std::string &problem) {
  static std::once_flag once;
  static Loaded loaded;
  std::call_once(once, [] { loaded = load(); });
  problem = loaded.problem;
  return loaded.ok ? &loaded.driver : nullptr;
}

std::string resultText(const Driver &driver, CUresult result) {
  const char *name = nullptr, *text = nullptr;
  if (driver.cuGetErrorName(result, &name) != CUDA_SUCCESS || !name)
    return "CUDA driver error " + std::to_string(result);
  std::string out = name;
  if (driver.cuGetErrorString(result, &text) == CUDA_SUCCESS && text)
    out += std::string(" (") + text + ")";
  return out;
}

ContextGuard::ContextGuard(const Driver &driver, CUcontext context) : driver_(driver) {
  if (CUresult result = driver_.cuCtxGetCurrent(&previous_))
    fail(ATTNRT_ERROR_KERNEL, "cuCtxGetCurrent failed: " + resultText(driver_, result));
  if (previous_ == context)
    return;
  if (CUresult result = driver_.cuCtxSetCurrent(context))
    fail(ATTNRT_ERROR_KERNEL,
         "cuCtxSetCurrent (the kernel's context) failed: " + resultText(driver_, result));
  switched_ = true;
}

ContextGuard::~ContextGuard() {
  if (switched_)
    driver_.cuCtxSetCurrent(previous_);
}

} // namespace attnc::runtime::cuda
