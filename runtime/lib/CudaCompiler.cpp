//===- CudaCompiler.cpp - CUDA kernels: compile, cache, load --------------===//
//
// The cache key hashes the source, the NVRTC options (the architecture and
// the include path among them), the target, the architecture, the NVRTC
// version, the attnc version, the entry point and every in-memory header
// (names and texts), so that any change to what NVRTC sees is a new key.
//
//===----------------------------------------------------------------------===//

#include "CudaCompiler.h"

#include "DiskCache.h"
#include "Error.h"
#include "Files.h"
#include "Nvrtc.h"
#include "TargetArch.h"

#include <atomic>
#include <utility>
#include <vector>
#include <cerrno>
#include <cstdio>
#include <random>
#include <unistd.h>

namespace attnc::runtime {

namespace {

using namespace cuda;

/// The driver, or ATTNRT_ERROR_UNSUPPORTED naming the kernel and why there is none.
const Driver &requireDriver(const PackageData &package) {
  std::string problem;
  const Driver *driver = loadDriver(problem);
  if (!driver)
    fail(ATTNRT_ERROR_UNSUPPORTED,
         problem + ": cannot run CUDA kernel \"" + package.name + "\" on this machine");
  return *driver;
}

/// Fails with `status` and "WHAT: CUDA_ERROR_X (...)" unless `result` is success.
void check(const Driver &driver, CUresult result, attnrt_status status, const std::string &what) {
  if (result != CUDA_SUCCESS)
    fail(status, what + ": " + resultText(driver, result));
}

/// The device of the calling thread's current context, else device 0;
/// `current` is that context (null if none).
CUdevice currentDevice(const Driver &d, CUcontext &current) {
  check(d, d.cuCtxGetCurrent(&current), ATTNRT_ERROR_KERNEL, "cuCtxGetCurrent");
  CUdevice device = 0;
  if (current)
    check(d, d.cuCtxGetDevice(&device), ATTNRT_ERROR_KERNEL,
          "cuCtxGetDevice (the current context's device)");
  else
    check(d, d.cuDeviceGet(&device, 0), ATTNRT_ERROR_UNSUPPORTED, "no GPU: cuDeviceGet(0)");
  return device;
}

/// The module's context: the current one if it is not a primary context
/// (created by the caller), else the device's primary context, retained.
void selectContext(CudaModule &m) {
  const Driver &d = m.driver;
  CUcontext current = nullptr;
  m.device = currentDevice(d, current);
  CUcontext primary = nullptr;
  check(d, d.cuDevicePrimaryCtxRetain(&primary, m.device), ATTNRT_ERROR_KERNEL,
        "cuDevicePrimaryCtxRetain (device " + std::to_string(m.device) + ")");
  if (current && current != primary) {
    d.cuDevicePrimaryCtxRelease(m.device);
    m.context = current;
    return;
  }
  m.context = primary;
  m.retainedPrimary = true;
}

/// "sm_XY" from the device's compute capability X.Y.
std::string deviceArch(const Driver &d, CUdevice device) {
  int major = 0, minor = 0;
  check(d, d.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device),
        ATTNRT_ERROR_KERNEL, "cuDeviceGetAttribute (compute capability)");
  check(d, d.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device),
        ATTNRT_ERROR_KERNEL, "cuDeviceGetAttribute (compute capability)");
  return "sm_" + std::to_string(major) + std::to_string(minor);
}

/// The architecture to compile `package` for on a GPU of `gpuArch`
/// (archForDevice); ATTNRT_ERROR_UNSUPPORTED when its launch.arch rules that
/// GPU out (sm_90a on anything but compute capability 9.0).
std::string compileArch(const PackageData &package, const std::string &gpuArch) {
  DeviceArch choice = archForDevice(package, gpuArch);
  if (!choice.problem.empty())
    fail(ATTNRT_ERROR_UNSUPPORTED, choice.problem);
  return choice.arch;
}

