//===- attnc_cuda_bwd.cuh - Backward-pass helpers of generated CUDA kernels -*- CUDA -*-===//
//
// The device helpers of the four backward kernels (kernel_abi.h), one (or a
// few) per op of the backward loop IR, on top of the forward's types and
// helpers (attnc_cuda.cuh). tests/gpu/backward_reference_kernel.cu is the
// kernel text emit-cuda mirrors.
//
//   attnc_backward_preprocess_kernel   computeDelta (+ zeroDqAccum, atomic dQ)
//   attnc_backward_dq_convert_kernel   convertDq
//
//   attnc_backward_dkdv_kernel (kv-stationary; Cfg = DkdvConfig, rows = keys; on Hopper
//                               DkdvWgmmaConfig, attnc_cuda_bwd_sm90.cuh: the same text,
//                               qkT, matmulAcc and dqReduce dispatching on Cfg::kWgmma)
//     attn.load_tile K, V           loadKvTileAsync (one cp.async group, before the loop),
//                                   loadKvRows (the warp's rows: registers if HEAD_DIM <= 64)
//     attn.fill dK0, dV0            fill
//     attn.q_loop                   GroupSchedule over BandColumnSchedule | TableColumnSchedule
//     attn.load_tile Q, dO,
//     attn.load_row LSE, delta      QdoPipeline::acquire (cp.async ring of Stages steps)
//     attn.qk (S^T = K Q^T)         qkT
//     attn.mask_tile {transposed}   maskBandT | maskBitsT
//     attn.recompute_p {transposed} recomputePT
//     attn.matmul_acc (dV += P^T dO) matmulAcc
//     attn.qk (dP^T = V dO^T)       qkT
//     attn.ds {transposed}          dsT
//     attn.matmul_acc (dK += dS^T Q) matmulAcc
//     attn.dq_atomic_add            dqAtomicAdd (atomic dQ only; DqPending before the loop,
//                                   dqAtomicFlush after it)
//     attn.store_grad dK, dV        storeGrad
//
//   attnc_backward_dq_kernel (q-stationary, deterministic dQ; Cfg = DqConfig)
//     attn.load_tile Q, dO          loadQTileAsync + loadQFragments (both stay in registers)
//     attn.load_row LSE, delta      loadRow
//     attn.fill dQ0                 fill
//     attn.kv_loop                  BandSchedule | TableSchedule, KvPipeline::acquire
//     attn.qk (S = Q K^T)           qk
//     attn.mask_tile                maskBand | maskBits
//     attn.recompute_p              recomputeP
//     attn.qk (dP = dO V^T)         qk
//     attn.ds                       ds
//     attn.matmul_acc (dQ += dS K)  matmulAcc
//     attn.store_grad dQ            storeGrad
//
// The math (kernel_abi.h): P = exp(scale S - LSE), 0 where masked and on rows
// with LSE = -inf (never NaN); dV = P^T dO; dS = P (dO V^T - delta) with
// delta = rowsum(dO O); dQ = scale dS K; dK = scale dS^T Q. P and dS are
// rounded to the element type once, as the matmuls consume them (OperandTile);
// everything else accumulates in float32.
//
// Design (FlashAttention-2's backward, transposed into registers). The dK/dV
// kernel keeps a kv tile (BLOCK_N keys; with a band any multiple of 16, 128
// being the measured best, see below) in shared memory, each of its
// dkdvWarps(BLOCK_N) warps owning 16 keys, whose dK and dV accumulate in
// registers over every query tile that sees the kv tile, for every query head
// of the GQA group (one flattened loop, so the Q/dO pipeline reads ahead
// across heads). A step computes S^T, P^T, dP^T and dS^T directly in the
// transposed orientation (keys are the mma rows), so P^T and dS^T are already
// the A operands of dV += P^T dO and dK += dS^T Q: nothing but dS^T (atomic
// dQ) goes through shared memory. Transposed tiles reuse the forward's tile
// types with a transposed FlashConfig (DkdvConfig): its kBlockM is BLOCK_N (the
// keys, tile rows) and its kBlockN is BLOCK_M (the queries, tile columns).
// Atomic dQ writes dS^T to shared memory, then each warp computes dS K for
// (32 query rows x 32 dims) pieces and adds them to the float32 dq_accum with
// red.global.add (8-byte vector reductions on sm_90); where shared memory
// allows (kDqLagged) one step late, from a second dS^T buffer, which saves the
// step a barrier. The dQ atomics cost as much as a fifth matmul: a 128-key kv
// tile halves them (FlashAttention-2 uses 128 too).
//
// Launch configuration (what the manifest records), as functions of the tile
// (BLOCK_M query rows, BLOCK_N keys of the dK/dV kernel's kv tile):
//   preprocess, convert  DqConfig::kNumThreads = 32 * BLOCK_M / 16 threads, 0 bytes
//   dK/dV                DkdvConfig::kNumThreads = 32 * BLOCK_N / 16 threads,
//                        dkdvSharedBytes(BLOCK_M, BLOCK_N, HEAD_DIM, atomic) bytes
//   dQ (deterministic)   DqConfig::kNumThreads threads, on the forward's tile,
//                        dqSharedBytes(BLOCK_M, BLOCK_N, HEAD_DIM) bytes
// (== sizeof(DkdvSharedStorage<...>) and sizeof(DqSharedStorage<...>)). Both
// loops are double-buffered (kBackwardStages); HEAD_DIM <= 128 (the dK/dV
// kernel holds 2 x 64 f32 accumulators per thread at 128).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_CUDA_BWD_CUH
#define ATTNC_CUDA_BWD_CUH

#include "attnc_cuda.cuh"

