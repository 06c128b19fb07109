//===- attnc_cuda.cuh - Helpers of generated CUDA kernels ---------*- CUDA -*-===//
//
// The device helpers that kernels emitted by attnc's emit-cuda call, one (or a
// few) per op of the loop IR, so that an emitted CUDA kernel reads like the
// emitted CPU kernel (runtime/cpu/attnc_cpu.h has the same names):
//
//   attn.load_tile Q        loadQTileAsync + loadQFragments (Q stays in registers)
//   attn.load_tile K, V     KvPipeline::acquire (cp.async ring of Stages tiles)
//   attn.fill               fill
//   attn.kv_loop            BandSchedule | TableSchedule (attnc_cuda_mask.cuh)
//   attn.qk                 qk
//   attn.mask_tile          maskBand | maskBits
//   attn.row_max            rowMax
//   attn.exp2_diff          exp2Diff
//   attn.rescale            rescale
//   attn.row_sum_update     rowSumUpdate
//   attn.pv_update          pvUpdate
//   attn.finalize           finalize
//   attn.tile_yield         storeTile + storeLse
//
// Printing order (tests/gpu/reference_kernel.cu is the reference): the ops
// in IR order, except that attn.load_tile Q is split around the kv pipeline's
// prologue so that the Q and first K/V copies overlap:
//   loadQTileAsync; fill m0, l0, acc0; schedule; KvPipeline kv(...) (starts
//   Stages - 1 tiles); loadQFragments<Cfg, kGroupsInFlight>; for each step:
//   kv.acquire(), qk, maskBand/maskBits, rowMax, exp2Diff, rescale,
//   rowSumUpdate, pvUpdate; finalize; storeTile; storeLse.
//
// The design is FlashAttention-2's: a thread block of NumWarps warps owns
// BlockM query rows, each warp kRowBlocks blocks of 16 rows (one mma.sync
// m16n8k16 row block each). Q lives in registers as mma A fragments; K and V
// tiles stream through shared memory with cp.async; S, P, O, m and l live in
// registers as mma accumulator fragments, so every "tile" below is the calling
// thread's part of a tile. Rows of an accumulator fragment: thread (lane)
// holds rows g = lane / 4 and g + 8 of each row block, columns 2 (lane % 4)
// and +1 of each 8-column n-tile.
//
// On Hopper, attnc_cuda_sm90.cuh's WgmmaConfig swaps the mainloop (warpgroup
// MMAs on swizzled shared-memory tiles) under the same helper names: the
// helpers whose work differs (copyTileAsync, loadQFragments, qk, pvUpdate,
// storeTile) dispatch on Cfg::kWgmma; the rest serve both configs.
//
// Scores are kept unscaled: ScoreTile carries scaleLog2 = softmax scale *
// log2(e) (the scale attn.load_tile puts on Q), applied by rowMax and
// exp2Diff with one FFMA, so m is in the base-2 domain of the scaled scores.
// scaleLog2 must be > 0.
//
// NVRTC: include paths <cuda>/include and <cuda>/include/cccl; kernel_abi.h
// includes <stdint.h>, which NVRTC lacks: give NVRTC a header named
// "stdint.h" holding `#include <cuda/std/cstdint>`.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_CUDA_CUH
#define ATTNC_CUDA_CUH

#include "attnc_cuda_mask.cuh"
#include "attnc_cuda_ptx.cuh"
#include "kernel_abi.h"

#include <cuda/std/cstdint>
#include <cuda/std/limits>

namespace attnc_cuda {

/// log2(e): exp(x) == exp2(x * kLog2e).
constexpr float kLog2e = 1.4426950408889634f;
/// ln(2): log(x) == log2(x) * kLn2.
constexpr float kLn2 = 0.6931471805599453f;
/// -infinity, the score of a forbidden pair and the running max of an empty row.
constexpr float kNegInf = -::cuda::std::numeric_limits<float>::infinity();

/// Threads per warp.
constexpr int kWarpSize = 32;
/// The mma.sync tile: D (kMmaM x kMmaN) += A (kMmaM x kMmaK) B (kMmaK x kMmaN).
constexpr int kMmaM = 16, kMmaN = 8, kMmaK = 16;
/// Threads of a quad share the rows of an accumulator fragment.
constexpr int kQuadSize = 4;
/// 32-bit registers per thread of an mma A fragment (16x16) and of an f32 accumulator fragment (16x8).
constexpr int kFragRegs = 4;
/// An ldmatrix matrix is 8 rows of 8 b16 elements (one 16-byte chunk per row).
constexpr int kLdmRows = 8;
/// Rows g and g + 8: the two rows a thread holds in a 16-row block.
constexpr int kRowsPerThread = 2, kRowHalfStride = 8;
/// bf16 and fp16 elements are 2 bytes.
constexpr int kElementBytes = 2;
/// Elements per 16-byte chunk (one cp.async, one ldmatrix matrix row, one vector store).
constexpr int kChunkElems = kChunkBytes / kElementBytes;
/// Shared-memory rows are padded by one chunk: the 8 rows an ldmatrix reads land in distinct banks.
constexpr int kSmemPadElems = kChunkElems;

//===----------------------------------------------------------------------===//
// Tile configuration (from attn-tile) and shared memory
//===----------------------------------------------------------------------===//

/// The tile configuration of one kernel and every shape derived from it.
template <bool IsBf16, int BlockM, int BlockN, int HeadDim, int NumWarps, int Stages>
struct FlashConfig {
  static constexpr bool kIsBf16 = IsBf16;
  static constexpr bool kWgmma = false;    // mma.sync (sm_80+); WgmmaConfig is Hopper's wgmma
  static constexpr int kBlockM = BlockM;   // query rows per thread block
  static constexpr int kBlockN = BlockN;   // keys per kv tile
  static constexpr int kHeadDim = HeadDim; // D
  static constexpr int kNumWarps = NumWarps;
  static constexpr int kStages = Stages; // kv tiles in flight in the cp.async ring
  static constexpr int kNumThreads = NumWarps * kWarpSize;
  static constexpr int kRowsPerWarp = BlockM / NumWarps;
  static constexpr int kRowBlocks = kRowsPerWarp / kMmaM; // 16-row mma blocks per warp
  static constexpr int kDimSlices = HeadDim / kMmaK;      // k-steps of S = Q K^T
  static constexpr int kKeyTiles = BlockN / kMmaN;        // 8-key n-tiles of S
  static constexpr int kKeySlices = BlockN / kMmaK;       // k-steps of O += P V
  static constexpr int kDimTiles = HeadDim / kMmaN;       // 8-column n-tiles of O
  static constexpr int kChunksPerRow = HeadDim / kChunkElems;
  static constexpr int kSmemRowElems = HeadDim + kSmemPadElems; // padded row pitch
  static constexpr int kQSmemElems = BlockM * kSmemRowElems;    // (BLOCK_M, HEAD_DIM) padded
  static constexpr int kKvSmemElems = BlockN * kSmemRowElems;   // (BLOCK_N, HEAD_DIM) padded

