//===- Kernel.cpp - A loaded kernel and its forward launches --------------===//

#include "Kernel.h"

#include "Error.h"
#include "Validate.h"

#include <algorithm>
#include <dlfcn.h>
#include <thread>

namespace attnc::runtime {

namespace {

/// Tables kept per kernel (a few lengths in turn, e.g. prefill then decode).
constexpr size_t kMaxCachedTables = 8;

} // namespace

Kernel::Kernel(std::shared_ptr<const PackageData> package, const attnrt_compile_options *options)
    : package_(std::move(package)), loaded_(loadCpuKernel(*package_, options)) {}

Kernel::~Kernel() { ::dlclose(loaded_.handle); }

std::shared_ptr<const ScheduleTable> Kernel::table(int64_t nq, int64_t nk,
                                                   std::vector<int64_t> tokens) {
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = tables_.begin(); it != tables_.end(); ++it) {
      if (it->nq == nq && it->nk == nk && it->tokens == tokens) {
        tables_.splice(tables_.begin(), tables_, it);
        return it->table;
      }
    }
  }
  // Built without the lock: other lengths keep running meanwhile.
  mask::Extent extent{nq, nk, &tokens};
  auto built = std::make_shared<const ScheduleTable>(
      buildScheduleTable(package_->mask, extent, package_->blockM, package_->blockN));
  std::lock_guard<std::mutex> lock(mutex_);
  tables_.push_front({nq, nk, std::move(tokens), built});
  if (tables_.size() > kMaxCachedTables)
    tables_.pop_back();
  return built;
}

void Kernel::forward(const attnc_tensor_view *q, const attnc_tensor_view *k,
                     const attnc_tensor_view *v, attnc_tensor_view *o, attnc_tensor_view *lse,
                     const int64_t *globalTokens, int64_t numGlobalTokens, int32_t numThreads) {
  LaunchShape shape = validateForward(*package_, q, k, v, o, lse, globalTokens, numGlobalTokens);
  attnc_forward_args args{};
  args.q = *q;
  args.k = *k;
  args.v = *v;
  args.o = *o;
  args.lse = *lse;
  args.batch = shape.batch;
  args.nq = shape.nq;
  args.nk = shape.nk;
  args.num_threads = numThreads > 0
                         ? numThreads
                         : static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  std::shared_ptr<const ScheduleTable> schedule;
  if (package_->schedule == ScheduleKind::Table) {
    schedule = table(shape.nq, shape.nk,
                     std::vector<int64_t>(globalTokens, globalTokens + numGlobalTokens));
    args.schedule = schedule->view();
  }
  if (int status = loaded_.forward(&args))
    fail(ATTNRT_ERROR_KERNEL, "kernel \"" + package_->name + "\": " + package_->entry +
                                  " returned " + std::to_string(status));
}

} // namespace attnc::runtime