namespace attnc_cuda {

//===----------------------------------------------------------------------===//
// Configuration and shared memory
//===----------------------------------------------------------------------===//

/// Warps of the dK/dV kernel for BLOCK_N keys per kv tile: one 16-key mma row block each.
__host__ __device__ constexpr int dkdvWarps(int blockN) { return blockN / kMmaM; }
/// Warps of the dQ, preprocess and convert kernels for BLOCK_M query rows: one 16-row block each.
__host__ __device__ constexpr int dqWarps(int blockM) { return blockM / kMmaM; }
/// Pipeline stages of both loops: Q/dO steps (dK/dV kernel) or K/V tiles (dQ kernel) in flight.
constexpr int kBackwardStages = 2;
/// The (query rows x dims) pieces of dS K one warp computes in dqAtomicAdd: 32 x 32 (32 f32
/// accumulators per thread; two row blocks share each K fragment, two d-tile pairs each dS one).
constexpr int kDqPieceRows = 32, kDqPieceCols = 32;

// The wgmma (Hopper) counterparts of the dK/dV kernel's matmuls, in attnc_cuda_bwd_sm90.cuh and
// attnc_cuda_sm90.cuh (DkdvWgmmaConfig kernels only).
template <class Cfg>
__device__ __forceinline__ void wgmmaQkT(const uint16_t *aTile, const uint16_t *bTile, ScoreTile<Cfg> &s);
template <int Rows> __device__ __forceinline__ int swizzledOffset(int row, int col);
template <class Cfg>
__device__ __forceinline__ void wgmmaDqReduce(const uint16_t *dsTile, const uint16_t *kTile,
                                              const attnc_tensor_view &dqAccum, int64_t b,
                                              int64_t qt, int64_t h, float scale);

/// The dK/dV kernel's configuration: FlashConfig transposed. Tile rows are the BLOCK_N keys of the
/// kv tile (kBlockM), tile columns the BLOCK_M query rows of a step (kBlockN).
template <bool IsBf16, int BlockM, int BlockN, int HeadDim>
using DkdvConfig = FlashConfig<IsBf16, BlockN, BlockM, HeadDim, dkdvWarps(BlockN), kBackwardStages>;

/// The dQ kernel's configuration (and the preprocess and convert kernels'): the forward's orientation.
template <bool IsBf16, int BlockM, int BlockN, int HeadDim>
using DqConfig = FlashConfig<IsBf16, BlockM, BlockN, HeadDim, dqWarps(BlockM), kBackwardStages>;

/// Whether atomic dQ multiplies dS K by wgmma (DkdvWgmmaConfig at HEAD_DIM 128: each warpgroup
/// one 64-dim half), from a swizzled dS^T tile; else by mma.sync from a padded one (dqReduce).
template <class Cfg> constexpr bool kWgmmaDq = Cfg::kWgmma && Cfg::kHeadDim == 128;
/// Elements per row of the dS^T staging tile (BLOCK_N, BLOCK_M): padded like every mma.sync smem
/// tile, or swizzled (kWgmmaDq: 64 queries, one 128-byte swizzle row).
template <class Cfg>
constexpr int kDsRowElems = kWgmmaDq<Cfg> ? Cfg::kBlockN : Cfg::kBlockN + kSmemPadElems;

/// Whether dqAtomicAdd lags one step behind for a kv tile of blockN keys: dS^T double-buffered, so
/// that the step needs no barrier of its own between writing dS^T and reading it for dS K. Chosen
/// where the second buffer costs no resident block: kv tiles of >= 128 keys (8 warps, one block
/// per SM anyway) or HEAD_DIM <= 64 (registers allow 2 blocks per SM, shared memory 3).
__host__ __device__ constexpr bool dqLagged(int blockN, int headDim) {
  return blockN >= 128 || headDim <= 64;
}
template <class Cfg> constexpr bool kDqLagged = dqLagged(Cfg::kBlockM, Cfg::kHeadDim);
/// dS^T buffers of the dK/dV kernel with atomic dQ.
template <class Cfg> constexpr int kDsBuffers = kDqLagged<Cfg> ? 2 : 1;

/// The dK/dV kernel's shared memory without the dS^T tiles (Cfg = DkdvConfig, or DkdvWgmmaConfig:
/// then K, V, Q and dO are swizzled wgmma operands, each aligned to a swizzle atom).
template <class Cfg> struct DkdvTiles {
  static_assert(Cfg::kHeadDim <= 128, "dK/dV kernel: dK and dV of HEAD_DIM > 128 exceed the registers");
  alignas(kTileAlignment<Cfg>) uint16_t k[Cfg::kQSmemElems];                  // (BLOCK_N, HEAD_DIM) K
  alignas(kTileAlignment<Cfg>) uint16_t v[Cfg::kQSmemElems];                  // (BLOCK_N, HEAD_DIM) V
  alignas(kTileAlignment<Cfg>) uint16_t q[Cfg::kStages][Cfg::kKvSmemElems];   // (BLOCK_M, HEAD_DIM) per stage
  alignas(kTileAlignment<Cfg>) uint16_t d_o[Cfg::kStages][Cfg::kKvSmemElems]; // (BLOCK_M, HEAD_DIM) per stage
  alignas(kChunkBytes) float lse[Cfg::kStages][Cfg::kBlockN];         // (BLOCK_M) per stage
  alignas(kChunkBytes) float delta[Cfg::kStages][Cfg::kBlockN];       // (BLOCK_M) per stage
};

/// The dK/dV kernel's shared memory; with atomic dQ also the dS^T tiles dqAtomicAdd multiplies by K.
template <class Cfg, bool AtomicDq> struct DkdvSharedStorage : DkdvTiles<Cfg> {};
template <class Cfg> struct DkdvSharedStorage<Cfg, true> : DkdvTiles<Cfg> {
  alignas(kWgmmaDq<Cfg> ? 1024 : kChunkBytes)
      uint16_t ds[kDsBuffers<Cfg>][Cfg::kBlockM * kDsRowElems<Cfg>]; // (BLOCK_N, BLOCK_M) dS^T
};

/// The deterministic dQ kernel's shared memory: the forward's (Q, K/V ring) and dO.
template <class Cfg> struct DqSharedStorage : SharedStorage<Cfg> {
  alignas(kChunkBytes) uint16_t d_o[Cfg::kQSmemElems]; // (BLOCK_M, HEAD_DIM) dO
};

/// sizeof(DkdvSharedStorage) of the mma.sync kernel (DkdvConfig): K, V; Stages x (Q, dO, LSE,
/// delta); with atomic dQ the dS^T tiles (2 where dqLagged(blockN, headDim), else 1). Emitted
/// kernels check the compiler's figure (wgmma ones too) against kDynamicSharedBytes<DkdvSmem>.
__host__ __device__ constexpr int dkdvSharedBytes(int blockM, int blockN, int headDim, bool atomicDq) {
  const int pitch = (headDim + kSmemPadElems) * kElementBytes;
  const int dsBuffers = dqLagged(blockN, headDim) ? 2 : 1;
  return 2 * blockN * pitch + kBackwardStages * (2 * blockM * pitch + 2 * blockM * 4) +
         (atomicDq ? dsBuffers * blockN * (blockM + kSmemPadElems) * kElementBytes : 0);
}

/// sizeof(DqSharedStorage): Q, dO and Stages x (K, V).
__host__ __device__ constexpr int dqSharedBytes(int blockM, int blockN, int headDim) {
  const int pitch = (headDim + kSmemPadElems) * kElementBytes;
  return 2 * blockM * pitch + kBackwardStages * 2 * blockN * pitch;
}

/// Register r (0..3) of an A fragment holds the accumulator elements (n-tile 2 kk + r / 2,
/// elements 2 (r % 2) and 2 (r % 2) + 1): these are its n-tile offset and first element.
__host__ __device__ constexpr int operandTileOffset(int r) { return r / 2; }
__host__ __device__ constexpr int operandElement(int r) { return 2 * (r % 2); }

//===----------------------------------------------------------------------===//
// attnc_backward_preprocess_kernel and attnc_backward_dq_convert_kernel
//===----------------------------------------------------------------------===//

/// delta[b, h, i] = sum_d dO[b, i, h, d] O[b, i, h, d] in float32 for the rows of query tile qt.
template <class Cfg>
__device__ __forceinline__ void computeDelta(const attnc_tensor_view &o, const attnc_tensor_view &dO,
                                             const attnc_tensor_view &delta, int64_t b, int64_t qt,
                                             int64_t h) {
  // kLanesPerRow consecutive lanes hold the 16-byte chunks of one row and reduce by shuffles.
  constexpr int kLanesPerRow = Cfg::kChunksPerRow;
  constexpr int kRowsPerPass = Cfg::kNumThreads / kLanesPerRow;
  static_assert(kWarpSize % kLanesPerRow == 0 && Cfg::kBlockM % kRowsPerPass == 0,
                "delta: whole rows per warp and per pass");
  const int r = static_cast<int>(threadIdx.x) / kLanesPerRow;
  const int c = static_cast<int>(threadIdx.x) % kLanesPerRow;
  float *out = static_cast<float *>(delta.data) + b * delta.strides[0] + h * delta.strides[1];
#pragma unroll
  for (int pass = 0; pass < Cfg::kBlockM / kRowsPerPass; ++pass) {
    const int64_t row = qt * Cfg::kBlockM + pass * kRowsPerPass + r;
    const bool inside = row < o.shape[1];
    float sum = 0.0f;
    if (inside) {
      const uint4 a = *reinterpret_cast<const uint4 *>(rowPointer(o, b, row, h) + c * kChunkElems);
      const uint4 d = *reinterpret_cast<const uint4 *>(rowPointer(dO, b, row, h) + c * kChunkElems);
      const uint32_t aw[4] = {a.x, a.y, a.z, a.w}, dw[4] = {d.x, d.y, d.z, d.w};
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        float a0, a1, d0, d1;
        unpackFloat2<Cfg::kIsBf16>(aw[w], a0, a1);
        unpackFloat2<Cfg::kIsBf16>(dw[w], d0, d1);
        sum = fmaf(a0, d0, fmaf(a1, d1, sum));
      }
    }
#pragma unroll
    for (int m = kLanesPerRow / 2; m > 0; m /= 2)
      sum += __shfl_xor_sync(0xffffffffu, sum, m);
    if (inside && c == 0)
      out[row * delta.strides[2]] = sum;
  }
}