  static_assert(BlockM % (NumWarps * kMmaM) == 0, "each warp owns whole 16-row mma blocks");
  static_assert(BlockN % (2 * kMmaN) == 0, "ldmatrix.x4 loads K for two 8-key n-tiles");
  static_assert(HeadDim % (2 * kMmaN) == 0 && HeadDim % kMmaK == 0,
                "ldmatrix.x4.trans loads V for two 8-column n-tiles");
  static_assert((kRowsPerWarp * kChunksPerRow) % kWarpSize == 0, "O tile store: whole chunks per lane");
  static_assert(Stages >= 2, "the kv pipeline needs >= 2 stages");
  static_assert((kSmemRowElems * kElementBytes) % kChunkBytes == 0, "16-byte aligned smem rows");
};

/// The shared memory of a flash kernel: Q (reused to stage O) and the K/V ring (padded rows;
/// attnc_cuda_sm90.cuh specializes it for wgmma's swizzled tiles).
template <class Cfg, bool Wgmma = Cfg::kWgmma> struct SharedStorage {
  alignas(kChunkBytes) uint16_t q[Cfg::kQSmemElems];                // (BLOCK_M, HEAD_DIM) Q, then O
  alignas(kChunkBytes) uint16_t k[Cfg::kStages][Cfg::kKvSmemElems]; // (BLOCK_N, HEAD_DIM) per stage
  alignas(kChunkBytes) uint16_t v[Cfg::kStages][Cfg::kKvSmemElems]; // (BLOCK_N, HEAD_DIM) per stage
};

/// The alignment of a shared-memory tile: a 16-byte chunk (padded rows), or, for wgmma operands,
/// a 1024-byte swizzle atom (attnc_cuda_sm90.cuh's kSwizzleAtomBytes).
template <class Cfg> constexpr int kTileAlignment = Cfg::kWgmma ? 1024 : kChunkBytes;

/// Dynamic shared-memory bytes of a kernel whose shared memory is one Storage: its size plus the
/// slack that aligning the (16-byte aligned) dynamic shared-memory base to alignof(Storage) may skip.
template <class Storage>
constexpr int kDynamicSharedBytes = static_cast<int>(sizeof(Storage) + alignof(Storage) - kChunkBytes);

/// The kernel's Storage in its dynamic shared memory, at the first suitably aligned byte.
template <class Storage>
__device__ __forceinline__ Storage &alignedShared(unsigned char *dynamicShared) {
  constexpr uint32_t kAlign = alignof(Storage);
  const uint32_t skip = (kAlign - sharedAddress(dynamicShared) % kAlign) % kAlign;
  return *reinterpret_cast<Storage *>(dynamicShared + skip);
}

/// Dynamic shared-memory bytes of a flash kernel (SharedStorage, aligned).
template <class Cfg> constexpr int kSharedBytes = kDynamicSharedBytes<SharedStorage<Cfg>>;

/// The flash kernel's SharedStorage in its dynamic shared memory.
template <class Cfg>
__device__ __forceinline__ SharedStorage<Cfg> &sharedStorage(unsigned char *dynamicShared) {
  return alignedShared<SharedStorage<Cfg>>(dynamicShared);
}

//===----------------------------------------------------------------------===//
// Register tiles: the calling thread's fragments
//===----------------------------------------------------------------------===//

/// Q (BLOCK_M, HEAD_DIM): the warp's rows as mma A fragments (packed bf16/fp16 pairs); with wgmma
/// Q stays in shared memory (attnc_cuda_sm90.cuh).
template <class Cfg, bool Wgmma = Cfg::kWgmma> struct QTile {
  uint32_t a[Cfg::kRowBlocks][Cfg::kDimSlices][kFragRegs];
  float scaleLog2; // softmax scale * log2(e), applied to scores
};

/// S (BLOCK_M, BLOCK_N) unscaled f32 scores: the warp's rows as mma accumulator fragments.
template <class Cfg> struct ScoreTile {
  float v[Cfg::kRowBlocks][Cfg::kKeyTiles][kFragRegs];
  float scaleLog2; // the scores are scaleLog2 * v
};

/// P (BLOCK_M, BLOCK_N) f32 probabilities (unnormalized): layout of ScoreTile.
template <class Cfg> struct ProbTile {
  float v[Cfg::kRowBlocks][Cfg::kKeyTiles][kFragRegs];
};

/// O (BLOCK_M, HEAD_DIM) f32 accumulator: the warp's rows as mma accumulator fragments.
template <class Cfg> struct AccTile {
  float v[Cfg::kRowBlocks][Cfg::kDimTiles][kFragRegs];
};

/// A (BLOCK_M) vector of per-row values (m, l, alpha, LSE): rows g and g + 8 of each row block.
template <class Cfg> struct RowVec {
  float v[Cfg::kRowBlocks][kRowsPerThread];
};

/// The K and V tiles of one kv step in shared memory, each (BLOCK_N, HEAD_DIM) padded.
struct KvTiles {
  const uint16_t *k;
  const uint16_t *v;
};

//===----------------------------------------------------------------------===//
// Thread geometry
//===----------------------------------------------------------------------===//

/// The calling thread's lane in its warp.
__device__ __forceinline__ int laneIndex() { return static_cast<int>(threadIdx.x) % kWarpSize; }
/// The calling thread's warp in its block.
__device__ __forceinline__ int warpIndex() { return static_cast<int>(threadIdx.x) / kWarpSize; }

/// The tile row (0 .. BLOCK_M) of row `half` (0: g, 1: g + 8) of row block rb of the calling thread.
template <class Cfg> __device__ __forceinline__ int fragmentRow(int rb, int half) {
  return warpIndex() * Cfg::kRowsPerWarp + rb * kMmaM + laneIndex() / kQuadSize +
         half * kRowHalfStride;
}

/// The tile column (0 .. BLOCK_N) of element e (0..3) of n-tile j of the calling thread's fragment.
__device__ __forceinline__ int fragmentCol(int j, int e) {
  return j * kMmaN + (laneIndex() % kQuadSize) * 2 + (e % 2);
}

/// The first element of row `row` of a [B, N, H, D] tensor at (b, head), 64-bit offsets.
__device__ __forceinline__ const uint16_t *rowPointer(const attnc_tensor_view &t, int64_t b,
                                                      int64_t row, int64_t head) {
  return static_cast<const uint16_t *>(t.data) + b * t.strides[0] + row * t.strides[1] +
         head * t.strides[2];
}

//===----------------------------------------------------------------------===//
// attn.load_tile
//===----------------------------------------------------------------------===//

// The wgmma (Hopper) counterparts of copyTileAsync and loadQFragments, in attnc_cuda_sm90.cuh.
template <class Cfg, int Rows>
__device__ __forceinline__ void copyTileSwizzledAsync(const attnc_tensor_view &t, int64_t b, int64_t row0,
                                      int64_t head, uint16_t *smem);
template <class Cfg, int Younger>
__device__ __forceinline__ void loadQDescriptor(const uint16_t *smemQ, float scaleLog2, QTile<Cfg> &out);

/// Starts copying rows [row0, row0 + Rows) of a [B, N, H, D] tensor at (b, head) into padded shared memory; rows past N are zero.
template <class Cfg, int Rows>
__device__ __forceinline__ void copyTilePaddedAsync(const attnc_tensor_view &t, int64_t b, int64_t row0,
                                              int64_t head, uint16_t *smem) {
  // Each pass of the block copies kRowsPerPass whole rows, one 16-byte chunk per thread.
  constexpr int kRowsPerPass = Cfg::kNumThreads / Cfg::kChunksPerRow;
  constexpr int kPasses = Rows / kRowsPerPass;
  static_assert(Cfg::kNumThreads % Cfg::kChunksPerRow == 0 && Rows % kRowsPerPass == 0,
                "tile copy: whole rows per pass");
  const int r = static_cast<int>(threadIdx.x) / Cfg::kChunksPerRow;
  const int c = static_cast<int>(threadIdx.x) % Cfg::kChunksPerRow;
  const int64_t rowsLeft = t.shape[1] - row0 - r; // pass i copies a row iff rowsLeft > i * kRowsPerPass
  const int64_t passStride = kRowsPerPass * t.strides[1];
  const uint16_t *base = rowPointer(t, b, 0, head);
  const uint16_t *src = base + (row0 + r) * t.strides[1] + c * kChunkElems;
  const uint32_t dst = sharedAddress(smem + r * Cfg::kSmemRowElems + c * kChunkElems);
#pragma unroll
  for (int i = 0; i < kPasses; ++i) {
    const bool inside = rowsLeft > i * kRowsPerPass;
    cpAsync16(dst + i * kRowsPerPass * Cfg::kSmemRowElems * kElementBytes,
              inside ? src + i * passStride : base, inside);
  }
}

/// Starts copying rows [row0, row0 + Rows) of a [B, N, H, D] tensor at (b, head) into the kernel's shared-memory tile layout (padded rows; wgmma: 128-byte swizzled); rows past N are zero.
template <class Cfg, int Rows>
__device__ __forceinline__ void copyTileAsync(const attnc_tensor_view &t, int64_t b, int64_t row0,
                                              int64_t head, uint16_t *smem) {
  if constexpr (Cfg::kWgmma)
    copyTileSwizzledAsync<Cfg, Rows>(t, b, row0, head, smem);
  else
    copyTilePaddedAsync<Cfg, Rows>(t, b, row0, head, smem);
}

/// attn.load_tile (Q), first half: starts copying query tile qt of head h, batch b to shared memory (one cp.async group).
template <class Cfg>
__device__ __forceinline__ void loadQTileAsync(const attnc_tensor_view &q, int64_t b, int64_t qt,
                                               int64_t h, uint16_t *smemQ) {
  copyTileAsync<Cfg, Cfg::kBlockM>(q, b, qt * Cfg::kBlockM, h, smemQ);
  cpAsyncCommit();
}

/// loadQFragments for mma.sync: waits for the Q copy (the `Younger` groups committed after it may stay in flight), then ldmatrix's the warp's rows into A fragments.
template <class Cfg, int Younger>
__device__ __forceinline__ void ldmatrixQFragments(const uint16_t *smemQ, float scaleLog2,
                                                   QTile<Cfg> &out) {
  cpAsyncWait<Younger>();
  __syncthreads();
  // Lane i addresses row i % 8 of 8x8 matrix i / 8: (rows 0-7 | 8-15) x (cols 0-7 | 8-15).
  const int lane = laneIndex();
  const int row = warpIndex() * Cfg::kRowsPerWarp + (lane / kLdmRows % 2) * kLdmRows + lane % kLdmRows;
  const int col = (lane / (2 * kLdmRows)) * kChunkElems;
  const uint32_t base = sharedAddress(smemQ + row * Cfg::kSmemRowElems + col);
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int ks = 0; ks < Cfg::kDimSlices; ++ks)
      ldmatrixX4(out.a[rb][ks],
                 base + (rb * kMmaM * Cfg::kSmemRowElems + ks * kMmaK) * kElementBytes);
  out.scaleLog2 = scaleLog2;
}

