//===- Kernel.h - A loaded kernel and its forward launches ------*- C++ -*-===//
//
// A Kernel owns the compiled code of one package and runs it: validate the
// arguments, find or build the launch-time schedule table ("table"
// schedules), call the entry point. CPU kernels are a dlopen'ed object called
// on the calling thread; CUDA kernels a module launched on a stream, their
// tables copied to device memory once per lengths and token list. Concurrent
// forward calls are safe: the table cache is mutex-protected and tables are
// shared immutably.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_KERNEL_H
#define ATTNC_RUNTIME_LIB_KERNEL_H

#include "CpuCompiler.h"
#include "CudaCompiler.h"
#include "LaunchGrid.h"
#include "Package.h"
#include "Schedule.h"

#include <list>
#include <memory>
#include <mutex>
#include <vector>

namespace attnc::runtime {

/// A schedule table and its transpose copied to device memory (one
/// allocation), freed when the last launch that holds it is done with it.
class DeviceTable {
public:
  /// Copies `table` into `module`'s context; waits for the copy. Throws Error.
  DeviceTable(const CudaModule &module, const ScheduleTable &table);
  ~DeviceTable();
  DeviceTable(const DeviceTable &) = delete;
  DeviceTable &operator=(const DeviceTable &) = delete;

  /// The view a kernel reads: device pointers.
  const attnc_schedule_table &view() const { return view_; }
  /// The view of the transposed (column) table: device pointers, the same bits.
  const attnc_schedule_table &columnsView() const { return columnsView_; }

private:
  const CudaModule &module_;
  cuda::CUdeviceptr memory_ = 0;
  attnc_schedule_table view_{};
  attnc_schedule_table columnsView_{};
};

class Kernel {
public:
  /// Compiles or loads the package's kernel. Throws Error.
  Kernel(std::shared_ptr<const PackageData> package, const attnrt_compile_options *options);
  ~Kernel();
  Kernel(const Kernel &) = delete;
  Kernel &operator=(const Kernel &) = delete;

  bool fromCache() const { return cuda_ ? cuda_->fromCache : loaded_.fromCache; }

  /// Validates the arguments and runs the kernel (attnrt_forward_async):
  /// CPU kernels to completion, CUDA kernels enqueued on `stream`, waited for
  /// when `wait`. Throws Error.
  void forward(const attnc_tensor_view *q, const attnc_tensor_view *k, const attnc_tensor_view *v,
               attnc_tensor_view *o, attnc_tensor_view *lse, const int64_t *globalTokens,
               int64_t numGlobalTokens, int32_t numThreads, void *stream, bool wait);

  /// The backward pass (attnrt_backward_async), like forward. Throws Error
  /// (ATTNRT_ERROR_UNSUPPORTED when the package has no backward kernels).
  void backward(const attnc_tensor_view *q, const attnc_tensor_view *k,
                const attnc_tensor_view *v, const attnc_tensor_view *o,
                const attnc_tensor_view *lse, const attnc_tensor_view *dO, attnc_tensor_view *dq,
                attnc_tensor_view *dk, attnc_tensor_view *dv, const int64_t *globalTokens,
                int64_t numGlobalTokens, int32_t numThreads, void *stream, bool wait);

private:
  /// One cached table: the lengths, the sorted, unique token list and the
  /// tile it was built for; `host` for CPU kernels, `device` for CUDA kernels.
  struct CachedTable {
    int64_t nq, nk;
    std::vector<int64_t> tokens;
    int64_t blockM, blockN;
    std::shared_ptr<const ScheduleTable> host;
    std::shared_ptr<const DeviceTable> device;
  };

  /// The table of blockM x blockN tiles for these lengths and tokens, from
  /// the cache or built (and, for CUDA kernels, copied to the device). The
  /// forward's tile is the package's; the backward's may differ (a Hopper
  /// forward's 128 x 128 tiles, its wgmma dK/dV kernel's 64 x 128).
  CachedTable table(int64_t nq, int64_t nk, std::vector<int64_t> tokens, int64_t blockM,
                    int64_t blockN);

  void forwardCpu(const attnc_forward_args &args, int32_t numThreads);
  void forwardCuda(attnc_forward_args &args, void *stream, bool wait);
  /// Runs one launch on the kernel's target (CPU threads or the CUDA stream).
  void launch(attnc_forward_args &args, int32_t numThreads, void *stream, bool wait);
  /// One backward launch (one residue class) on the kernel's target, with
  /// its float32 workspace.
  void launchBackward(attnc_backward_args &args, int32_t numThreads, void *stream);
  void backwardCuda(attnc_backward_args &args, void *stream);
  /// Launches one CUDA kernel of the package on `stream`.
  void launchCuda(cuda::CUfunction function, const PackageData::CudaLaunch &launch,
                  const Grid &grid, void *params, void *stream);
  /// Waits for the stream; a failure on the GPU is ATTNRT_ERROR_KERNEL.
  void synchronize(void *stream);

  std::shared_ptr<const PackageData> package_;
  LoadedKernel loaded_;              ///< CPU kernels
  std::unique_ptr<CudaModule> cuda_; ///< CUDA kernels
  std::mutex mutex_;
  std::list<CachedTable> tables_; ///< most recently used first
};

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_KERNEL_H