/// Zeroes the float32 dq_accum [B, Nq, Hq, D] rows of query tile qt at head h (atomic dQ).
template <class Cfg>
__device__ __forceinline__ void zeroDqAccum(const attnc_tensor_view &dqAccum, int64_t b, int64_t qt,
                                            int64_t h) {
  constexpr int kVecsPerRow = Cfg::kHeadDim / 4; // float4 stores
  constexpr int kVecs = Cfg::kBlockM * kVecsPerRow;
  static_assert(kVecs % Cfg::kNumThreads == 0, "dq_accum zeroing: whole passes");
  float *base = static_cast<float *>(dqAccum.data) + b * dqAccum.strides[0] + h * dqAccum.strides[2];
#pragma unroll
  for (int i = 0; i < kVecs / Cfg::kNumThreads; ++i) {
    const int vec = static_cast<int>(threadIdx.x) + i * Cfg::kNumThreads;
    const int64_t row = qt * Cfg::kBlockM + vec / kVecsPerRow;
    if (row < dqAccum.shape[1])
      *reinterpret_cast<float4 *>(base + row * dqAccum.strides[1] + (vec % kVecsPerRow) * 4) =
          make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
}

/// dQ = dq_accum rounded to the element type, for the rows of query tile qt at head h (atomic dQ).
template <class Cfg>
__device__ __forceinline__ void convertDq(const attnc_tensor_view &dqAccum,
                                          const attnc_tensor_view &dq, int64_t b, int64_t qt,
                                          int64_t h) {
  constexpr int kChunks = Cfg::kBlockM * Cfg::kChunksPerRow; // 8 elements each
  static_assert(kChunks % Cfg::kNumThreads == 0, "dQ conversion: whole passes");
  const float *base =
      static_cast<const float *>(dqAccum.data) + b * dqAccum.strides[0] + h * dqAccum.strides[2];
#pragma unroll
  for (int i = 0; i < kChunks / Cfg::kNumThreads; ++i) {
    const int chunk = static_cast<int>(threadIdx.x) + i * Cfg::kNumThreads;
    const int64_t row = qt * Cfg::kBlockM + chunk / Cfg::kChunksPerRow;
    const int col = (chunk % Cfg::kChunksPerRow) * kChunkElems;
    if (row >= dq.shape[1])
      continue;
    const float4 lo = *reinterpret_cast<const float4 *>(base + row * dqAccum.strides[1] + col);
    const float4 hi = *reinterpret_cast<const float4 *>(base + row * dqAccum.strides[1] + col + 4);
    const uint4 packed{packFloat2<Cfg::kIsBf16>(lo.x, lo.y), packFloat2<Cfg::kIsBf16>(lo.z, lo.w),
                       packFloat2<Cfg::kIsBf16>(hi.x, hi.y), packFloat2<Cfg::kIsBf16>(hi.z, hi.w)};
    *reinterpret_cast<uint4 *>(const_cast<uint16_t *>(rowPointer(dq, b, row, h)) + col) = packed;
  }
}

//===----------------------------------------------------------------------===//
// Column schedules of attn.q_loop: the query tiles that see kv tile kt
//===----------------------------------------------------------------------===//

/// The query tiles [first, last] with rows that may see kv tile kt under the band (first > last
/// when none), with M x N tiles over nq x nk: the transpose of bandColumnTiles.
__host__ __device__ constexpr void bandRowTiles(const Band &band, int64_t kt, int64_t M, int64_t N,
                                                int64_t nq, int64_t nk, int64_t &first,
                                                int64_t &last) {
  const int64_t k0 = kt * N, k1 = min64(nk, (kt + 1) * N) - 1;
  // Positions p with p - k in [lo, hi] for a key k of the tile: p in [k0 + lo, k1 + hi]; query
  // row i = p - (nk - nq), clipped to [0, nq). (-lo and -hi never overflow: |bounds| <= kUnbounded.)
  const int64_t offset = nk - nq;
  const int64_t lowRow = saturatingSub(saturatingSub(k0, -band.lo), offset);
  const int64_t highRow = saturatingSub(saturatingSub(k1, -band.hi), offset);
  const int64_t i0 = max64(lowRow, 0), i1 = min64(highRow, nq - 1);
  if (band.lo > band.hi || k0 > k1 || i0 > i1) {
    first = 0;
    last = -1;
    return;
  }
  first = i0 / M;
  last = i1 / M;
}

/// attn.q_loop's columns with a band: the query tiles whose tile with kv tile kt is not EMPTY, ascending.
template <int BlockM, int BlockN> struct BandColumnSchedule {
  Band band;
  int64_t kt, nq, nk;
  int64_t first, last; // query tiles [first, last] may hold allowed pairs

  /// The query tiles that see kv tile kt over nq x nk under `band`.
  __device__ __forceinline__ BandColumnSchedule(const Band &band, int64_t kt, int64_t nq, int64_t nk)
      : band(band), kt(kt), nq(nq), nk(nk), first(0), last(-1) {
    bandRowTiles(band, kt, BlockM, BlockN, nq, nk, first, last);
  }

  /// The class of query tile qt's tile with kv tile kt.
  __device__ __forceinline__ TileClass tileClass(int64_t qt) const {
    return bandTile(band, qt, kt, BlockM, BlockN, nq, nk);
  }
  /// The first non-empty query tile at or after qt (past `last` when none).
  __device__ __forceinline__ int64_t skipEmpty(int64_t qt) const {
    // Only a dilated band leaves empty tiles inside [first, last].
    while (band.period != 1 && qt <= last && tileClass(qt) == TileClass::Empty)
      ++qt;
    return qt;
  }
  /// The cursor of the first visited query tile.
  __device__ __forceinline__ int64_t begin() const { return skipEmpty(first); }
  /// Whether the cursor names a query tile.
  __device__ __forceinline__ bool valid(int64_t cursor) const { return cursor <= last; }
  /// The cursor after `cursor`.
  __device__ __forceinline__ int64_t next(int64_t cursor) const { return skipEmpty(cursor + 1); }
  /// The query tile a cursor names.
  __device__ __forceinline__ int64_t queryTile(int64_t cursor) const { return cursor; }
  /// Whether the tile needs the element predicate (PARTIAL).
  __device__ __forceinline__ bool partial(int64_t cursor) const {
    return tileClass(cursor) == TileClass::Partial;
  }
};

/// attn.q_loop's columns with a table: the entries of kv tile kt in the transposed (column) table.
struct TableColumnSchedule {
  const attnc_schedule_table *table;
  int64_t firstEntry, endEntry; // entries [firstEntry, endEntry)

  /// The query tiles of kv tile kt (`columns` lives in the kernel's __grid_constant__ arguments).
  __device__ __forceinline__ TableColumnSchedule(const attnc_schedule_table &columns, int64_t kt)
      : table(&columns), firstEntry(__ldg(columns.row_offsets + kt)),
        endEntry(__ldg(columns.row_offsets + kt + 1)) {}

  __device__ __forceinline__ int64_t begin() const { return firstEntry; }
  __device__ __forceinline__ bool valid(int64_t entry) const { return entry < endEntry; }
  __device__ __forceinline__ int64_t next(int64_t entry) const { return entry + 1; }
  /// The query tile of an entry.
  __device__ __forceinline__ int64_t queryTile(int64_t entry) const {
    return __ldg(table->col_tiles + entry);
  }
  /// Whether the entry is PARTIAL (its bits, in the forward layout, hold the mask).
  __device__ __forceinline__ bool partial(int64_t entry) const {
    return __ldg(table->full + entry) == 0;
  }
};

/// A cursor of attn.q_loop: the query head within the kv head's group and the column cursor.
struct GroupCursor {
  int64_t group; // query head kv_head * Group + group
  int64_t inner; // cursor of the column schedule (a query tile, or a table entry)
};

/// attn.q_loop: every query head of the GQA group (dK, dV sum over them), and for each the column
/// schedule, flattened into one loop so that the pipeline reads ahead across heads.
template <class Columns, int Group> struct GroupSchedule {
  static constexpr int kGroup = Group;
  Columns columns;

  __device__ __forceinline__ explicit GroupSchedule(const Columns &columns) : columns(columns) {}

  /// The first step (past the end, group == Group, when the column is empty).
  __device__ __forceinline__ GroupCursor begin() const {
    const int64_t first = columns.begin();
    return GroupCursor{columns.valid(first) ? 0 : Group, first};
  }
  __device__ __forceinline__ bool valid(const GroupCursor &c) const { return c.group < Group; }
  /// The step after `c`: the next column entry, or the first of the next head.
  __device__ __forceinline__ GroupCursor next(const GroupCursor &c) const {
    const int64_t n = columns.next(c.inner);
    return columns.valid(n) ? GroupCursor{c.group, n} : GroupCursor{c.group + 1, columns.begin()};
  }
  /// The query tile of a step.
  __device__ __forceinline__ int64_t queryTile(const GroupCursor &c) const {
    return columns.queryTile(c.inner);
  }
  /// Whether a step's tile is PARTIAL.
  __device__ __forceinline__ bool partial(const GroupCursor &c) const { return columns.partial(c.inner); }
  /// The column-table entry of a step (table schedules: maskBitsT reads its bits).
  __device__ __forceinline__ int64_t entry(const GroupCursor &c) const { return c.inner; }
};

//===----------------------------------------------------------------------===//
// attn.load_tile and attn.load_row
//===----------------------------------------------------------------------===//

/// attn.load_tile (K, V) of the dK/dV kernel: starts copying kv tile kt of kv head kvHead (one cp.async group; rows past Nk are zero).
template <class Cfg>
__device__ __forceinline__ void loadKvTileAsync(const attnc_tensor_view &k, const attnc_tensor_view &v,
                                                int64_t b, int64_t kt, int64_t kvHead,
                                                DkdvTiles<Cfg> &smem) {
  copyTileAsync<Cfg, Cfg::kBlockM>(k, b, kt * Cfg::kBlockM, kvHead, smem.k);
  copyTileAsync<Cfg, Cfg::kBlockM>(v, b, kt * Cfg::kBlockM, kvHead, smem.v);
  cpAsyncCommit();
}

/// Starts copying Rows float32 values [row0, row0 + Rows) of a [B, H, N] row vector at (b, head) into shared memory; rows past N are zero.
template <class Cfg, int Rows>
__device__ __forceinline__ void copyRowAsync(const attnc_tensor_view &t, int64_t b, int64_t head,
                                             int64_t row0, float *smem) {
  const float *base = static_cast<const float *>(t.data) + b * t.strides[0] + head * t.strides[1];
#pragma unroll
  for (int i = 0; i < (Rows + Cfg::kNumThreads - 1) / Cfg::kNumThreads; ++i) {
    const int r = static_cast<int>(threadIdx.x) + i * Cfg::kNumThreads;
    if (Rows % Cfg::kNumThreads != 0 && r >= Rows)
      break;
    const bool inside = row0 + r < t.shape[2];
    cpAsync4(sharedAddress(smem + r), inside ? base + (row0 + r) * t.strides[2] : base, inside);
  }
}

/// The shared-memory Q, dO, LSE and delta of one attn.q_loop step (query tile qt of head h).
struct QdoTiles {
  const uint16_t *q;   // (BLOCK_M, HEAD_DIM), rows past Nq zero
  const uint16_t *d_o; // (BLOCK_M, HEAD_DIM), rows past Nq zero
  const float *lse;    // (BLOCK_M), natural log, rows past Nq zero
  const float *delta;  // (BLOCK_M), rows past Nq zero
};

/// attn.load_tile (Q, dO) and attn.load_row (LSE, delta) of the dK/dV kernel: a ring of Stages
/// shared-memory steps filled by cp.async, reading ahead along the GroupSchedule.
template <class Cfg, class Schedule> struct QdoPipeline {
  /// cp.async groups a thread may leave in flight when it needs the oldest one.
  static constexpr int kGroupsInFlight = Cfg::kStages - 1;

  const Schedule &schedule;
  const attnc_backward_args &args;
  int64_t b, kvHead;
  DkdvTiles<Cfg> &smem;
  GroupCursor ahead; // schedule cursor of the next step to fetch
  int fetchStage, readStage;

  /// Starts loading the first Stages - 1 steps of `schedule` (one cp.async group each).
  __device__ __forceinline__ QdoPipeline(const Schedule &schedule, const attnc_backward_args &args,
                                         int64_t b, int64_t kvHead, DkdvTiles<Cfg> &smem)
      : schedule(schedule), args(args), b(b), kvHead(kvHead), smem(smem), ahead(schedule.begin()),
        fetchStage(0), readStage(0) {
#pragma unroll
    for (int s = 0; s < kGroupsInFlight; ++s)
      fetch();
  }

  /// Starts loading the step at the read-ahead cursor into the next stage (an empty group past the end).
  __device__ __forceinline__ void fetch() {
    if (schedule.valid(ahead)) {
      const int64_t h = kvHead * Schedule::kGroup + ahead.group;
      const int64_t row0 = schedule.queryTile(ahead) * Cfg::kBlockN;
      copyTileAsync<Cfg, Cfg::kBlockN>(args.q, b, row0, h, smem.q[fetchStage]);
      copyTileAsync<Cfg, Cfg::kBlockN>(args.d_o, b, row0, h, smem.d_o[fetchStage]);
      copyRowAsync<Cfg, Cfg::kBlockN>(args.lse, b, h, row0, smem.lse[fetchStage]);
      copyRowAsync<Cfg, Cfg::kBlockN>(args.delta, b, h, row0, smem.delta[fetchStage]);
      ahead = schedule.next(ahead);
    }
    cpAsyncCommit();
    fetchStage = fetchStage + 1 == Cfg::kStages ? 0 : fetchStage + 1;
  }

  /// Waits for the current step's tiles (and, at the first step, K and V), then starts the step Stages - 1 ahead.
  __device__ __forceinline__ QdoTiles acquire() {
    cpAsyncWait<kGroupsInFlight - 1>();
    if constexpr (Cfg::kWgmma)
      fenceProxyAsyncShared(); // the copies are wgmma operands
    // Every thread's copies have landed, and every warp is done with the stage fetch() refills.
    __syncthreads();
    fetch();
    const QdoTiles tiles{smem.q[readStage], smem.d_o[readStage], smem.lse[readStage],
                         smem.delta[readStage]};
    readStage = readStage + 1 == Cfg::kStages ? 0 : readStage + 1;
    return tiles;
  }
};

/// attn.load_row (LSE or delta) of the dQ kernel: the [B, H, Nq] float32 values of the calling thread's rows of query tile qt (0 past Nq).
template <class Cfg>
__device__ __forceinline__ void loadRow(const attnc_tensor_view &t, int64_t b, int64_t h, int64_t qt,
                                        RowVec<Cfg> &out) {
  const float *base = static_cast<const float *>(t.data) + b * t.strides[0] + h * t.strides[1];
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int half = 0; half < kRowsPerThread; ++half) {
      const int64_t row = qt * Cfg::kBlockM + fragmentRow<Cfg>(rb, half);
      out.v[rb][half] = row < t.shape[2] ? __ldg(base + row * t.strides[2]) : 0.0f;
    }
}