/// attn.load_tile (Q), second half: waits for the Q copy (the `Younger` groups committed after it may stay in flight), then makes Q the A operand: mma A fragments in registers, or (wgmma) a shared-memory descriptor.
template <class Cfg, int Younger>
__device__ __forceinline__ void loadQFragments(const uint16_t *smemQ, float scaleLog2,
                                               QTile<Cfg> &out) {
  if constexpr (Cfg::kWgmma)
    loadQDescriptor<Cfg, Younger>(smemQ, scaleLog2, out);
  else
    ldmatrixQFragments<Cfg, Younger>(smemQ, scaleLog2, out);
}

/// attn.load_tile (K, V): a ring of Stages shared-memory K/V tiles filled by cp.async, reading ahead along a schedule.
template <class Cfg, class Schedule> struct KvPipeline {
  /// cp.async groups a thread may leave in flight when it needs the oldest one.
  static constexpr int kGroupsInFlight = Cfg::kStages - 1;

  const Schedule &schedule;
  const attnc_tensor_view &k, &v;
  int64_t b, kvHead;
  SharedStorage<Cfg> &smem;
  int64_t ahead; // schedule cursor of the next tile to fetch
  int fetchStage, readStage;

  /// Starts loading the first Stages - 1 tiles of `schedule` (one cp.async group each).
  __device__ __forceinline__ KvPipeline(const Schedule &schedule, const attnc_tensor_view &k,
                                        const attnc_tensor_view &v, int64_t b, int64_t kvHead,
                                        SharedStorage<Cfg> &smem)
      : schedule(schedule), k(k), v(v), b(b), kvHead(kvHead), smem(smem),
        ahead(schedule.begin()), fetchStage(0), readStage(0) {
#pragma unroll
    for (int s = 0; s < kGroupsInFlight; ++s)
      fetch();
  }

  /// Starts loading the tile at the read-ahead cursor into the next stage (an empty group past the end).
  __device__ __forceinline__ void fetch() {
    if (schedule.valid(ahead)) {
      const int64_t row0 = schedule.kvTile(ahead) * Cfg::kBlockN;
      copyTileAsync<Cfg, Cfg::kBlockN>(k, b, row0, kvHead, smem.k[fetchStage]);
      copyTileAsync<Cfg, Cfg::kBlockN>(v, b, row0, kvHead, smem.v[fetchStage]);
      ahead = schedule.next(ahead);
    }
    cpAsyncCommit();
    fetchStage = fetchStage + 1 == Cfg::kStages ? 0 : fetchStage + 1;
  }

  /// Waits for the current step's K and V (rows past Nk are zero), then starts the tile Stages - 1 steps ahead.
  __device__ __forceinline__ KvTiles acquire() {
    cpAsyncWait<kGroupsInFlight - 1>();
    // wgmma reads shared memory through the async proxy: order this thread's copies before it.
    if constexpr (Cfg::kWgmma)
      fenceProxyAsyncShared();
    // Every thread's copies have landed, and every warp is done with the stage fetch() refills.
    __syncthreads();
    fetch();
    const KvTiles tiles{smem.k[readStage], smem.v[readStage]};
    readStage = readStage + 1 == Cfg::kStages ? 0 : readStage + 1;
    return tiles;
  }
};

