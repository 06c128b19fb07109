//===- CApi.cpp - The C API boundary of libattnrt -------------------------===//
//
// Every entry point runs its body inside guard(), which catches every
// exception: an Error gives its status and message, anything else (out of
// memory, a bug) gives ATTNRT_ERROR_IO with what is known. The message is the
// thread's last error; successful calls leave it alone.
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/attnrt.h"

#include "CudaCompiler.h"
#include "Error.h"
#include "Kernel.h"
#include "Nvrtc.h"
#include "Package.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

using namespace attnc::runtime;

struct attnrt_package {
  std::shared_ptr<const PackageData> data;
};

struct attnrt_kernel : Kernel {
  using Kernel::Kernel;
};

namespace {

thread_local std::string lastError;

/// Runs `body`, turning any exception into a status and the last error.
template <typename Body> attnrt_status guard(Body &&body) noexcept {
  try {
    body();
    return ATTNRT_OK;
  } catch (const Error &e) {
    lastError = e.what();
    return e.status();
  } catch (const std::bad_alloc &) {
    lastError = "out of memory";
  } catch (const std::exception &e) {
    lastError = std::string("internal error: ") + e.what();
  } catch (...) {
    lastError = "internal error: unknown exception";
  }
  return ATTNRT_ERROR_IO;
}

/// Fails unless the named pointer argument is set.
void require(const void *pointer, const char *name) {
  if (!pointer)
    fail(ATTNRT_ERROR_INVALID_ARGUMENT, std::string(name) + ": is null");
}

} // namespace