//===----------------------------------------------------------------------===//
// attn.fill
//===----------------------------------------------------------------------===//

// fill(AccTile, value) of attnc_cuda.cuh: dK0, dV0 (DkdvConfig) and dQ0 (DqConfig).

//===----------------------------------------------------------------------===//
// attn.qk with both operands in shared memory
//===----------------------------------------------------------------------===//

/// S^T = A B^T (unscaled): A the warp's rows of a (Cfg::kBlockM, HEAD_DIM) shared tile (K or V),
/// B a (Cfg::kBlockN, HEAD_DIM) shared tile (Q or dO), both by ldmatrix. s.scaleLog2 is 1.
template <class Cfg>
__device__ __forceinline__ void mmaSyncQkT(const uint16_t *aTile, const uint16_t *bTile,
                                           ScoreTile<Cfg> &s) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int j = 0; j < Cfg::kKeyTiles; ++j)
#pragma unroll
      for (int e = 0; e < kFragRegs; ++e)
        s.v[rb][j][e] = 0.0f;
  s.scaleLog2 = 1.0f;
  const int lane = laneIndex();
  // A (as loadQFragments): lane i addresses row i % 8 of matrix i / 8: (rows 0-7 | 8-15) x (dims 0-7 | 8-15).
  const int aRow = warpIndex() * Cfg::kRowsPerWarp + (lane / kLdmRows % 2) * kLdmRows + lane % kLdmRows;
  const int aCol = (lane / (2 * kLdmRows)) * kChunkElems;
  const uint32_t aBase = sharedAddress(aTile + aRow * Cfg::kSmemRowElems + aCol);
  // B (as qk): (b0, b1) of n-tile 2jj and (b2, b3) of n-tile 2jj + 1.
  const int bRow = (lane / (2 * kLdmRows)) * kLdmRows + lane % kLdmRows;
  const int bCol = (lane / kLdmRows % 2) * kChunkElems;
  const uint32_t bBase = sharedAddress(bTile + bRow * Cfg::kSmemRowElems + bCol);
  // Two k-steps per iteration: full unrolling lets ptxas hoist so many ldmatrix that some D 128
  // dK/dV kernels spill (their dK and dV take 128 registers; measured 2 % faster where it does
  // not); two keep the loads ahead of the mma.