//===----------------------------------------------------------------------===//
// attn.fill
//===----------------------------------------------------------------------===//

/// Sets every element of a row vector.
template <class Cfg> __device__ __forceinline__ void fill(RowVec<Cfg> &row, float value) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int half = 0; half < kRowsPerThread; ++half)
      row.v[rb][half] = value;
}

/// Sets every element of an accumulator tile.
template <class Cfg> __device__ __forceinline__ void fill(AccTile<Cfg> &tile, float value) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int j = 0; j < Cfg::kDimTiles; ++j)
#pragma unroll
      for (int e = 0; e < kFragRegs; ++e)
        tile.v[rb][j][e] = value;
}

//===----------------------------------------------------------------------===//
// attn.qk
//===----------------------------------------------------------------------===//

/// qk with mma.sync: K (BLOCK_N, HEAD_DIM) from shared memory by ldmatrix.
template <class Cfg>
__device__ __forceinline__ void mmaSyncQk(const QTile<Cfg> &q, const uint16_t *kTile,
                                          ScoreTile<Cfg> &s) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int j = 0; j < Cfg::kKeyTiles; ++j)
#pragma unroll
      for (int e = 0; e < kFragRegs; ++e)
        s.v[rb][j][e] = 0.0f;
  s.scaleLog2 = q.scaleLog2;
  // Lane i addresses key row i % 8 of matrix i / 8: (keys 0-7 | 8-15) x (dims 0-7 | 8-15),
  // giving B fragments (b0, b1) of n-tile 2jj and (b2, b3) of n-tile 2jj + 1.
  const int lane = laneIndex();
  const int row = (lane / (2 * kLdmRows)) * kLdmRows + lane % kLdmRows;
  const int col = (lane / kLdmRows % 2) * kChunkElems;
  const uint32_t base = sharedAddress(kTile + row * Cfg::kSmemRowElems + col);
