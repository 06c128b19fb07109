//===- Kernel.cpp - A loaded kernel and its forward launches --------------===//

#include "Kernel.h"

#include "Error.h"
#include "LaunchGrid.h"
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
  // One allocation: the 8-byte arrays first, the byte arrays last.
  std::vector<unsigned char> bytes;
  const size_t rowOffsets = append(bytes, table.rowOffsets);
  const size_t colTiles = append(bytes, table.colTiles);
  const size_t bitOffsets = append(bytes, table.bitOffsets);
  const size_t bits = append(bytes, table.bits);
  const size_t columnOffsets = append(bytes, table.columnOffsets);
  const size_t columnRowTiles = append(bytes, table.columnRowTiles);
  const size_t columnBitOffsets = append(bytes, table.columnBitOffsets);
  const size_t rowOrder = append(bytes, table.rowOrder);
  const size_t columnOrder = append(bytes, table.columnOrder);
  const size_t full = append(bytes, table.full);
  const size_t columnFull = append(bytes, table.columnFull);
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
  view_.row_order = reinterpret_cast<const int64_t *>(at(rowOrder));
  columnsView_ = view_;
  columnsView_.row_offsets = reinterpret_cast<const int64_t *>(at(columnOffsets));
  columnsView_.col_tiles = reinterpret_cast<const int64_t *>(at(columnRowTiles));
  columnsView_.bit_offsets = reinterpret_cast<const int64_t *>(at(columnBitOffsets));
  columnsView_.full = reinterpret_cast<const uint8_t *>(at(columnFull));
  columnsView_.row_order = reinterpret_cast<const int64_t *>(at(columnOrder));
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

Kernel::CachedTable Kernel::table(int64_t nq, int64_t nk, std::vector<int64_t> tokens,
                                  int64_t blockM, int64_t blockN) {
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = tables_.begin(); it != tables_.end(); ++it) {
      if (it->nq == nq && it->nk == nk && it->tokens == tokens && it->blockM == blockM &&
          it->blockN == blockN) {
        tables_.splice(tables_.begin(), tables_, it);
        return *it;
      }
    }
  }
  // Built (and copied) without the lock: other lengths keep running meanwhile.
  mask::Extent extent{nq, nk, &tokens};
  auto host =
      std::make_shared<const ScheduleTable>(buildScheduleTable(package_->mask, extent, blockM, blockN));
  CachedTable built{nq, nk, std::move(tokens), blockM, blockN, host, nullptr};
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
                     std::vector<int64_t>(globalTokens, globalTokens + numGlobalTokens),
                     package_->blockM, package_->blockN);
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
  const Grid blocks = forwardGrid(p, args.batch, args.nq);
  if (blocks.x > kMaxGridX)
    fail(ATTNRT_ERROR_INVALID_ARGUMENT, "q: seq_len.q " + std::to_string(args.nq) +
                                            " needs more query tiles than a CUDA grid has");
  args.num_threads = static_cast<int32_t>(p.threadsPerBlock);
  void *params[] = {&args};
  const unsigned grid[3] = {static_cast<unsigned>(blocks.x), static_cast<unsigned>(blocks.y),
                            static_cast<unsigned>(blocks.z)};
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