#pragma unroll 2
  for (int ks = 0; ks < Cfg::kDimSlices; ++ks) {
    uint32_t aFrag[Cfg::kRowBlocks][kFragRegs];
#pragma unroll
    for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
      ldmatrixX4(aFrag[rb], aBase + (rb * kMmaM * Cfg::kSmemRowElems + ks * kMmaK) * kElementBytes);
#pragma unroll
    for (int jj = 0; jj < Cfg::kKeyTiles / 2; ++jj) {
      uint32_t bFrag[kFragRegs];
      ldmatrixX4(bFrag, bBase + (jj * 2 * kMmaN * Cfg::kSmemRowElems + ks * kMmaK) * kElementBytes);
#pragma unroll
      for (int rb = 0; rb < Cfg::kRowBlocks; ++rb) {
        mma16816<Cfg::kIsBf16>(s.v[rb][2 * jj], aFrag[rb], bFrag[0], bFrag[1]);
        mma16816<Cfg::kIsBf16>(s.v[rb][2 * jj + 1], aFrag[rb], bFrag[2], bFrag[3]);
      }
    }
  }
}

/// S^T = A B^T (unscaled), both operands in shared memory: mmaSyncQkT, or with wgmma (Hopper)
/// wgmmaQkT (the warpgroup's rows of A; both operands by descriptor).
template <class Cfg>
__device__ __forceinline__ void qkT(const uint16_t *aTile, const uint16_t *bTile, ScoreTile<Cfg> &s) {
  if constexpr (Cfg::kWgmma)
    wgmmaQkT(aTile, bTile, s);
  else
    mmaSyncQkT(aTile, bTile, s);
}

/// The warp's rows of the kv tile's K or V, the A operand of qkT (Cfg = DkdvConfig): held in
/// registers as mma A fragments where HEAD_DIM <= 64 leaves room (kKvRowsInRegisters), else read
/// from shared memory at each use.
template <class Cfg> constexpr bool kKvRowsInRegisters = Cfg::kHeadDim <= 64 && !Cfg::kWgmma;
template <class Cfg, bool InRegisters = kKvRowsInRegisters<Cfg>> struct KvRows {
  const uint16_t *tile; // (BLOCK_N, HEAD_DIM) in shared memory
};
template <class Cfg> struct KvRows<Cfg, true> {
  QTile<Cfg> frags; // the warp's rows as A fragments
};

/// attn.load_tile (K or V) of the dK/dV kernel, second half: the warp's rows of `tile` as KvRows.
/// In registers: waits for the tile's copy (the `Younger` groups committed after it may stay in
/// flight) and ldmatrix's the rows; else keeps the shared-memory tile (the first acquire() waits).
template <class Cfg, int Younger>
__device__ __forceinline__ void loadKvRows(const uint16_t *tile, KvRows<Cfg> &out) {
  if constexpr (kKvRowsInRegisters<Cfg>)
    loadQFragments<Cfg, Younger>(tile, 1.0f, out.frags);
  else
    out.tile = tile;
}

/// S^T = A B^T (unscaled) with A the warp's KvRows (K or V) and B a (Cfg::kBlockN, HEAD_DIM)
/// shared tile (Q or dO): qk on register fragments, or qkT from shared memory.
template <class Cfg, bool InRegisters>
__device__ __forceinline__ void qkT(const KvRows<Cfg, InRegisters> &a, const uint16_t *bTile,
                                    ScoreTile<Cfg> &s) {
  if constexpr (InRegisters)
    qk(a.frags, bTile, s);
  else
    qkT(a.tile, bTile, s);
}

//===----------------------------------------------------------------------===//
// attn.mask_tile {transposed}: rows are keys, columns are queries
//===----------------------------------------------------------------------===//

/// Whether a query tile reaches past the last query row (its rows past Nq must be masked).
template <class Cfg> __device__ __forceinline__ bool crossesQueryEnd(int64_t qt, int64_t nq) {
  return (qt + 1) * Cfg::kBlockN > nq;
}

/// The query rows of query tile qt below Nq, as a count in [0, BLOCK_M] (Cfg = DkdvConfig).
template <class Cfg> __device__ __forceinline__ int validQueries(int64_t qt, int64_t nq) {
  return static_cast<int>(min64(Cfg::kBlockN, nq - qt * Cfg::kBlockN));
}

/// The keys of kv tile kt below Nk, as a count in [0, BLOCK_N] (Cfg = DkdvConfig).
template <class Cfg> __device__ __forceinline__ int validKeyRows(int64_t kt, int64_t nk) {
  return static_cast<int>(min64(Cfg::kBlockM, nk - kt * Cfg::kBlockM));
}

/// Masks a transposed band tile S^T (keys x queries): on PARTIAL tiles every forbidden pair becomes -inf, on tiles past Nk or Nq the keys and queries past them do; FULL tiles inside both return at once.
template <class Cfg>
__device__ __forceinline__ void maskBandT(ScoreTile<Cfg> &st, const Band &band, int64_t qt, int64_t kt,
                                          bool partial, int64_t nq, int64_t nk) {
  const bool keyEnd = (kt + 1) * Cfg::kBlockM > nk;
  if (!partial && !keyEnd && !crossesQueryEnd<Cfg>(qt, nq))
    return;
  using Origin = FragmentOrigin<Cfg>;
  const Origin origin; // row0: key row, col0: query column
  // p - k = d0 + x with x = c - r for query column c and key row r, and x = x0 + offset(rb, j, e).
  const int64_t d0 = queryPosition(qt * Cfg::kBlockN, nq, nk) - kt * Cfg::kBlockM;
  const int x0 = origin.col0 - origin.row0;
  // Allowed iff lo <= d0 + x <= hi: aboveLo = x0 - (lo - d0) >= -offset, belowHi = (hi - d0) - x0 >= offset.
  const int aboveLo = partial ? x0 - clampToLocal(saturatingSub(band.lo, d0)) : kLocalLimit;
  const int belowHi = partial ? clampToLocal(saturatingSub(band.hi, d0)) - x0 : kLocalLimit;
  const int keysLeft = validKeyRows<Cfg>(kt, nk) - origin.row0;     // r < keys: keysLeft > rowOffset
  const int queriesLeft = validQueries<Cfg>(qt, nq) - origin.col0;  // c < queries: queriesLeft > colOffset
  const bool dilated = partial && band.period != 1;
  // (p - k) % period == 0: (phase + offset) % period == 0 with phase = (d0 + x0) mod period.
  const int64_t phase = dilated ? (d0 + x0) - floorDiv(d0 + x0, band.period) * band.period : 0;
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int j = 0; j < Cfg::kKeyTiles; ++j)
#pragma unroll
      for (int e = 0; e < kFragRegs; ++e) {
        const int offset = Origin::colOffset(j, e) - Origin::rowOffset(rb, e);
        bool allowed = keysLeft > Origin::rowOffset(rb, e) &&
                       queriesLeft > Origin::colOffset(j, e) && aboveLo >= -offset &&
                       belowHi >= offset;
        if (dilated)
          allowed = allowed && (phase + offset) % band.period == 0;
        if (!allowed)
          st.v[rb][j][e] = kNegInf;
      }
}