#pragma unroll
  for (int ks = 0; ks < Cfg::kDimSlices; ++ks)
#pragma unroll
    for (int jj = 0; jj < Cfg::kKeyTiles / 2; ++jj) {
      uint32_t bFrag[kFragRegs];
      ldmatrixX4(bFrag, base + (jj * 2 * kMmaN * Cfg::kSmemRowElems + ks * kMmaK) * kElementBytes);
#pragma unroll
      for (int rb = 0; rb < Cfg::kRowBlocks; ++rb) {
        mma16816<Cfg::kIsBf16>(s.v[rb][2 * jj], q.a[rb][ks], bFrag[0], bFrag[1]);
        mma16816<Cfg::kIsBf16>(s.v[rb][2 * jj + 1], q.a[rb][ks], bFrag[2], bFrag[3]);
      }
    }
}

/// S = Q K^T (unscaled; s.scaleLog2 = q.scaleLog2), K (BLOCK_N, HEAD_DIM) in shared memory.
template <class Cfg>
__device__ __forceinline__ void qk(const QTile<Cfg> &q, const uint16_t *kTile, ScoreTile<Cfg> &s) {
  if constexpr (Cfg::kWgmma)
    wgmmaQk(q, kTile, s);
  else
    mmaSyncQk(q, kTile, s);
}

//===----------------------------------------------------------------------===//
// attn.mask_tile
//===----------------------------------------------------------------------===//

/// Whether a kv tile reaches past the last key (its keys past Nk must be masked).
template <class Cfg> __device__ __forceinline__ bool crossesKeyEnd(int64_t kt, int64_t nk) {
  return (kt + 1) * Cfg::kBlockN > nk;
}

/// The keys of kv tile kt below Nk, as a count in [0, BLOCK_N].
template <class Cfg> __device__ __forceinline__ int validKeys(int64_t kt, int64_t nk) {
  return static_cast<int>(min64(Cfg::kBlockN, nk - kt * Cfg::kBlockN));
}

/// Bound of tile-local offsets p - k - d0 in 32 bits (tiles are far smaller).
constexpr int kLocalLimit = 1 << 30;

/// A 64-bit value clamped into [-kLocalLimit, kLocalLimit].
__device__ __forceinline__ int clampToLocal(int64_t x) {
  return static_cast<int>(min64(max64(x, -kLocalLimit), kLocalLimit));
}

/// The calling thread's fragment coordinates with the element offsets split off: element (rb, j, e)
/// sits at tile row row0 + rowOffset(rb, e) and tile column col0 + colOffset(j, e), offsets being
/// compile-time constants, so per-element mask tests compare with immediates.
template <class Cfg> struct FragmentOrigin {
  int row0, col0;
  __device__ __forceinline__ FragmentOrigin()
      : row0(fragmentRow<Cfg>(0, 0)), col0(fragmentCol(0, 0)) {}
  /// Tile-row offset of element e of row block rb from row0.
  __host__ __device__ static constexpr int rowOffset(int rb, int e) { return rb * kMmaM + (e / 2) * kRowHalfStride; }
  /// Tile-column offset of element e of n-tile j from col0.
  __host__ __device__ static constexpr int colOffset(int j, int e) { return j * kMmaN + e % 2; }
};

/// Masks a band tile: on PARTIAL tiles every forbidden pair becomes -inf; on a tile past Nk the keys past Nk do; FULL tiles inside Nk return at once.
template <class Cfg>
__device__ __forceinline__ void maskBand(ScoreTile<Cfg> &s, const Band &band, int64_t qt,
                                         int64_t kt, bool partial, int64_t nq, int64_t nk) {
  if (!partial && !crossesKeyEnd<Cfg>(kt, nk))
    return;
  using Origin = FragmentOrigin<Cfg>;
  const Origin origin;
  // p - k = d0 + x with x = r - c for tile row r and tile column c, and x = x0 + offset(rb, j, e).
  const int64_t d0 = queryPosition(qt * Cfg::kBlockM, nq, nk) - kt * Cfg::kBlockN;
  const int x0 = origin.row0 - origin.col0;
  // Allowed iff lo <= x <= hi, c < keys: aboveLo = x0 - lo >= -offset, belowHi = hi - x0 >= offset.
  const int aboveLo = partial ? x0 - clampToLocal(saturatingSub(band.lo, d0)) : kLocalLimit;
  const int belowHi = partial ? clampToLocal(saturatingSub(band.hi, d0)) - x0 : kLocalLimit;
  const int keysLeft = validKeys<Cfg>(kt, nk) - origin.col0; // c < keys: keysLeft > colOffset
  const bool dilated = partial && band.period != 1;
  // (p - k) % period == 0: (phase + offset) % period == 0 with phase = (d0 + x0) mod period.
  const int64_t phase = dilated ? (d0 + x0) - floorDiv(d0 + x0, band.period) * band.period : 0;
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int j = 0; j < Cfg::kKeyTiles; ++j)
#pragma unroll
      for (int e = 0; e < kFragRegs; ++e) {
        const int offset = Origin::rowOffset(rb, e) - Origin::colOffset(j, e);
        bool allowed = keysLeft > Origin::colOffset(j, e) && aboveLo >= -offset && belowHi >= offset;
        if (dilated)
          allowed = allowed && (phase + offset) % band.period == 0;
        if (!allowed)
          s.v[rb][j][e] = kNegInf;
      }
}