/// Loads `cubin` into the module's context and finds the entry point;
/// returns "" or why the driver refused the image. An image without the
/// entry point is the package's fault: ATTNRT_ERROR_PACKAGE.
std::string loadModule(CudaModule &m, std::string_view cubin, const PackageData &package) {
  const Driver &d = m.driver;
  CUmodule module = nullptr;
  if (CUresult result = d.cuModuleLoadData(&module, cubin.data()))
    return "cuModuleLoadData: " + resultText(d, result);
  CUfunction function = nullptr;
  if (CUresult result = d.cuModuleGetFunction(&function, module, package.entry.c_str())) {
    d.cuModuleUnload(module);
    fail(ATTNRT_ERROR_PACKAGE, package.sourceFile + ": the compiled kernel has no entry point " +
                                   package.entry + " (" + resultText(d, result) +
                                   "); CUDA kernels define extern \"C\" __global__ void " +
                                   package.entry + "(const __grid_constant__ attnc_forward_args)");
  }
  // The backward kernels, in the same module.
  auto backward = [&](const PackageData::CudaLaunch &launch, CUfunction &out) {
    if (launch.entry.empty())
      return;
    if (CUresult result = d.cuModuleGetFunction(&out, module, launch.entry.c_str())) {
      d.cuModuleUnload(module);
      fail(ATTNRT_ERROR_PACKAGE, package.sourceFile + ": the compiled kernel has no backward entry " +
                                     launch.entry + " (" + resultText(d, result) + ")");
    }
  };
  backward(package.preprocess, m.preprocess);
  backward(package.dkdv, m.dkdv);
  backward(package.dq, m.dq);
  backward(package.dqConvert, m.dqConvert);
  backward(package.dkdvConvert, m.dkdvConvert);
  m.module = module;
  m.function = function;
  return "";
}

/// Every kernel of the package with the dynamic shared memory it launches with.
std::vector<std::pair<CUfunction, const PackageData::CudaLaunch *>>
launches(const CudaModule &m, const PackageData &package,
         PackageData::CudaLaunch &forward) {
  forward = {package.entry, package.threadsPerBlock, package.sharedBytes};
  std::vector<std::pair<CUfunction, const PackageData::CudaLaunch *>> all = {{m.function, &forward}};
  for (auto [f, launch] : {std::pair{m.preprocess, &package.preprocess}, {m.dkdv, &package.dkdv},
                           {m.dq, &package.dq}, {m.dqConvert, &package.dqConvert},
                           {m.dkdvConvert, &package.dkdvConvert}})
    if (f)
      all.push_back({f, launch});
  return all;
}

/// Fails unless the device gives each kernel's block its shared memory.
void checkSharedMemory(const CudaModule &m, const PackageData &package) {
  const Driver &d = m.driver;
  int optIn = 0;
  check(d,
        d.cuDeviceGetAttribute(&optIn, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                               m.device),
        ATTNRT_ERROR_KERNEL, "cuDeviceGetAttribute (shared memory per block)");
  PackageData::CudaLaunch forward;
  for (auto [f, launch] : launches(m, package, forward))
    if (launch->sharedBytes > optIn)
      fail(ATTNRT_ERROR_UNSUPPORTED,
           "kernel \"" + package.name + "\": " + launch->entry + " needs " +
               std::to_string(launch->sharedBytes) +
               " bytes of shared memory per block (the manifest's shared_bytes), but this GPU (" +
               m.deviceArch + ") allows at most " + std::to_string(optIn));
}

/// Opts each kernel in to its dynamic shared memory when that is above the
/// 48 KiB every kernel gets.
void optInSharedMemory(const CudaModule &m, const PackageData &package) {
  const Driver &d = m.driver;
  PackageData::CudaLaunch forward;
  for (auto [f, launch] : launches(m, package, forward)) {
    if (launch->sharedBytes <= kDefaultDynamicSharedBytes)
      continue;
    check(d,
          d.cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                               static_cast<int>(launch->sharedBytes)),
          ATTNRT_ERROR_UNSUPPORTED,
          "kernel \"" + package.name + "\": cuFuncSetAttribute (" + launch->entry + ", " +
              std::to_string(launch->sharedBytes) + " bytes of dynamic shared memory)");
  }
}

/// A definition no other compile has ever seen. With a driver present,
/// NVRTC answers a PTX it has compiled before from the driver's JIT cache
/// (~/.nv/ComputeCache) without running ptxas, and so without ptxas's
/// report; appended to the source, this makes every check's PTX new.
std::string uniqueDefinition() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t process = (static_cast<uint64_t>(std::random_device{}()) << 32) ^
                                  std::random_device{}() ^ static_cast<uint64_t>(::getpid());
  char name[64];
  std::snprintf(name, sizeof name, "attnrt_nvrtc_check_%016llx_%llu",
                static_cast<unsigned long long>(process),
                static_cast<unsigned long long>(counter++));
  return std::string("// Appended by attnrt_nvrtc_check: new PTX, so that ptxas reports.\n"
                     "extern \"C\" __device__ unsigned ") +
         name + " = 0;\n";
}

/// The options joined by blanks (the key's text of them).
std::string joined(const std::vector<std::string> &options) {
  std::string text;
  for (const std::string &option : options)
    text += option + " ";
  return text;
}

} // namespace