/// Bit `index` (< 64 kWords) of a row of kWords 64-bit words, selected without dynamic register indexing.
template <int kWords>
__device__ __forceinline__ bool bitAt(const uint64_t (&words)[kWords], int index) {
  uint64_t word = words[0];
#pragma unroll
  for (int w = 1; w < kWords; ++w)
    word = index >= 64 * w ? words[w] : word;
  return (word >> (index % 64)) & 1u;
}

/// Masks a transposed table tile S^T (keys x queries): on PARTIAL tiles the forward-layout bits of `entry` (BLOCK_M query rows of words_per_row words, bit c of row r: query r may see key c) say which pairs are allowed; keys past Nk and queries past Nq become -inf.
template <class Cfg>
__device__ __forceinline__ void maskBitsT(ScoreTile<Cfg> &st, const attnc_schedule_table &columns,
                                          int64_t entry, int64_t qt, int64_t kt, bool partial,
                                          int64_t nq, int64_t nk) {
  const bool keyEnd = (kt + 1) * Cfg::kBlockM > nk;
  if (!partial && !keyEnd && !crossesQueryEnd<Cfg>(qt, nq))
    return;
  using Origin = FragmentOrigin<Cfg>;
  const Origin origin; // row0: key row, col0: query column
  constexpr int kWordBits = 64;
  constexpr int kWordsPerRow = (Cfg::kBlockM + kWordBits - 1) / kWordBits; // keys per bit row
  const int keysLeft = validKeyRows<Cfg>(kt, nk) - origin.row0;
  const int queriesLeft = validQueries<Cfg>(qt, nq) - origin.col0;
  const uint64_t *bits = partial ? columns.bits + __ldg(columns.bit_offsets + entry) : nullptr;
#pragma unroll
  for (int j = 0; j < Cfg::kKeyTiles; ++j)
#pragma unroll
    for (int odd = 0; odd < 2; ++odd) {
      // The bit row of query column col0 + colOffset(j, odd).
      const int col = Origin::colOffset(j, odd);
      uint64_t words[kWordsPerRow];
#pragma unroll
      for (int w = 0; w < kWordsPerRow; ++w)
        words[w] = partial ? __ldg(bits + (origin.col0 + col) * columns.words_per_row + w)
                           : ~uint64_t{0};
#pragma unroll
      for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
        for (int half = 0; half < kRowsPerThread; ++half) {
          const int e = 2 * half + odd;
          const int row = Origin::rowOffset(rb, e);
          const bool allowed = keysLeft > row && queriesLeft > col &&
                               bitAt(words, origin.row0 + row);
          if (!allowed)
            st.v[rb][j][e] = kNegInf;
        }
    }
}

//===----------------------------------------------------------------------===//
// attn.recompute_p and attn.ds
//===----------------------------------------------------------------------===//

/// LSE in the base-2 domain; +inf for a fully masked row (LSE = -inf), so that exp2(S - it) is 0, never NaN.
__device__ __forceinline__ float lseLog2(float lse) { return lse == kNegInf ? -kNegInf : lse * kLog2e; }

/// P = exp2(S scaleLog2 - LSE log2(e)) per query row (LSE of the thread's rows in registers),
/// rounded to the element type; 0 where S = -inf or LSE = -inf.
template <class Cfg>
__device__ __forceinline__ void recomputeP(const ScoreTile<Cfg> &s, const RowVec<Cfg> &lse,
                                           float scaleLog2, OperandTile<Cfg> &p) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb) {
    const float row[kRowsPerThread] = {lseLog2(lse.v[rb][0]), lseLog2(lse.v[rb][1])};
#pragma unroll
    for (int kk = 0; kk < Cfg::kKeySlices; ++kk)
#pragma unroll
      for (int r = 0; r < kFragRegs; ++r) {
        const float(&x)[kFragRegs] = s.v[rb][2 * kk + operandTileOffset(r)];
        const int e = operandElement(r);
        const float m = row[e / 2];
        p.a[rb][kk][r] = packFloat2<Cfg::kIsBf16>(fastExp2(fmaf(x[e], scaleLog2, -m)),
                                                  fastExp2(fmaf(x[e + 1], scaleLog2, -m)));
      }
  }
}

/// P^T = exp2(S^T scaleLog2 - LSE log2(e)) per query column (LSE of the step's queries in shared
/// memory), rounded to the element type; 0 where S^T = -inf or LSE = -inf.
template <class Cfg>
__device__ __forceinline__ void recomputePT(const ScoreTile<Cfg> &st, const float *lse, float scaleLog2,
                                            OperandTile<Cfg> &pt) {
  const int col0 = fragmentCol(0, 0);
#pragma unroll
  for (int j = 0; j < Cfg::kKeyTiles; ++j) {
    const float2 pair = *reinterpret_cast<const float2 *>(lse + col0 + j * kMmaN);
    const float column[2] = {lseLog2(pair.x), lseLog2(pair.y)};
#pragma unroll
    for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
      for (int half = 0; half < kRowsPerThread; ++half) {
        const float(&x)[kFragRegs] = st.v[rb][j];
        const int e = 2 * half;
        pt.a[rb][j / 2][2 * (j % 2) + half] =
            packFloat2<Cfg::kIsBf16>(fastExp2(fmaf(x[e], scaleLog2, -column[0])),
                                     fastExp2(fmaf(x[e + 1], scaleLog2, -column[1])));
      }
  }
}

/// dS = P (dP - delta) per query row (delta of the thread's rows in registers), P and dS rounded
/// to the element type.
template <class Cfg>
__device__ __forceinline__ void ds(const OperandTile<Cfg> &p, const ScoreTile<Cfg> &dp,
                                   const RowVec<Cfg> &delta, OperandTile<Cfg> &out) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int kk = 0; kk < Cfg::kKeySlices; ++kk)
#pragma unroll
      for (int r = 0; r < kFragRegs; ++r) {
        const float(&d)[kFragRegs] = dp.v[rb][2 * kk + operandTileOffset(r)];
        const int e = operandElement(r);
        const float rowDelta = delta.v[rb][e / 2];
        float p0, p1;
        unpackFloat2<Cfg::kIsBf16>(p.a[rb][kk][r], p0, p1);
        out.a[rb][kk][r] =
            packFloat2<Cfg::kIsBf16>(p0 * (d[e] - rowDelta), p1 * (d[e + 1] - rowDelta));
      }
}

/// dS^T = P^T (dP^T - delta) per query column (delta of the step's queries in shared memory), P^T
/// and dS^T rounded to the element type.
template <class Cfg>
__device__ __forceinline__ void dsT(const OperandTile<Cfg> &pt, const ScoreTile<Cfg> &dpt,
                                    const float *delta, OperandTile<Cfg> &out) {
  const int col0 = fragmentCol(0, 0);
#pragma unroll
  for (int j = 0; j < Cfg::kKeyTiles; ++j) {
    const float2 column = *reinterpret_cast<const float2 *>(delta + col0 + j * kMmaN);
#pragma unroll
    for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
      for (int half = 0; half < kRowsPerThread; ++half) {
        const int r = 2 * (j % 2) + half, e = 2 * half;
        const float(&d)[kFragRegs] = dpt.v[rb][j];
        float p0, p1;
        unpackFloat2<Cfg::kIsBf16>(pt.a[rb][j / 2][r], p0, p1);
        out.a[rb][j / 2][r] =
            packFloat2<Cfg::kIsBf16>(p0 * (d[e] - column.x), p1 * (d[e + 1] - column.y));
      }
  }
}