void Kernel::backward(const attnc_tensor_view *q, const attnc_tensor_view *k,
                      const attnc_tensor_view *v, const attnc_tensor_view *o,
                      const attnc_tensor_view *lse, const attnc_tensor_view *dO,
                      attnc_tensor_view *dq, attnc_tensor_view *dk, attnc_tensor_view *dv,
                      const int64_t *globalTokens, int64_t numGlobalTokens, int32_t numThreads,
                      void *stream, bool wait) {
  const PackageData &p = *package_;
  if (!p.hasBackward)
    fail(ATTNRT_ERROR_UNSUPPORTED, "kernel \"" + p.name +
                                       "\" has no backward pass: compile its spec with "
                                       "\"backward\": true");
  LaunchShape shape =
      validateBackward(p, q, k, v, o, lse, dO, dq, dk, dv, globalTokens, numGlobalTokens);
  std::optional<ContextGuard> context;
  if (cuda_) {
    context.emplace(cuda_->driver, cuda_->context);
    auto kind = [&](const void *pointer) { return memoryKind(cuda_->driver, pointer); };
    validateCudaTensors(*q, *k, *v, *o, *lse, kind);
    validateCudaGradients(*dO, *dq, *dk, *dv, kind);
    if (shape.batch > kMaxGridYZ)
      fail(ATTNRT_ERROR_INVALID_ARGUMENT,
           "q: batch " + std::to_string(shape.batch) + " exceeds the CUDA grid's " +
               std::to_string(kMaxGridYZ) + " blocks in z; split the batch");
    if (p.queryHeads > kMaxGridYZ)
      fail(ATTNRT_ERROR_UNSUPPORTED, "kernel \"" + p.name + "\": " +
                                         std::to_string(p.queryHeads) +
                                         " query heads exceed the CUDA grid's " +
                                         std::to_string(kMaxGridYZ) + " blocks in y");
  }
  attnc_backward_args args{};
  args.q = *q;
  args.k = *k;
  args.v = *v;
  args.o = *o;
  args.lse = *lse;
  args.d_o = *dO;
  args.dq = *dq;
  args.dk = *dk;
  args.dv = *dv;
  args.batch = shape.batch;
  args.nq = shape.nq;
  args.nk = shape.nk;
  CachedTable schedule{};
  if (p.schedule == ScheduleKind::Table) {
    // The backward's own tiles (backwardTableTile): a second table where
    // they differ from the forward's.
    const auto [blockM, blockN] = backwardTableTile(p);
    schedule = table(shape.nq, shape.nk,
                     std::vector<int64_t>(globalTokens, globalTokens + numGlobalTokens), blockM,
                     blockN);
    args.schedule = cuda_ ? schedule.device->view() : schedule.host->view();
    args.columns = cuda_ ? schedule.device->columnsView() : schedule.host->columnsView();
  }
  const int64_t d = p.residueClasses;
  if (d == 1) {
    launchBackward(args, numThreads, stream);
  } else {
    // One launch per residue class, as the forward (see forward()). A class
    // may have keys and no queries (its dK and dV are zero) or queries and
    // no keys (their dQ is zero): both still launch.
    const int64_t offset = shape.nk - shape.nq;
    for (int64_t r = 0; r < d; ++r) {
      int64_t firstRow = ((r - offset) % d + d) % d;
      attnc_backward_args sub = args;
      sub.nq = firstRow < shape.nq ? (shape.nq - firstRow + d - 1) / d : 0;
      sub.nk = r < shape.nk ? (shape.nk - r + d - 1) / d : 0;
      if (sub.nq == 0 && sub.nk == 0)
        continue;
      auto rows = [&](attnc_tensor_view &view, int dim, int64_t first, int64_t count,
                      int64_t elementBytes) {
        if (count > 0)
          view.data = static_cast<char *>(view.data) + first * view.strides[dim] * elementBytes;
        view.shape[dim] = count;
        view.strides[dim] *= d;
      };
      for (attnc_tensor_view *view : {&sub.q, &sub.o, &sub.d_o, &sub.dq})
        rows(*view, 1, firstRow, sub.nq, 2);
      rows(sub.lse, 2, firstRow, sub.nq, 4);
      for (attnc_tensor_view *view : {&sub.k, &sub.v, &sub.dk, &sub.dv})
        rows(*view, 1, std::min(r, shape.nk), sub.nk, 2);
      launchBackward(sub, numThreads, stream);
    }
  }
  if (cuda_ && wait)
    synchronize(stream);
}

namespace {

/// A contiguous float32 view of `shape` over `data`.
attnc_tensor_view floatView(void *data, std::initializer_list<int64_t> shape) {
  attnc_tensor_view view{};
  view.data = data;
  view.rank = static_cast<int32_t>(shape.size());
  view.dtype = ATTNC_DTYPE_FP32;
  int d = 0;
  for (int64_t extent : shape)
    view.shape[d++] = extent;
  int64_t stride = 1;
  for (int i = view.rank - 1; i >= 0; --i) {
    view.strides[i] = stride;
    stride *= view.shape[i];
  }
  return view;
}

} // namespace

void Kernel::launchBackward(attnc_backward_args &args, int32_t numThreads, void *stream) {
  const PackageData &p = *package_;
  if (cuda_) {
    backwardCuda(args, stream);
    return;
  }
  // CPU: delta lives on the host for the call; dQ comes from the separate pass.
  std::vector<float> delta(static_cast<size_t>(args.batch * p.queryHeads * args.nq));
  args.delta = floatView(delta.data(), {args.batch, p.queryHeads, args.nq});
  args.num_threads =
      numThreads > 0 ? numThreads
                     : static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  if (int status = loaded_.backward(&args))
    fail(ATTNRT_ERROR_KERNEL, "kernel \"" + p.name + "\": " + p.backwardEntry + " returned " +
                                  std::to_string(status));
}