CudaModule::~CudaModule() {
  if (!context)
    return;
  // Launches still in flight may read the module: let them finish first.
  CUcontext previous = nullptr;
  driver.cuCtxGetCurrent(&previous);
  driver.cuCtxSetCurrent(context);
  driver.cuCtxSynchronize();
  if (module)
    driver.cuModuleUnload(module);
  driver.cuCtxSetCurrent(previous);
  if (retainedPrimary)
    driver.cuDevicePrimaryCtxRelease(device);
}

std::unique_ptr<CudaModule> loadCudaKernel(const PackageData &package,
                                           const attnrt_compile_options *options) {
  const bool verbose = options && options->verbose;
  auto m = std::make_unique<CudaModule>(requireDriver(package));
  selectContext(*m);
  ContextGuard guard(m->driver, m->context);
  m->deviceArch = deviceArch(m->driver, m->device);
  // Before the cache is looked at: a GPU the kernel cannot run on caches nothing.
  m->arch = compileArch(package, m->deviceArch);
  checkSharedMemory(*m, package);

  const std::vector<std::string> nvrtcOptions = nvrtc::options(m->arch);
  const std::string nvrtcVersion = nvrtc::version();
  const std::string flags = joined(nvrtcOptions);
  std::vector<std::string_view> keyParts = {package.source, flags,         "cuda",       m->arch,
                                            nvrtcVersion,   ATTNC_VERSION, package.entry};
  for (std::string_view part : nvrtc::headerKeyParts())
    keyParts.push_back(part);
  const uint64_t key = cacheKey(keyParts);
  std::string archTag = m->arch;
  archTag.erase(archTag.find('_'), 1);
  const std::string fileName = entryFileName(package.name, "cuda-" + archTag, key, ".cubin");

  CacheSlot slot;
  if (lookupCacheEntry(
          options ? options->cache_dir : nullptr, fileName, verbose,
          "compiling in memory, nothing is cached",
          [&](const std::string &, std::string_view object) {
            return loadModule(*m, object, package);
          },
          slot)) {
    m->fromCache = true;
    optInSharedMemory(*m, package);
    return m;
  }
  const std::string &dir = slot.dir, &entry = slot.entry, &unusable = slot.unusable;

  nvrtc::Build build = nvrtc::compile(package, nvrtcOptions, verbose);
  if (unusable.empty()) {
    std::string failure = publishEntry(dir, fileName, sealEntry(build.cubin));
    if (failure.empty()) {
      if (verbose)
        note("cached " + entry);
    } else {
      warnOnce("write:" + dir,
               "cannot write to the kernel cache (" + failure + "); running from memory");
    }
  }
  std::string refused = loadModule(*m, build.cubin, package);
  if (!refused.empty())
    fail(ATTNRT_ERROR_COMPILE, package.sourceFile + ": the kernel NVRTC compiled for " + m->arch +
                                   " cannot be loaded: " + refused);
  optInSharedMemory(*m, package);
  return m;
}

attnrt_nvrtc_report nvrtcCheck(const PackageData &package, const char *arch) {
  if (package.target != Target::Cuda)
    fail(ATTNRT_ERROR_INVALID_ARGUMENT,
         "package: attnrt_nvrtc_check compiles CUDA packages; kernel \"" + package.name +
             "\" targets cpu");
  std::string target;
  if (arch) {
    target = arch;
    nvrtc::requireArch(package, target);
  } else {
    const Driver &d = requireDriver(package);
    CUcontext current = nullptr;
    target = compileArch(package, deviceArch(d, currentDevice(d, current)));
  }
  std::vector<std::string> options = nvrtc::options(target);
  options.push_back("--ptxas-options=-v");
  nvrtc::Build build = nvrtc::compile(package, options, false, uniqueDefinition());
  nvrtc::EntryInfo info;
  if (!nvrtc::readEntryInfo(build.log, package.entry, info))
    fail(ATTNRT_ERROR_PACKAGE,
         package.sourceFile + ": the kernel NVRTC compiled for " + target + " has no entry point " +
             package.entry + "; CUDA kernels define extern \"C\" __global__ void " + package.entry +
             "(const __grid_constant__ attnc_forward_args); NVRTC's log:\n" +
             build.log.substr(0, 4096));

  attnrt_nvrtc_report report{};
  std::snprintf(report.arch, sizeof report.arch, "%s", target.c_str());
  const std::string version = nvrtc::version();
  report.nvrtc_major = std::stoi(version);
  report.nvrtc_minor = std::stoi(version.substr(version.find('.') + 1));
  report.registers = info.registers;
  report.stack_frame_bytes = info.stackFrameBytes;
  report.spill_store_bytes = info.spillStoreBytes;
  report.spill_load_bytes = info.spillLoadBytes;
  report.cubin_bytes = static_cast<int64_t>(build.cubin.size());
  return report;
}

} // namespace attnc::runtime
