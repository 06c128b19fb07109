//===- attnrt.hpp - libattnrt, the attnc kernel runtime (C++) ---*- C++ -*-===//
//
// A thin RAII layer over the C API (attnrt.h): Package and Kernel own their
// handles; fallible calls return a Status or an Expected<T> that carries the
// runtime's message. No exceptions.
//
//   auto package = attnrt::Package::load("build/longformer");
//   if (!package) { std::cerr << package.status().message() << "\n"; return 1; }
//   auto kernel = attnrt::Kernel::create(*package);
//   ...
//   attnrt::Status s = kernel->forward(q, k, v, o, lse);
//   attnrt::Status s = kernel->forwardAsync(q, k, v, o, lse, stream); // CUDA
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_ATTNRT_HPP
#define ATTNC_RUNTIME_ATTNRT_HPP

#include "attnc/runtime/attnrt.h"

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace attnrt {

/// The outcome of a runtime call: a status code and, on failure, the message.
class Status {
public:
  /// Success.
  Status() = default;
  Status(attnrt_status code, std::string message) : code_(code), message_(std::move(message)) {}

  /// The status of a C API call that just returned `code` (its message is
  /// the thread's last error).
  static Status fromCall(attnrt_status code) {
    return code == ATTNRT_OK ? Status() : Status(code, attnrt_last_error());
  }

  bool ok() const { return code_ == ATTNRT_OK; }
  explicit operator bool() const { return ok(); }
  attnrt_status code() const { return code_; }
  const std::string &message() const { return message_; }

private:
  attnrt_status code_ = ATTNRT_OK;
  std::string message_;
};

/// A value, or the Status that says why there is none.
template <typename T> class Expected {
public:
  Expected(T value) : value_(std::move(value)) {}
  Expected(Status status) : status_(std::move(status)) {}

  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  /// Success, or why there is no value.
  const Status &status() const { return status_; }

  /// The value; only when ok().
  T &operator*() { return *value_; }
  const T &operator*() const { return *value_; }
  T *operator->() { return &*value_; }
  const T *operator->() const { return &*value_; }

private:
  std::optional<T> value_;
  Status status_;
};

/// A contiguous (row-major) view of `data` with `shape` (at most 4 dimensions).
inline attnc_tensor_view contiguousView(void *data, attnc_dtype dtype,
                                        std::initializer_list<int64_t> shape) {
  attnc_tensor_view view{};
  view.data = data;
  view.dtype = dtype;
  view.rank = static_cast<int32_t>(shape.size());
  int32_t d = 0;
  for (int64_t extent : shape)
    view.shape[d++] = extent;
  int64_t stride = 1;
  for (d = view.rank - 1; d >= 0; --d) {
    view.strides[d] = stride;
    stride *= view.shape[d];
  }
  return view;
}

/// A loaded, validated kernel package.
class Package {
public:
  /// Loads DIR/manifest.json and the source it names (attnrt_package_load).
  static Expected<Package> load(const std::string &dir) {
    attnrt_package *handle = nullptr;
    attnrt_status code = attnrt_package_load(dir.c_str(), &handle);
    if (code != ATTNRT_OK)
      return Status::fromCall(code);
    return Package(handle);
  }

  /// The same from memory (attnrt_package_from_memory).
  static Expected<Package> fromMemory(const std::string &manifestJson, const std::string &source) {
    attnrt_package *handle = nullptr;
    attnrt_status code = attnrt_package_from_memory(manifestJson.c_str(), source.c_str(), &handle);
    if (code != ATTNRT_OK)
      return Status::fromCall(code);
    return Package(handle);
  }

  /// The package's canonical spec JSON.
  const char *specJson() const { return attnrt_package_spec_json(handle_.get()); }
  /// "cpu" or "cuda".
  std::string target() const { return attnrt_package_target(handle_.get()); }
  /// Whether it has a backward pass, and whether its dQ is deterministic.
  bool hasBackward() const { return attnrt_package_has_backward(handle_.get()) != 0; }
  bool deterministic() const { return attnrt_package_deterministic(handle_.get()) != 0; }

  /// Compiles a CUDA package with NVRTC for `arch` ("sm_90"; empty: the
  /// current GPU's) and reports the entry's registers and local memory
  /// (attnrt_nvrtc_check). Needs no GPU for a named arch.
  Expected<attnrt_nvrtc_report> nvrtcCheck(const std::string &arch) const {
    attnrt_nvrtc_report report{};
    attnrt_status code =
        attnrt_nvrtc_check(handle_.get(), arch.empty() ? nullptr : arch.c_str(), &report);
    if (code != ATTNRT_OK)
      return Status::fromCall(code);
    return report;
  }
  const attnrt_package *get() const { return handle_.get(); }

private:
  struct Free {
    void operator()(attnrt_package *p) const { attnrt_package_free(p); }
  };
  explicit Package(attnrt_package *handle) : handle_(handle) {}
  std::unique_ptr<attnrt_package, Free> handle_;
};

/// A compiled kernel, ready to run (it keeps what it needs of its package).
class Kernel {
public:
  /// Compiles the package's kernel or loads it from the disk cache
  /// (attnrt_kernel_create); `options` may be null.
  static Expected<Kernel> create(const Package &package,
                                 const attnrt_compile_options *options = nullptr) {
    attnrt_kernel *handle = nullptr;
    attnrt_status code = attnrt_kernel_create(package.get(), options, &handle);
    if (code != ATTNRT_OK)
      return Status::fromCall(code);
    return Kernel(handle);
  }

  /// Whether it was loaded from the disk cache.
  bool fromCache() const { return attnrt_kernel_from_cache(handle_.get()) != 0; }

  /// Runs the forward pass (attnrt_forward). `globalTokens` feeds a runtime
  /// global mask; `numThreads` <= 0 uses every hardware thread.
  Status forward(const attnc_tensor_view &q, const attnc_tensor_view &k, const attnc_tensor_view &v,
                 attnc_tensor_view &o, attnc_tensor_view &lse,
                 const std::vector<int64_t> &globalTokens = {}, int32_t numThreads = 0) {
    return Status::fromCall(attnrt_forward(handle_.get(), &q, &k, &v, &o, &lse,
                                           globalTokens.empty() ? nullptr : globalTokens.data(),
                                           static_cast<int64_t>(globalTokens.size()), numThreads));
  }

  /// Enqueues the forward pass on a CUDA stream (attnrt_forward_async;
  /// `stream` is a CUstream or cudaStream_t, null for the default stream)
  /// without waiting. CPU kernels run to completion and ignore `stream`.
  Status forwardAsync(const attnc_tensor_view &q, const attnc_tensor_view &k,
                      const attnc_tensor_view &v, attnc_tensor_view &o, attnc_tensor_view &lse,
                      void *stream, const std::vector<int64_t> &globalTokens = {},
                      int32_t numThreads = 0) {
    return Status::fromCall(attnrt_forward_async(
        handle_.get(), &q, &k, &v, &o, &lse, globalTokens.empty() ? nullptr : globalTokens.data(),
        static_cast<int64_t>(globalTokens.size()), numThreads, stream));
  }

  /// Runs the backward pass (attnrt_backward): dq, dk, dv from the forward's
  /// inputs, its o and lse, and d_o.
  Status backward(const attnc_tensor_view &q, const attnc_tensor_view &k,
                  const attnc_tensor_view &v, const attnc_tensor_view &o,
                  const attnc_tensor_view &lse, const attnc_tensor_view &dO, attnc_tensor_view &dq,
                  attnc_tensor_view &dk, attnc_tensor_view &dv,
                  const std::vector<int64_t> &globalTokens = {}, int32_t numThreads = 0) {
    return Status::fromCall(attnrt_backward(
        handle_.get(), &q, &k, &v, &o, &lse, &dO, &dq, &dk, &dv,
        globalTokens.empty() ? nullptr : globalTokens.data(),
        static_cast<int64_t>(globalTokens.size()), numThreads));
  }

  /// Enqueues the backward pass on a CUDA stream (attnrt_backward_async).
  Status backwardAsync(const attnc_tensor_view &q, const attnc_tensor_view &k,
                       const attnc_tensor_view &v, const attnc_tensor_view &o,
                       const attnc_tensor_view &lse, const attnc_tensor_view &dO,
                       attnc_tensor_view &dq, attnc_tensor_view &dk, attnc_tensor_view &dv,
                       void *stream, const std::vector<int64_t> &globalTokens = {},
                       int32_t numThreads = 0) {
    return Status::fromCall(attnrt_backward_async(
        handle_.get(), &q, &k, &v, &o, &lse, &dO, &dq, &dk, &dv,
        globalTokens.empty() ? nullptr : globalTokens.data(),
        static_cast<int64_t>(globalTokens.size()), numThreads, stream));
  }

  attnrt_kernel *get() const { return handle_.get(); }

private:
  struct Free {
    void operator()(attnrt_kernel *k) const { attnrt_kernel_free(k); }
  };
  explicit Kernel(attnrt_kernel *handle) : handle_(handle) {}
  std::unique_ptr<attnrt_kernel, Free> handle_;
};

} // namespace attnrt

#endif // ATTNC_RUNTIME_ATTNRT_HPP