/// Masks a table tile: on PARTIAL tiles the bits of `entry` (kernel_abi.h) say which pairs are allowed; on a tile past Nk the keys past Nk become -inf.
template <class Cfg>
__device__ __forceinline__ void maskBits(ScoreTile<Cfg> &s, const attnc_schedule_table &table,
                                         int64_t entry, int64_t kt, bool partial, int64_t nk) {
  if (!partial && !crossesKeyEnd<Cfg>(kt, nk))
    return;
  using Origin = FragmentOrigin<Cfg>;
  const Origin origin;
  constexpr int kWordBits = 64;
  constexpr int kWordsPerRow = (Cfg::kBlockN + kWordBits - 1) / kWordBits;
  const int keysLeft = validKeys<Cfg>(kt, nk) - origin.col0; // c < keys: keysLeft > colOffset
  const uint64_t *bits = partial ? table.bits + __ldg(table.bit_offsets + entry) : nullptr;
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int half = 0; half < kRowsPerThread; ++half) {
      const int r = origin.row0 + Origin::rowOffset(rb, 2 * half);
      // This row's words, shifted so that bit colOffset(j, e) % 64 is column col0 + colOffset(j, e).
      uint64_t words[kWordsPerRow];
#pragma unroll
      for (int w = 0; w < kWordsPerRow; ++w)
        words[w] = partial ? __ldg(bits + r * table.words_per_row + w) >> origin.col0 : ~uint64_t{0};
#pragma unroll
      for (int j = 0; j < Cfg::kKeyTiles; ++j)
#pragma unroll
        for (int e = 2 * half; e < 2 * half + 2; ++e) {
          const int col = Origin::colOffset(j, e);
          const bool allowed =
              keysLeft > col && ((words[col / kWordBits] >> (col % kWordBits)) & 1u);
          if (!allowed)
            s.v[rb][j][e] = kNegInf;
        }
    }
}

//===----------------------------------------------------------------------===//
// Online softmax
//===----------------------------------------------------------------------===//

/// Binary max and sum, for treeReduce.
struct Max {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct Sum {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};

/// Reduces N values by a balanced tree: ceil(log2 N) dependent steps instead of N - 1.
template <int N, class Op> __device__ __forceinline__ float treeReduce(const float (&x)[N], Op op) {
  if constexpr (N == 1) {
    return x[0];
  } else {
    constexpr int kHalf = (N + 1) / 2;
    float y[kHalf];
#pragma unroll
    for (int i = 0; i < N / 2; ++i)
      y[i] = op(x[i], x[i + kHalf]);
    if constexpr (N % 2 == 1)
      y[kHalf - 1] = x[kHalf - 1];
    return treeReduce(y, op);
  }
}

/// The maximum over the 4 threads of a quad (they hold one row's columns).
__device__ __forceinline__ float quadMax(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

/// The sum over the 4 threads of a quad.
__device__ __forceinline__ float quadSum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/// m_new = max(m, rowmax(S)) in the base-2 domain of the scaled scores.
template <class Cfg>
__device__ __forceinline__ void rowMax(const ScoreTile<Cfg> &s, const RowVec<Cfg> &m,
                                       RowVec<Cfg> &out) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int half = 0; half < kRowsPerThread; ++half) {
      float x[Cfg::kKeyTiles];
#pragma unroll
      for (int j = 0; j < Cfg::kKeyTiles; ++j)
        x[j] = fmaxf(s.v[rb][j][2 * half], s.v[rb][j][2 * half + 1]);
      out.v[rb][half] = fmaxf(m.v[rb][half], quadMax(treeReduce(x, Max{})) * s.scaleLog2);
    }
}

/// The max to subtract: m, or 0 where m = -inf (the row is masked so far), so that no inf - inf arises.
__device__ __forceinline__ float safeMax(float m) { return m == kNegInf ? 0.0f : m; }

/// P = exp2(S - m_new), 0 where S = -inf or the whole row is masked so far.
template <class Cfg>
__device__ __forceinline__ void exp2Diff(const ScoreTile<Cfg> &s, const RowVec<Cfg> &m,
                                         ProbTile<Cfg> &p) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int half = 0; half < kRowsPerThread; ++half) {
      const float mRow = safeMax(m.v[rb][half]);
#pragma unroll
      for (int j = 0; j < Cfg::kKeyTiles; ++j)
#pragma unroll
        for (int e = 2 * half; e < 2 * half + 2; ++e)
          p.v[rb][j][e] = fastExp2(fmaf(s.v[rb][j][e], s.scaleLog2, -mRow));
    }
}

