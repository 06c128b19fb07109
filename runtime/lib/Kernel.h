//===- Kernel.h - A loaded kernel and its forward launches ------*- C++ -*-===//
//
// A Kernel owns the dlopen'ed object of one package and runs it: validate the
// arguments, find or build the launch-time schedule table ("table" schedules),
// call the entry point. Concurrent forward calls are safe: the table cache is
// mutex-protected and tables are shared immutably.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_KERNEL_H
#define ATTNC_RUNTIME_LIB_KERNEL_H

#include "CpuCompiler.h"
#include "Package.h"
#include "Schedule.h"

#include <list>
#include <memory>
#include <mutex>
#include <vector>

namespace attnc::runtime {

class Kernel {
public:
  /// Compiles or loads the package's kernel. Throws Error.
  Kernel(std::shared_ptr<const PackageData> package, const attnrt_compile_options *options);
  ~Kernel();
  Kernel(const Kernel &) = delete;
  Kernel &operator=(const Kernel &) = delete;

  bool fromCache() const { return loaded_.fromCache; }

  /// Validates the arguments and runs the kernel (attnrt_forward). Throws Error.
  void forward(const attnc_tensor_view *q, const attnc_tensor_view *k, const attnc_tensor_view *v,
               attnc_tensor_view *o, attnc_tensor_view *lse, const int64_t *globalTokens,
               int64_t numGlobalTokens, int32_t numThreads);

private:
  /// One cached table: the lengths and the sorted, unique token list it was built for.
  struct CachedTable {
    int64_t nq, nk;
    std::vector<int64_t> tokens;
    std::shared_ptr<const ScheduleTable> table;
  };

  /// The table for these lengths and tokens, from the cache or built.
  std::shared_ptr<const ScheduleTable> table(int64_t nq, int64_t nk, std::vector<int64_t> tokens);

  std::shared_ptr<const PackageData> package_;
  LoadedKernel loaded_;
  std::mutex mutex_;
  std::list<CachedTable> tables_; ///< most recently used first
};

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_KERNEL_H