//===----------------------------------------------------------------------===//
// attn.matmul_acc
//===----------------------------------------------------------------------===//

/// out = acc + P B: P (the warp's rows x Cfg::kBlockN) an OperandTile, B (Cfg::kBlockN, HEAD_DIM)
/// row-major in shared memory by ldmatrix.trans (wgmma: swizzled, by descriptor). dV += P^T dO
/// and dK += dS^T Q (DkdvConfig, DkdvWgmmaConfig), dQ += dS K (DqConfig).
template <class Cfg>
__device__ __forceinline__ void matmulAcc(const AccTile<Cfg> &acc, const OperandTile<Cfg> &p,
                                          const uint16_t *bTile, AccTile<Cfg> &out) {
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int j = 0; j < Cfg::kDimTiles; ++j)
#pragma unroll
      for (int e = 0; e < kFragRegs; ++e)
        out.v[rb][j][e] = acc.v[rb][j][e];
  if constexpr (Cfg::kWgmma)
    wgmmaPv(p, bTile, out);
  else
    mmaSyncPv(p, bTile, out);
}

//===----------------------------------------------------------------------===//
// attn.dq_atomic_add
//===----------------------------------------------------------------------===//

/// The step whose dS^T dqAtomicAdd has staged but not yet added (lagged dQ: see kDqLagged).
struct DqPending {
  int64_t qt, h; // its query tile and query head
  int buffer;    // its dS^T buffer
  bool valid;    // false before the first step
};

/// No step pending (before attn.q_loop).
__device__ __forceinline__ DqPending noDqPending() { return DqPending{0, 0, 0, false}; }

/// Writes dS^T (an OperandTile) rounded to the element type into a (BLOCK_N, BLOCK_M) shared tile
/// of kDsRowElems pitch, or swizzled (kWgmmaDq: then fenced for wgmma's reads): the warp's key rows.
template <class Cfg>
__device__ __forceinline__ void storeDsT(const OperandTile<Cfg> &dst, uint16_t *dsTile) {
  const int row0 = fragmentRow<Cfg>(0, 0), col0 = fragmentCol(0, 0);
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int kk = 0; kk < Cfg::kKeySlices; ++kk)
#pragma unroll
      for (int r = 0; r < kFragRegs; ++r) {
        const int row = row0 + rb * kMmaM + (r % 2) * kRowHalfStride;
        const int col = col0 + (2 * kk + operandTileOffset(r)) * kMmaN;
        int offset;
        if constexpr (kWgmmaDq<Cfg>)
          offset = swizzledOffset<Cfg::kBlockM>(row, col);
        else
          offset = row * kDsRowElems<Cfg> + col;
        *reinterpret_cast<uint32_t *>(dsTile + offset) = dst.a[rb][kk][r];
      }
  if constexpr (kWgmmaDq<Cfg>)
    fenceProxyAsyncShared(); // the tile is a wgmma operand
}

/// dq_accum[rows of query tile qt, head h] += scale dS K with dS^T in `dsTile` (complete: every
/// warp wrote its rows before a barrier) and K (BLOCK_N, HEAD_DIM) in `kTile`: every warp
/// multiplies (kDqPieceRows query rows x kDqPieceCols dims) pieces, dS by ldmatrix.trans, and adds
/// them to the float32 [B, Nq, Hq, D] dq_accum with red.global.add (rows past Nq skipped).
template <class Cfg>
__device__ __forceinline__ void mmaSyncDqReduce(const uint16_t *dsTile, const uint16_t *kTile,
                                                const attnc_tensor_view &dqAccum, int64_t b,
                                                int64_t qt, int64_t h, float scale) {
  constexpr int kDsPitch = kDsRowElems<Cfg>;
  constexpr int kPieceBlocks = kDqPieceRows / kMmaM; // 16-row blocks of a piece
  constexpr int kPieceTiles = kDqPieceCols / kMmaN;  // 8-column n-tiles of a piece
  constexpr int kRowPieces = Cfg::kBlockN / kDqPieceRows;
  constexpr int kPieces = kRowPieces * (Cfg::kHeadDim / kDqPieceCols);
  constexpr int kPiecesPerWarp = (kPieces + Cfg::kNumWarps - 1) / Cfg::kNumWarps;
  static_assert(Cfg::kBlockN % kDqPieceRows == 0 && Cfg::kHeadDim % kDqPieceCols == 0,
                "dQ pieces tile the (BLOCK_M, HEAD_DIM) dQ");
  const int lane = laneIndex();
  // A = dS (queries x keys) from dS^T (keys x queries) by ldmatrix.trans: matrix i = lane / 8
  // covers keys (i / 2) * 8 + 0-7 and queries (i % 2) * 8 + 0-7 of a 16 x 16 k-step.
  const int aRow = (lane / (2 * kLdmRows)) * kLdmRows + lane % kLdmRows;
  const int aCol = (lane / kLdmRows % 2) * kLdmRows;
  const uint32_t aBase = sharedAddress(dsTile + aRow * kDsPitch + aCol);
  // B = K (keys x dims) by ldmatrix.trans, as matmulAcc: lane i addresses row i % 16, chunk i / 16.
  const int bRow = (lane / kLdmRows % 2) * kLdmRows + lane % kLdmRows;
  const int bCol = (lane / (2 * kLdmRows)) * kChunkElems;
  // Padded rows: one base and constant offsets. Swizzled (wgmma): the chunk moves with the column.
  const auto bAddress = [&](int kk, int col) {
    if constexpr (Cfg::kWgmma)
      return sharedAddress(kTile + swizzledOffset<Cfg::kBlockM>(bRow + kk * kMmaK, bCol + col));
    else
      return sharedAddress(kTile + bRow * Cfg::kSmemRowElems + bCol) +
             (kk * kMmaK * Cfg::kSmemRowElems + col) * kElementBytes;
  };
  float *accum = static_cast<float *>(dqAccum.data) + b * dqAccum.strides[0] + h * dqAccum.strides[2];
#pragma unroll
  for (int i = 0; i < kPiecesPerWarp; ++i) {
    const int piece = warpIndex() + i * Cfg::kNumWarps;
    if (kPieces % Cfg::kNumWarps != 0 && piece >= kPieces)
      break;
    const int row0 = (piece % kRowPieces) * kDqPieceRows, col0 = (piece / kRowPieces) * kDqPieceCols;
    float acc[kPieceBlocks][kPieceTiles][kFragRegs];
#pragma unroll
    for (int rb = 0; rb < kPieceBlocks; ++rb)
#pragma unroll
      for (int j = 0; j < kPieceTiles; ++j)
#pragma unroll
        for (int e = 0; e < kFragRegs; ++e)
          acc[rb][j][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < Cfg::kBlockM / kMmaK; ++kk) {
      uint32_t aFrag[kPieceBlocks][kFragRegs];
#pragma unroll
      for (int rb = 0; rb < kPieceBlocks; ++rb)
        ldmatrixX4Trans(aFrag[rb], aBase + (kk * kMmaK * kDsPitch + row0 + rb * kMmaM) * kElementBytes);
#pragma unroll
      for (int dd = 0; dd < kPieceTiles / 2; ++dd) {
        uint32_t bFrag[kFragRegs];
        ldmatrixX4Trans(bFrag, bAddress(kk, col0 + dd * 2 * kMmaN));
#pragma unroll
        for (int rb = 0; rb < kPieceBlocks; ++rb) {
          mma16816<Cfg::kIsBf16>(acc[rb][2 * dd], aFrag[rb], bFrag[0], bFrag[1]);
          mma16816<Cfg::kIsBf16>(acc[rb][2 * dd + 1], aFrag[rb], bFrag[2], bFrag[3]);
        }
      }
    }
#pragma unroll
    for (int rb = 0; rb < kPieceBlocks; ++rb)
#pragma unroll
      for (int half = 0; half < kRowsPerThread; ++half) {
        const int64_t row =
            qt * Cfg::kBlockN + row0 + rb * kMmaM + lane / kQuadSize + half * kRowHalfStride;
        if (row >= dqAccum.shape[1])
          continue;
        float *out = accum + row * dqAccum.strides[1] + col0 + (lane % kQuadSize) * 2;
#pragma unroll
        for (int j = 0; j < kPieceTiles; ++j)
          redAddFloat2(out + j * kMmaN, acc[rb][j][2 * half] * scale, acc[rb][j][2 * half + 1] * scale);
      }
  }
}

