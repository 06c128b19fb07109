//===- Kernel.cpp - A loaded kernel and its forward launches --------------===//

#include "Kernel.h"

#include "Error.h"
#include "Validate.h"

#include <algorithm>
#include <cstring>
#include <dlfcn.h>
#include <optional>
#include <thread>

namespace attnc::runtime {

namespace {

using namespace cuda;

/// Tables kept per kernel (a few lengths in turn, e.g. prefill then decode).
constexpr size_t kMaxCachedTables = 8;
/// The most blocks a CUDA grid has in y (query heads) and z (batch).
constexpr int64_t kMaxGridYZ = 65535;
/// The most blocks a CUDA grid has in x (query tiles).
constexpr int64_t kMaxGridX = 2147483647;

/// Where `pointer`'s memory is, as the driver sees it (in the current
/// context). cuPointerGetAttributes, unlike cuPointerGetAttribute, answers
/// zeros rather than an error for an address CUDA does not know, so that a
/// rejected host pointer leaves no API error for compute-sanitizer to report.
MemoryKind memoryKind(const Driver &d, const void *pointer) {
  // IS_MANAGED is a bool for the driver: zeroed, either width reads right.
  unsigned type = 0, managed = 0;
  int attributes[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_IS_MANAGED};
  void *values[] = {&type, &managed};
  const auto address = static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(pointer));
  if (CUresult result = d.cuPointerGetAttributes(2, attributes, values, address))
    fail(ATTNRT_ERROR_KERNEL, "cuPointerGetAttributes (memory type): " + resultText(d, result));
  if (type == 0) // not an address CUDA knows
    return MemoryKind::PageableHost;
  if (type == CU_MEMORYTYPE_HOST && !managed)
    return MemoryKind::PinnedHost;
  return MemoryKind::Device;
}

/// Appends `count` elements of `data` to `bytes`; returns their byte offset.
template <typename T> size_t append(std::vector<unsigned char> &bytes, const std::vector<T> &data) {
  size_t offset = bytes.size();
  bytes.resize(offset + data.size() * sizeof(T));
  if (!data.empty())
    std::memcpy(bytes.data() + offset, data.data(), data.size() * sizeof(T));
  return offset;
}

} // namespace

DeviceTable::DeviceTable(const CudaModule &module, const ScheduleTable &table) : module_(module) {
  // One allocation: the 8-byte arrays first, the byte array last.
  std::vector<unsigned char> bytes;
  const size_t rowOffsets = append(bytes, table.rowOffsets);
  const size_t colTiles = append(bytes, table.colTiles);
  const size_t bitOffsets = append(bytes, table.bitOffsets);
  const size_t bits = append(bytes, table.bits);
  const size_t full = append(bytes, table.full);
  const Driver &d = module_.driver;
  if (CUresult result = d.cuMemAlloc(&memory_, std::max<size_t>(bytes.size(), 1)))
    fail(ATTNRT_ERROR_KERNEL, "cuMemAlloc (" + std::to_string(bytes.size()) +
                                  " bytes for the schedule table): " + resultText(d, result));
  // The copy runs on the legacy default stream; waiting for it makes the
  // table visible to launches on any stream.
  CUresult result = d.cuMemcpyHtoD(memory_, bytes.data(), bytes.size());
  if (result == CUDA_SUCCESS)
    result = d.cuStreamSynchronize(nullptr);
  if (result != CUDA_SUCCESS) {
    d.cuMemFree(memory_);
    fail(ATTNRT_ERROR_KERNEL,
         "copying the schedule table to the device (cuMemcpyHtoD): " + resultText(d, result));
  }
  auto at = [&](size_t offset) {
    return reinterpret_cast<const unsigned char *>(memory_ + offset);
  };
  view_.row_offsets = reinterpret_cast<const int64_t *>(at(rowOffsets));
  view_.col_tiles = reinterpret_cast<const int64_t *>(at(colTiles));
  view_.bit_offsets = reinterpret_cast<const int64_t *>(at(bitOffsets));
  view_.bits = reinterpret_cast<const uint64_t *>(at(bits));
  view_.full = reinterpret_cast<const uint8_t *>(at(full));
  view_.words_per_row = table.wordsPerRow;
}