extern "C" {

const char *attnrt_last_error(void) { return lastError.c_str(); }

attnrt_status attnrt_package_load(const char *dir, attnrt_package **out) {
  return guard([&] {
    require(out, "out");
    *out = nullptr;
    require(dir, "dir");
    *out = new attnrt_package{loadPackage(dir)};
  });
}

attnrt_status attnrt_package_from_memory(const char *manifest_json, const char *source,
                                         attnrt_package **out) {
  return guard([&] {
    require(out, "out");
    *out = nullptr;
    require(manifest_json, "manifest_json");
    require(source, "source");
    *out = new attnrt_package{loadPackageFromMemory(manifest_json, source)};
  });
}

void attnrt_package_free(attnrt_package *package) { delete package; }

const char *attnrt_package_spec_json(const attnrt_package *package) {
  return package ? package->data->specJson.c_str() : "";
}

const char *attnrt_package_target(const attnrt_package *package) {
  return package ? targetName(package->data->target) : "";
}

attnrt_status attnrt_kernel_create(const attnrt_package *package,
                                   const attnrt_compile_options *options, attnrt_kernel **out) {
  return guard([&] {
    require(out, "out");
    *out = nullptr;
    require(package, "package");
    *out = new attnrt_kernel(package->data, options);
  });
}

void attnrt_kernel_free(attnrt_kernel *kernel) { delete kernel; }

int32_t attnrt_kernel_from_cache(const attnrt_kernel *kernel) {
  return kernel && kernel->fromCache() ? 1 : 0;
}

attnrt_status attnrt_forward(attnrt_kernel *kernel, const attnc_tensor_view *q,
                             const attnc_tensor_view *k, const attnc_tensor_view *v,
                             attnc_tensor_view *o, attnc_tensor_view *lse,
                             const int64_t *global_tokens, int64_t num_global_tokens,
                             int32_t num_threads) {
  return guard([&] {
    require(kernel, "kernel");
    kernel->forward(q, k, v, o, lse, global_tokens, num_global_tokens, num_threads, nullptr,
                    /*wait=*/true);
  });
}

attnrt_status attnrt_forward_async(attnrt_kernel *kernel, const attnc_tensor_view *q,
                                   const attnc_tensor_view *k, const attnc_tensor_view *v,
                                   attnc_tensor_view *o, attnc_tensor_view *lse,
                                   const int64_t *global_tokens, int64_t num_global_tokens,
                                   int32_t num_threads, void *stream) {
  return guard([&] {
    require(kernel, "kernel");
    kernel->forward(q, k, v, o, lse, global_tokens, num_global_tokens, num_threads, stream,
                    /*wait=*/false);
  });
}

int32_t attnrt_package_has_backward(const attnrt_package *package) {
  return package && package->data->hasBackward ? 1 : 0;
}

int32_t attnrt_package_deterministic(const attnrt_package *package) {
  return package && package->data->hasBackward && package->data->deterministic ? 1 : 0;
}

attnrt_status attnrt_backward(attnrt_kernel *kernel, const attnc_tensor_view *q,
                              const attnc_tensor_view *k, const attnc_tensor_view *v,
                              const attnc_tensor_view *o, const attnc_tensor_view *lse,
                              const attnc_tensor_view *d_o, attnc_tensor_view *dq,
                              attnc_tensor_view *dk, attnc_tensor_view *dv,
                              const int64_t *global_tokens, int64_t num_global_tokens,
                              int32_t num_threads) {
  return guard([&] {
    require(kernel, "kernel");
    kernel->backward(q, k, v, o, lse, d_o, dq, dk, dv, global_tokens, num_global_tokens,
                     num_threads, nullptr, /*wait=*/true);
  });
}

attnrt_status attnrt_backward_async(attnrt_kernel *kernel, const attnc_tensor_view *q,
                                    const attnc_tensor_view *k, const attnc_tensor_view *v,
                                    const attnc_tensor_view *o, const attnc_tensor_view *lse,
                                    const attnc_tensor_view *d_o, attnc_tensor_view *dq,
                                    attnc_tensor_view *dk, attnc_tensor_view *dv,
                                    const int64_t *global_tokens, int64_t num_global_tokens,
                                    int32_t num_threads, void *stream) {
  return guard([&] {
    require(kernel, "kernel");
    kernel->backward(q, k, v, o, lse, d_o, dq, dk, dv, global_tokens, num_global_tokens,
                     num_threads, stream, /*wait=*/false);
  });
}

attnrt_status attnrt_nvrtc_check(const attnrt_package *package, const char *arch,
                                 attnrt_nvrtc_report *out) {
  return guard([&] {
    require(out, "out");
    *out = attnrt_nvrtc_report{};
    require(package, "package");
    *out = nvrtcCheck(*package->data, arch);
  });
}

attnrt_status attnrt_nvrtc_compile(const attnrt_package *package, const char *arch,
                                   attnrt_nvrtc_artifact artifact, int32_t report,
                                   attnrt_nvrtc_output *out) {
  return guard([&] {
    require(out, "out");
    *out = attnrt_nvrtc_output{};
    require(package, "package");
    require(arch, "arch");
    if (artifact != ATTNRT_NVRTC_CUBIN && artifact != ATTNRT_NVRTC_PTX)
      fail(ATTNRT_ERROR_INVALID_ARGUMENT,
           "artifact: expected ATTNRT_NVRTC_CUBIN or ATTNRT_NVRTC_PTX, got " +
               std::to_string(static_cast<int>(artifact)));
    nvrtc::ArchBuild build =
        nvrtc::compileForArch(*package->data, arch, artifact == ATTNRT_NVRTC_PTX, report != 0);
    attnrt_nvrtc_output result{};
    std::snprintf(result.arch, sizeof result.arch, "%s", build.arch.c_str());
    result.nvrtc_major = std::stoi(build.version);
    result.nvrtc_minor = std::stoi(build.version.substr(build.version.find('.') + 1));
    result.cubin_bytes = static_cast<int64_t>(build.cubin.size());
    const std::string &bytes = artifact == ATTNRT_NVRTC_PTX ? build.ptx : build.cubin;
    // Owned by `result` from here; released (and rethrown) on any failure.
    try {
      result.data = static_cast<char *>(std::malloc(bytes.size() + 1));
      if (!result.data)
        throw std::bad_alloc();
      std::memcpy(result.data, bytes.data(), bytes.size());
      result.data[bytes.size()] = '\0';
      result.size = bytes.size();
      if (!build.entries.empty()) {
        result.entries = static_cast<attnrt_nvrtc_entry *>(
            std::calloc(build.entries.size(), sizeof(attnrt_nvrtc_entry)));
        if (!result.entries)
          throw std::bad_alloc();
        result.num_entries = static_cast<int32_t>(build.entries.size());
        for (size_t i = 0; i < build.entries.size(); ++i) {
          const nvrtc::EntryReport &from = build.entries[i];
          attnrt_nvrtc_entry &to = result.entries[i];
          if (!(to.name = strdup(from.name.c_str())))
            throw std::bad_alloc();
          to.registers = from.info.registers;
          to.barriers = from.info.barriers;
          to.stack_frame_bytes = from.info.stackFrameBytes;
          to.spill_store_bytes = from.info.spillStoreBytes;
          to.spill_load_bytes = from.info.spillLoadBytes;
          to.shared_bytes = from.info.sharedBytes;
          to.code_bytes = from.codeBytes;
        }
      }
    } catch (...) {
      attnrt_nvrtc_output_release(&result);
      throw;
    }
    *out = result;
  });
}

void attnrt_nvrtc_output_release(attnrt_nvrtc_output *output) {
  if (!output)
    return;
  for (int32_t i = 0; output->entries && i < output->num_entries; ++i)
    std::free(output->entries[i].name);
  std::free(output->entries);
  std::free(output->data);
  *output = attnrt_nvrtc_output{};
}

} // extern "C"