/// dq_accum[rows of query tile qt, head h] += scale dS K: mmaSyncDqReduce, or wgmmaDqReduce
/// (attnc_cuda_bwd_sm90.cuh) where kWgmmaDq.
template <class Cfg>
__device__ __forceinline__ void dqReduce(const uint16_t *dsTile, const uint16_t *kTile,
                                         const attnc_tensor_view &dqAccum, int64_t b, int64_t qt,
                                         int64_t h, float scale) {
  if constexpr (kWgmmaDq<Cfg>)
    wgmmaDqReduce<Cfg>(dsTile, kTile, dqAccum, b, qt, h, scale);
  else
    mmaSyncDqReduce<Cfg>(dsTile, kTile, dqAccum, b, qt, h, scale);
}

/// attn.dq_atomic_add: dq_accum[rows of query tile qt, head h] += scale dS K (Cfg = DkdvConfig,
/// K in smem.k). Lagged (kDqLagged): adds the pending step's dQ, whose dS^T every warp wrote
/// before this step's acquire() barrier, then stages this step's dS^T in the other buffer and makes
/// it pending (dqAtomicFlush adds the last). Else: stages dS^T, waits at a barrier, adds it.
template <class Cfg, class Smem>
__device__ __forceinline__ void dqAtomicAdd(const OperandTile<Cfg> &dst, DqPending &pending, Smem &smem,
                                            const attnc_tensor_view &dqAccum, int64_t b, int64_t qt,
                                            int64_t h, float scale) {
  if constexpr (kDqLagged<Cfg>) {
    if (pending.valid)
      dqReduce<Cfg>(smem.ds[pending.buffer], smem.k, dqAccum, b, pending.qt, pending.h, scale);
    // This buffer was last read for the step before the pending one, before this step's barrier.
    const int buffer = pending.valid ? pending.buffer ^ 1 : 0;
    storeDsT(dst, smem.ds[buffer]);
    pending = DqPending{qt, h, buffer, true};
  } else {
    storeDsT(dst, smem.ds[0]);
    // Every warp's dS^T rows are in place (the next step's acquire() orders their reuse).
    __syncthreads();
    dqReduce<Cfg>(smem.ds[0], smem.k, dqAccum, b, qt, h, scale);
  }
}

/// After attn.q_loop (atomic dQ): adds the dQ of the last step if dqAtomicAdd left it pending.
template <class Cfg, class Smem>
__device__ __forceinline__ void dqAtomicFlush(const DqPending &pending, Smem &smem,
                                              const attnc_tensor_view &dqAccum, int64_t b,
                                              float scale) {
  if constexpr (kDqLagged<Cfg>) {
    __syncthreads(); // every warp's dS^T rows of the last step are in place
    if (pending.valid)
      dqReduce<Cfg>(smem.ds[pending.buffer], smem.k, dqAccum, b, pending.qt, pending.h, scale);
  }
}

//===----------------------------------------------------------------------===//
// attn.store_grad
//===----------------------------------------------------------------------===//

/// attn.store_grad: stores scale * grad, the rows of tile `tile` inside the [B, N, H, D] output
/// (dQ: DqConfig, query tile; dK, dV: DkdvConfig, kv tile), staged through the warp's rows of
/// `staging` (any (Cfg::kBlockM, HEAD_DIM) shared tile; its copies and readers are retired first).
template <class Cfg>
__device__ __forceinline__ void storeGrad(const attnc_tensor_view &t, int64_t b, int64_t tile,
                                          int64_t head, const AccTile<Cfg> &grad, float scale,
                                          uint16_t *staging) {
  AccTile<Cfg> scaled;
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int j = 0; j < Cfg::kDimTiles; ++j)
#pragma unroll
      for (int e = 0; e < kFragRegs; ++e)
        scaled.v[rb][j][e] = grad.v[rb][j][e] * scale;
  // A loop of zero steps never waited for the tile copies that may still target `staging`.
  cpAsyncWait<0>();
  __syncthreads();
  storeTile<Cfg>(t, b, tile, head, scaled, staging);
}

//===----------------------------------------------------------------------===//
// GQA groups split over several blocks (few kv heads: MQA)
//===----------------------------------------------------------------------===//

/// attn.store_grad of a dK/dV kernel whose group is split over S blocks: stores scale * grad in
/// float32 into row `slice` (split s of batch b: s * B + b) of `partial` ([S * B, N, H, D]),
/// the rows of kv tile `tile` inside N, straight from the accumulator fragments.
template <class Cfg>
__device__ __forceinline__ void storeGradPartial(const attnc_tensor_view &partial, int64_t slice,
                                                 int64_t tile, int64_t head,
                                                 const AccTile<Cfg> &grad, float scale) {
  float *base = static_cast<float *>(partial.data) + slice * partial.strides[0] +
                head * partial.strides[2];
  const int64_t n = partial.shape[1];
#pragma unroll
  for (int rb = 0; rb < Cfg::kRowBlocks; ++rb)
#pragma unroll
    for (int half = 0; half < kRowsPerThread; ++half) {
      const int64_t row = tile * Cfg::kBlockM + fragmentRow<Cfg>(rb, half);
      if (row >= n)
        continue;
      float *out = base + row * partial.strides[1];
#pragma unroll
      for (int j = 0; j < Cfg::kDimTiles; ++j)
        *reinterpret_cast<float2 *>(out + fragmentCol(j, 0)) =
            make_float2(grad.v[rb][j][2 * half] * scale, grad.v[rb][j][2 * half + 1] * scale);
    }
}

/// attnc_backward_dkdv_convert_kernel: grad = the sum of the `splits` float32 partials of kv tile
/// `tile` (in split order: bitwise reproducible), rounded to the element type, rows inside N.
template <class Cfg>
__device__ __forceinline__ void sumGradPartials(const attnc_tensor_view &partial, int64_t splits,
                                                const attnc_tensor_view &grad, int64_t b,
                                                int64_t tile, int64_t head) {
  constexpr int kPairsPerRow = Cfg::kHeadDim / 2;
  const int64_t n = grad.shape[1], batch = grad.shape[0];
  for (int i = static_cast<int>(threadIdx.x); i < Cfg::kBlockM * kPairsPerRow;
       i += static_cast<int>(blockDim.x)) {
    const int64_t row = tile * Cfg::kBlockM + i / kPairsPerRow;
    const int col = 2 * (i % kPairsPerRow);
    if (row >= n)
      continue;
    float2 sum = make_float2(0.0f, 0.0f);
    for (int64_t s = 0; s < splits; ++s) {
      const float2 v = *reinterpret_cast<const float2 *>(
          static_cast<const float *>(partial.data) + (s * batch + b) * partial.strides[0] +
          row * partial.strides[1] + head * partial.strides[2] + col);
      sum.x += v.x;
      sum.y += v.y;
    }
    uint16_t *out = static_cast<uint16_t *>(grad.data) + b * grad.strides[0] +
                    row * grad.strides[1] + head * grad.strides[2] + col;
    *reinterpret_cast<uint32_t *>(out) = packFloat2<Cfg::kIsBf16>(sum.x, sum.y);
  }
}

} // namespace attnc_cuda

#endif // ATTNC_CUDA_BWD_CUH