DeviceTable::~DeviceTable() {
  // Launches still in flight may read the table: let them finish first.
  const Driver &d = module_.driver;
  CUcontext previous = nullptr;
  d.cuCtxGetCurrent(&previous);
  d.cuCtxSetCurrent(module_.context);
  d.cuCtxSynchronize();
  d.cuMemFree(memory_);
  d.cuCtxSetCurrent(previous);
}

Kernel::Kernel(std::shared_ptr<const PackageData> package, const attnrt_compile_options *options)
    : package_(std::move(package)) {
  if (package_->target == Target::Cuda)
    cuda_ = loadCudaKernel(*package_, options);
  else
    loaded_ = loadCpuKernel(*package_, options);
}

Kernel::~Kernel() {
  if (loaded_.handle)
    ::dlclose(loaded_.handle);
}

Kernel::CachedTable Kernel::table(int64_t nq, int64_t nk, std::vector<int64_t> tokens) {
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = tables_.begin(); it != tables_.end(); ++it) {
      if (it->nq == nq && it->nk == nk && it->tokens == tokens) {
        tables_.splice(tables_.begin(), tables_, it);
        return *it;
      }
    }
  }
  // Built (and copied) without the lock: other lengths keep running meanwhile.
  mask::Extent extent{nq, nk, &tokens};
  auto host = std::make_shared<const ScheduleTable>(
      buildScheduleTable(package_->mask, extent, package_->blockM, package_->blockN));
  CachedTable built{nq, nk, std::move(tokens), host, nullptr};
  if (cuda_) {
    built.device = std::make_shared<const DeviceTable>(*cuda_, *host);
    built.host = nullptr;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  tables_.push_front(built);
  if (tables_.size() > kMaxCachedTables)
    tables_.pop_back();
  return built;
}

void Kernel::forward(const attnc_tensor_view *q, const attnc_tensor_view *k,
                     const attnc_tensor_view *v, attnc_tensor_view *o, attnc_tensor_view *lse,
                     const int64_t *globalTokens, int64_t numGlobalTokens, int32_t numThreads,
                     void *stream, bool wait) {
  LaunchShape shape = validateForward(*package_, q, k, v, o, lse, globalTokens, numGlobalTokens);
  // CUDA: the kernel's context is current for the checks, the table copy
  // and the launch, and the caller's is restored afterwards.
  std::optional<ContextGuard> context;
  if (cuda_) {
    context.emplace(cuda_->driver, cuda_->context);
    validateCudaTensors(*q, *k, *v, *o, *lse,
                        [&](const void *pointer) { return memoryKind(cuda_->driver, pointer); });
    if (shape.batch > kMaxGridYZ)
      fail(ATTNRT_ERROR_INVALID_ARGUMENT,
           "q: batch " + std::to_string(shape.batch) + " exceeds the CUDA grid's " +
               std::to_string(kMaxGridYZ) + " blocks in z; split the batch");
    if (package_->queryHeads > kMaxGridYZ)
      fail(ATTNRT_ERROR_UNSUPPORTED, "kernel \"" + package_->name +
                                         "\": " + std::to_string(package_->queryHeads) +
                                         " query heads exceed the CUDA grid's " +
                                         std::to_string(kMaxGridYZ) + " blocks in y");
  }
  attnc_forward_args args{};
  args.q = *q;
  args.k = *k;
  args.v = *v;
  args.o = *o;
  args.lse = *lse;
  args.batch = shape.batch;
  args.nq = shape.nq;
  args.nk = shape.nk;
  CachedTable schedule{};
  if (package_->schedule == ScheduleKind::Table) {
    schedule = table(shape.nq, shape.nk,
                     std::vector<int64_t>(globalTokens, globalTokens + numGlobalTokens));
    args.schedule = cuda_ ? schedule.device->view() : schedule.host->view();
  }
  const int64_t d = package_->residueClasses;
  if (d == 1) {
    launch(args, numThreads, stream, wait);
    return;
  }
  // A dilated window re-indexed by residue class: positions p = r (mod d)
  // attend only to keys k = r (mod d), as a plain window over p / d. Launch
  // once per class on strided views; query row i sits at p = i + nk - nq.
  const int64_t offset = shape.nk - shape.nq;
  for (int64_t r = 0; r < d; ++r) {
    int64_t firstRow = ((r - offset) % d + d) % d; // first query row of class r
    if (firstRow >= shape.nq)
      continue;
    attnc_forward_args sub = args;
    sub.nq = (shape.nq - firstRow + d - 1) / d;
    sub.nk = r < shape.nk ? (shape.nk - r + d - 1) / d : 0;
    auto rows = [&](attnc_tensor_view &view, int dim, int64_t first, int64_t count,
                    int64_t elementBytes) {
      view.data = static_cast<char *>(view.data) + first * view.strides[dim] * elementBytes;
      view.shape[dim] = count;
      view.strides[dim] *= d;
    };
    rows(sub.q, 1, firstRow, sub.nq, 2);
    rows(sub.o, 1, firstRow, sub.nq, 2);
    rows(sub.lse, 2, firstRow, sub.nq, 4);
    rows(sub.k, 1, std::min(r, shape.nk), sub.nk, 2);
    rows(sub.v, 1, std::min(r, shape.nk), sub.nk, 2);
    launch(sub, numThreads, stream, /*wait=*/false);
  }
  // The launches run in order on one stream: wait once, after the last.
  if (cuda_ && wait)
    synchronize(stream);
}