/// alpha = exp2(m_old - m_new), 0 where m_old = -inf (nothing to rescale).
template <class Cfg>
__device__ __forceinline__ void rescale(const RowVec<Cfg> &mOld, const RowVec<Cfg> &mNew,
                                        RowVec<Cfg> &alpha) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int half = 0; half < kRowsPerThread; ++half)
      alpha.v[rb][half] = fastExp2(mOld.v[rb][half] - safeMax(mNew.v[rb][half]));
}

/// l_new = alpha * l + rowsum(P), per thread: l holds this thread's partial row sums until finalize adds the quad's.
template <class Cfg>
__device__ __forceinline__ void rowSumUpdate(const RowVec<Cfg> &l, const RowVec<Cfg> &alpha,
                                             const ProbTile<Cfg> &p, RowVec<Cfg> &out) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int half = 0; half < kRowsPerThread; ++half) {
      float x[Cfg::kKeyTiles];
#pragma unroll
      for (int j = 0; j < Cfg::kKeyTiles; ++j)
        x[j] = p.v[rb][j][2 * half] + p.v[rb][j][2 * half + 1];
      out.v[rb][half] = fmaf(alpha.v[rb][half], l.v[rb][half], treeReduce(x, Sum{}));
    }
}

//===----------------------------------------------------------------------===//
// attn.pv_update
//===----------------------------------------------------------------------===//

/// out = alpha * acc, the scaling skipped where alpha == 1 on all the warp's rows (no running max
/// moved: the common case).
template <class Cfg>
__device__ __forceinline__ void rescaleAccumulator(const AccTile<Cfg> &acc, const RowVec<Cfg> &alpha,
                                                   AccTile<Cfg> &out) {
  bool moved = false;
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int half = 0; half < kRowsPerThread; ++half)
      moved = moved || alpha.v[rb][half] != 1.0f;
  const bool rescaleAcc = __any_sync(0xffffffffu, moved);
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int j = 0; j < Cfg::kDimTiles; ++j)
#pragma unroll
      for (int e = 0; e < kFragRegs; ++e)
        out.v[rb][j][e] = rescaleAcc ? acc.v[rb][j][e] * alpha.v[rb][e / 2] : acc.v[rb][j][e];
}

/// P (or, in the backward, dS: the warp's rows x Cfg::kBlockN columns) rounded to the element
/// type, as the mma A operand of the matmul that consumes it: a[rb][kk] is the A fragment of row
/// block rb, k-step kk (columns 16 kk .. 16 kk + 15), i.e. the accumulator fragments of n-tiles
/// 2 kk and 2 kk + 1 packed in pairs (half the registers of the f32 tile).
template <class Cfg> struct OperandTile {
  uint32_t a[Cfg::kRowBlocks][Cfg::kKeySlices][kFragRegs];
};

/// Rounds P to the A operand of P V.
template <class Cfg>
__device__ __forceinline__ void probFragments(const ProbTile<Cfg> &p, OperandTile<Cfg> &out) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int kk = 0; kk < Cfg::kKeySlices; ++kk) {
      const float(&lo)[kFragRegs] = p.v[rb][2 * kk];
      const float(&hi)[kFragRegs] = p.v[rb][2 * kk + 1];
      out.a[rb][kk][0] = packFloat2<Cfg::kIsBf16>(lo[0], lo[1]);
      out.a[rb][kk][1] = packFloat2<Cfg::kIsBf16>(lo[2], lo[3]);
      out.a[rb][kk][2] = packFloat2<Cfg::kIsBf16>(hi[0], hi[1]);
      out.a[rb][kk][3] = packFloat2<Cfg::kIsBf16>(hi[2], hi[3]);
    }
}

/// out += P V with mma.sync, V (BLOCK_N, HEAD_DIM) row-major in shared memory (padded rows) by
/// ldmatrix.trans; the backward's matmulAcc uses it for every P B product.
template <class Cfg>
__device__ __forceinline__ void mmaSyncPv(const OperandTile<Cfg> &p, const uint16_t *vTile,
                                          AccTile<Cfg> &out) {
  // Lane i addresses key row i % 8 of matrix i / 8: (keys 0-7 | 8-15) x (dims 0-7 | 8-15),
  // transposed: (b0, b1) of d-tile 2dd and (b2, b3) of d-tile 2dd + 1.
  const int lane = laneIndex();
  const int row = (lane / kLdmRows % 2) * kLdmRows + lane % kLdmRows;
  const int col = (lane / (2 * kLdmRows)) * kChunkElems;
  const uint32_t base = sharedAddress(vTile + row * Cfg::kSmemRowElems + col);
#pragma unroll
  for (int kk = 0; kk < Cfg::kKeySlices; ++kk)
#pragma unroll
    for (int dd = 0; dd < Cfg::kDimTiles / 2; ++dd) {
      uint32_t bFrag[kFragRegs];
      ldmatrixX4Trans(bFrag, base + (kk * kMmaK * Cfg::kSmemRowElems + dd * 2 * kMmaN) *
                                        kElementBytes);
#pragma unroll
      for (int rb = 0; rb < Cfg::kRowBlocks; ++rb) {
        mma16816<Cfg::kIsBf16>(out.v[rb][2 * dd], p.a[rb][kk], bFrag[0], bFrag[1]);
        mma16816<Cfg::kIsBf16>(out.v[rb][2 * dd + 1], p.a[rb][kk], bFrag[2], bFrag[3]);
      }
    }
}