void Kernel::launchCuda(CUfunction function, const PackageData::CudaLaunch &launch,
                        const Grid &blocks, void *params, void *stream) {
  const Driver &d = cuda_->driver;
  if (blocks.x == 0 || blocks.y == 0 || blocks.z == 0)
    return; // nothing to do (a residue class without queries or keys)
  const unsigned grid[3] = {static_cast<unsigned>(blocks.x), static_cast<unsigned>(blocks.y),
                            static_cast<unsigned>(blocks.z)};
  void *arguments[] = {params};
  if (CUresult result = d.cuLaunchKernel(
          function, grid[0], grid[1], grid[2], static_cast<unsigned>(launch.threadsPerBlock), 1, 1,
          static_cast<unsigned>(launch.sharedBytes), static_cast<CUstream>(stream), arguments,
          nullptr))
    fail(ATTNRT_ERROR_KERNEL,
         "kernel \"" + package_->name + "\": cuLaunchKernel of " + launch.entry +
             " failed: " + resultText(d, result) + " (grid [" + std::to_string(grid[0]) + ", " +
             std::to_string(grid[1]) + ", " + std::to_string(grid[2]) + "], " +
             std::to_string(launch.threadsPerBlock) + " threads and " +
             std::to_string(launch.sharedBytes) + " bytes of shared memory per block)");
}

void Kernel::backwardCuda(attnc_backward_args &args, void *stream) {
  const Driver &d = cuda_->driver;
  const PackageData &p = *package_;
  // Query-grid kernels tile seq_len.q by their own block_m, dK/dV by block_n.
  const BackwardGrids grids = backwardGrids(p, args.batch, args.nq, args.nk);
  if (std::max({grids.preprocess.x, grids.dkdv.x, grids.dq.x}) > kMaxGridX)
    fail(ATTNRT_ERROR_INVALID_ARGUMENT, "q: the lengths need more tiles than a CUDA grid has");
  // The float32 workspace, stream-ordered: delta [B, Hq, Nq], then (atomic
  // dQ) dq_accum [B, Nq, Hq, D], 16-byte aligned.
  const int64_t deltaElems = args.batch * p.queryHeads * args.nq;
  const int64_t deltaBytes = (deltaElems * 4 + 15) / 16 * 16;
  const int64_t accumBytes = p.deterministic ? 0 : args.batch * args.nq * p.queryHeads * p.headDim * 4;
  // dK, dV partials of a group split over several blocks: [S * B, Nk, Hkv, D] each.
  const int64_t splits = p.dkdv.groupSplits;
  const int64_t partialBytes =
      splits > 1 ? splits * args.batch * args.nk * p.kvHeads * p.headDim * 4 : 0;
  const auto cuStream = static_cast<CUstream>(stream);
  CUdeviceptr workspace = 0;
  const int64_t workspaceBytes = deltaBytes + accumBytes + 2 * partialBytes;
  if (workspaceBytes > 0)
    if (CUresult result = d.cuMemAllocAsync(&workspace, static_cast<size_t>(workspaceBytes),
                                            cuStream))
      fail(ATTNRT_ERROR_KERNEL, "kernel \"" + p.name + "\": cuMemAllocAsync (" +
                                    std::to_string(workspaceBytes) +
                                    " bytes of backward workspace): " + resultText(d, result));
  auto *base = reinterpret_cast<char *>(static_cast<uintptr_t>(workspace));
  args.delta = floatView(base, {args.batch, p.queryHeads, args.nq});
  args.dq_accum = floatView(p.deterministic ? nullptr : base + deltaBytes,
                            {args.batch, args.nq, p.queryHeads, p.headDim});
  char *partials = base + deltaBytes + accumBytes;
  args.dk_partial = floatView(splits > 1 ? partials : nullptr,
                              {splits * args.batch, args.nk, p.kvHeads, p.headDim});
  args.dv_partial = floatView(splits > 1 ? partials + partialBytes : nullptr,
                              {splits * args.batch, args.nk, p.kvHeads, p.headDim});
  struct FreeWorkspace {
    const Driver &d;
    CUdeviceptr memory;
    CUstream stream;
    ~FreeWorkspace() {
      if (memory)
        d.cuMemFreeAsync(memory, stream);
    }
  } freeWorkspace{d, workspace, cuStream};

  args.num_threads = static_cast<int32_t>(p.dkdv.threadsPerBlock);
  launchCuda(cuda_->preprocess, p.preprocess, grids.preprocess, &args, stream);
  launchCuda(cuda_->dkdv, p.dkdv, grids.dkdv, &args, stream);
  if (splits > 1)
    launchCuda(cuda_->dkdvConvert, p.dkdvConvert, grids.dkdvConvert, &args, stream);
  if (p.deterministic)
    launchCuda(cuda_->dq, p.dq, grids.dq, &args, stream);
  else
    launchCuda(cuda_->dqConvert, p.dqConvert, grids.dq, &args, stream);
}

void Kernel::synchronize(void *stream) {
  if (CUresult result = cuda_->driver.cuStreamSynchronize(static_cast<CUstream>(stream)))
    fail(ATTNRT_ERROR_KERNEL,
         "kernel \"" + package_->name + "\" failed on the GPU: " + resultText(cuda_->driver, result));
}

} // namespace attnc::runtime