void Kernel::launch(attnc_forward_args &args, int32_t numThreads, void *stream, bool wait) {
  if (cuda_)
    forwardCuda(args, stream, wait);
  else
    forwardCpu(args, numThreads);
}

void Kernel::forwardCpu(const attnc_forward_args &args, int32_t numThreads) {
  attnc_forward_args launch = args;
  launch.num_threads =
      numThreads > 0 ? numThreads
                     : static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  if (int status = loaded_.forward(&launch))
    fail(ATTNRT_ERROR_KERNEL, "kernel \"" + package_->name + "\": " + package_->entry +
                                  " returned " + std::to_string(status));
}

void Kernel::forwardCuda(attnc_forward_args &args, void *stream, bool wait) {
  const Driver &d = cuda_->driver;
  const PackageData &p = *package_;
  const int64_t queryTiles = (args.nq + p.blockM - 1) / p.blockM;
  if (queryTiles > kMaxGridX)
    fail(ATTNRT_ERROR_INVALID_ARGUMENT, "q: seq_len.q " + std::to_string(args.nq) +
                                            " needs more query tiles than a CUDA grid has");
  args.num_threads = static_cast<int32_t>(p.threadsPerBlock);
  void *params[] = {&args};
  const unsigned grid[3] = {static_cast<unsigned>(queryTiles), static_cast<unsigned>(p.queryHeads),
                            static_cast<unsigned>(args.batch)};
  auto cuStream = static_cast<CUstream>(stream);
  if (CUresult result = d.cuLaunchKernel(
          cuda_->function, grid[0], grid[1], grid[2], static_cast<unsigned>(p.threadsPerBlock), 1,
          1, static_cast<unsigned>(p.sharedBytes), cuStream, params, nullptr))
    fail(ATTNRT_ERROR_KERNEL,
         "kernel \"" + p.name + "\": cuLaunchKernel failed: " + resultText(d, result) + " (grid [" +
             std::to_string(grid[0]) + ", " + std::to_string(grid[1]) + ", " +
             std::to_string(grid[2]) + "], " + std::to_string(p.threadsPerBlock) + " threads and " +
             std::to_string(p.sharedBytes) + " bytes of shared memory per block)");
  if (wait)
    synchronize(stream);
}

void Kernel::synchronize(void *stream) {
  if (CUresult result = cuda_->driver.cuStreamSynchronize(static_cast<CUstream>(stream)))
    fail(ATTNRT_ERROR_KERNEL,
         "kernel \"" + package_->name + "\" failed on the GPU: " + resultText(cuda_->driver, result));
}

} // namespace attnc::runtime