/// O_new = alpha * O + P V: P rounded in registers to the A operand, V (BLOCK_N, HEAD_DIM) in
/// shared memory.
template <class Cfg>
__device__ __forceinline__ void pvUpdate(const AccTile<Cfg> &acc, const RowVec<Cfg> &alpha,
                                         const ProbTile<Cfg> &p, const uint16_t *vTile,
                                         AccTile<Cfg> &out) {
  rescaleAccumulator(acc, alpha, out);
  OperandTile<Cfg> a;
  probFragments(p, a);
  if constexpr (Cfg::kWgmma)
    wgmmaPv(a, vTile, out);
  else
    mmaSyncPv(a, vTile, out);
}

//===----------------------------------------------------------------------===//
// attn.finalize and attn.tile_yield
//===----------------------------------------------------------------------===//

/// O = acc / l and LSE = (m + log2 l) * ln 2; O = 0 and LSE = -inf where l = 0 (never NaN).
template <class Cfg>
__device__ __forceinline__ void finalize(const RowVec<Cfg> &m, const RowVec<Cfg> &l,
                                         const AccTile<Cfg> &acc, AccTile<Cfg> &o,
                                         RowVec<Cfg> &lse) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int half = 0; half < kRowsPerThread; ++half) {
      const float sum = quadSum(l.v[rb][half]);
      const bool empty = sum == 0.0f;
      const float inverse = empty ? 0.0f : 1.0f / sum;
#pragma unroll
      for (int j = 0; j < Cfg::kDimTiles; ++j)
#pragma unroll
        for (int e = 2 * half; e < 2 * half + 2; ++e)
          o.v[rb][j][e] = acc.v[rb][j][e] * inverse;
      lse.v[rb][half] = empty ? kNegInf : (m.v[rb][half] + fastLog2(sum)) * kLn2;
    }
}

/// storeTile through padded rows (mma.sync kernels).
template <class Cfg>
__device__ __forceinline__ void storeTilePadded(const attnc_tensor_view &t, int64_t b, int64_t qt,
                                          int64_t h, const AccTile<Cfg> &o, uint16_t *smemQ) {
  // The warp's rows of smemQ held only the warp's Q, consumed by loadQFragments; all its lanes
  // are past their ldmatrix reads once the warp has converged here.
  __syncwarp();
  uint16_t *staging = smemQ + warpIndex() * Cfg::kRowsPerWarp * Cfg::kSmemRowElems;
  const int lane = laneIndex();
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int half = 0; half < kRowsPerThread; ++half) {
      const int r = rb * kMmaM + lane / kQuadSize + half * kRowHalfStride;
#pragma unroll
      for (int j = 0; j < Cfg::kDimTiles; ++j) {
        const int c = j * kMmaN + (lane % kQuadSize) * 2;
        *reinterpret_cast<uint32_t *>(staging + r * Cfg::kSmemRowElems + c) =
            packFloat2<Cfg::kIsBf16>(o.v[rb][j][2 * half], o.v[rb][j][2 * half + 1]);
      }
    }
  __syncwarp();
  constexpr int kChunksPerLane = Cfg::kRowsPerWarp * Cfg::kChunksPerRow / kWarpSize;
  const int64_t row0 = qt * Cfg::kBlockM + warpIndex() * Cfg::kRowsPerWarp;
  uint16_t *out = static_cast<uint16_t *>(t.data) + b * t.strides[0] + h * t.strides[2];
#pragma unroll
  for (int i = 0; i < kChunksPerLane; ++i) {
    const int chunk = lane + i * kWarpSize;
    const int r = chunk / Cfg::kChunksPerRow, c = chunk % Cfg::kChunksPerRow;
    if (row0 + r < t.shape[1])
      *reinterpret_cast<uint4 *>(out + (row0 + r) * t.strides[1] + c * kChunkElems) =
          *reinterpret_cast<const uint4 *>(staging + r * Cfg::kSmemRowElems + c * kChunkElems);
  }
}

/// attn.tile_yield (O): stores the rows of tile qt inside the [B, Nq, H, D] output, staged through the warp's rows of smemQ (in the kernel's tile layout) for 16-byte stores.
template <class Cfg>
__device__ __forceinline__ void storeTile(const attnc_tensor_view &t, int64_t b, int64_t qt,
                                          int64_t h, const AccTile<Cfg> &o, uint16_t *smemQ) {
  if constexpr (Cfg::kWgmma)
    storeTileSwizzled(t, b, qt, h, o, smemQ);
  else
    storeTilePadded(t, b, qt, h, o, smemQ);
}

/// attn.tile_yield (LSE): stores the rows of tile qt inside the [B, H, Nq] float32 output.
template <class Cfg>
__device__ __forceinline__ void storeLse(const attnc_tensor_view &t, int64_t b, int64_t h,
                                         int64_t qt, const RowVec<Cfg> &lse) {
  if (laneIndex() % kQuadSize != 0)
    return;
  float *out = static_cast<float *>(t.data) + b * t.strides[0] + h * t.strides[1];
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int half = 0; half < kRowsPerThread; ++half) {
      const int64_t row = qt * Cfg::kBlockM + fragmentRow<Cfg>(rb, half);
      if (row < t.shape[2])
        out[row * t.strides[2]] = lse.v[rb][half];
    }
}

//===----------------------------------------------------------------------===//
// Launch geometry
//===----------------------------------------------------------------------===//

/// The query tile of this block: grid x counts query tiles from the last, so the longest causal rows start first.
__device__ __forceinline__ int64_t queryTileIndex() {
  return static_cast<int64_t>(gridDim.x) - 1 - static_cast<int64_t>(blockIdx.x);
}

} // namespace attnc_cuda

#endif // ATTNC_CUDA_CUH
