//===- attnc_cuda_sm90.cuh - Hopper (sm_90a) wgmma flash loop -----*- CUDA -*-===//
//
// The Hopper mainloop of generated forward kernels: the same loop IR and the
// same helper calls as attnc_cuda.cuh's mma.sync kernels, with the tile
// configuration WgmmaConfig instead of FlashConfig. What differs:
//
//   - each warpgroup (4 consecutive warps, 128 threads) owns 64 query rows
//     and issues warpgroup MMAs (wgmma.mma_async m64nNk16, f32 accumulate):
//     S = Q K^T with Q and K in shared memory, O += P V with P in registers
//     (the A fragments of mma.sync) and V in shared memory;
//   - Q, K and V tiles are stored 128-byte swizzled (the wgmma SWIZZLE_128B
//     layout, described by 64-bit shared-memory descriptors), split into
//     column blocks of 64 elements; cp.async fills them, and a proxy fence
//     orders those writes before wgmma's reads.
//
// The accumulator layout of wgmma m64nN is, per warp, the mma.sync m16n8
// accumulator layout of its 16 rows repeated over the N/8 n-tiles, so the
// online softmax, the masks, finalize and storeLse of attnc_cuda.cuh serve
// both mainloops unchanged (one 16-row block per warp).
//
// Needs the arch-specific target sm_90a (compute capability 9.0).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_CUDA_SM90_CUH
#define ATTNC_CUDA_SM90_CUH

#include "attnc_cuda.cuh"

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "attnc wgmma kernels need the sm_90a target (compute capability 9.0)"
#endif

namespace attnc_cuda {

/// Warps per warpgroup, and the rows of one wgmma accumulator tile.
constexpr int kWarpgroupWarps = 4, kWgmmaM = 64;
/// One row of a swizzle atom: 128 bytes, 64 bf16/fp16 elements (a "column block" of a tile).
constexpr int kSwizzleRowBytes = 128, kSwizzleCols = kSwizzleRowBytes / kElementBytes;
/// A swizzle atom: 8 rows of 128 bytes; tiles are aligned to it.
constexpr int kSwizzleAtomRows = 8, kSwizzleAtomBytes = kSwizzleAtomRows * kSwizzleRowBytes;

//===----------------------------------------------------------------------===//
// Tile configuration and shared memory
//===----------------------------------------------------------------------===//

/// The tile configuration of a wgmma kernel: NumWarps / 4 warpgroups of 64 query rows each.
template <bool IsBf16, int BlockM, int BlockN, int HeadDim, int NumWarps, int Stages>
struct WgmmaConfig {
  static constexpr bool kIsBf16 = IsBf16;
  static constexpr bool kWgmma = true;
  static constexpr int kBlockM = BlockM;   // query rows per thread block
  static constexpr int kBlockN = BlockN;   // keys per kv tile
  static constexpr int kHeadDim = HeadDim; // D
  static constexpr int kNumWarps = NumWarps;
  static constexpr int kStages = Stages; // kv tiles in flight in the cp.async ring
  static constexpr int kNumThreads = NumWarps * kWarpSize;
  static constexpr int kRowsPerWarp = kMmaM; // a warp's 16 rows of its warpgroup's 64
  static constexpr int kRowBlocks = 1;
  static constexpr int kDimSlices = HeadDim / kMmaK;  // k-steps of S = Q K^T
  static constexpr int kKeyTiles = BlockN / kMmaN;    // 8-key n-tiles of S
  static constexpr int kKeySlices = BlockN / kMmaK;   // k-steps of O += P V
  static constexpr int kDimTiles = HeadDim / kMmaN;   // 8-column n-tiles of O
  static constexpr int kChunksPerRow = HeadDim / kChunkElems;
  static constexpr int kQSmemElems = BlockM * HeadDim;  // (BLOCK_M, HEAD_DIM) swizzled
  static constexpr int kKvSmemElems = BlockN * HeadDim; // (BLOCK_N, HEAD_DIM) swizzled

  static_assert(NumWarps % kWarpgroupWarps == 0 && BlockM == NumWarps / kWarpgroupWarps * kWgmmaM,
                "each warpgroup owns 64 query rows");
  static_assert(BlockN == 64 || BlockN == 128, "wgmma n-sizes of S: 64 or 128 keys");
  static_assert(HeadDim == 64 || HeadDim == 128, "wgmma n-sizes of O: head_dim 64 or 128");
  static_assert(BlockN % kSwizzleAtomRows == 0, "whole swizzle atoms per tile");
  static_assert(Stages >= 2, "the kv pipeline needs >= 2 stages");
};

/// The shared memory of a wgmma kernel: Q (reused to stage O) and the K/V ring, each tile
/// 128-byte swizzled (swizzledOffset) and aligned to a swizzle atom.
template <class Cfg> struct SharedStorage<Cfg, true> {
  alignas(kSwizzleAtomBytes) uint16_t q[Cfg::kQSmemElems];
  alignas(kSwizzleAtomBytes) uint16_t k[Cfg::kStages][Cfg::kKvSmemElems];
  alignas(kSwizzleAtomBytes) uint16_t v[Cfg::kStages][Cfg::kKvSmemElems];
};

/// Q of a wgmma kernel stays in shared memory: the warpgroup's 64 rows as a descriptor base.
template <class Cfg> struct QTile<Cfg, true> {
  uint32_t smem;   // shared address of the warpgroup's first row in column block 0
  float scaleLog2; // softmax scale * log2(e), applied to scores
};

/// The element offset of (row, col) in a 128-byte-swizzled tile of Rows rows: column blocks of 64
/// elements (Rows x 128 bytes each), the 16-byte chunk index XOR-ed with row % 8.
template <int Rows> __device__ __forceinline__ int swizzledOffset(int row, int col) {
  const int block = col / kSwizzleCols, chunk = col % kSwizzleCols / kChunkElems;
  return block * Rows * kSwizzleCols + row * kSwizzleCols +
         ((chunk ^ (row % kSwizzleAtomRows)) * kChunkElems) + col % kChunkElems;
}

/// The calling thread's warpgroup in its block.
__device__ __forceinline__ int warpgroupIndex() { return warpIndex() / kWarpgroupWarps; }

//===----------------------------------------------------------------------===//
// wgmma instructions
//===----------------------------------------------------------------------===//

/// A wgmma shared-memory matrix descriptor of a 128-byte-swizzled operand: start address,
/// leading and stride byte offsets (all >> 4), layout type 1 (SWIZZLE_128B); the operand's
/// atoms are 1024-byte aligned (base offset 0).
__device__ __forceinline__ uint64_t swizzledDescriptor(uint32_t address, uint32_t leadingBytes,
                                                       uint32_t strideBytes) {
  constexpr uint64_t kSwizzle128B = 1;
  constexpr uint32_t kField = 0x3fff; // 14-bit fields of 16-byte units
  return static_cast<uint64_t>((address >> 4) & kField) |
         static_cast<uint64_t>((leadingBytes >> 4) & kField) << 16 |
         static_cast<uint64_t>((strideBytes >> 4) & kField) << 32 | kSwizzle128B << 62;
}

/// The descriptor of a K-major operand (rows x 16 of a tile of Rows rows, k-step ks): k-steps
/// walk 32 bytes inside a column block, then on to the next; 8-row groups are 1024 bytes apart.
template <int Rows>
__device__ __forceinline__ uint64_t kMajorDescriptor(uint32_t tileAddress, int ks) {
  constexpr int kStepsPerBlock = kSwizzleCols / kMmaK;
  const uint32_t address = tileAddress + (ks / kStepsPerBlock) * Rows * kSwizzleRowBytes +
                           (ks % kStepsPerBlock) * kMmaK * kElementBytes;
  return swizzledDescriptor(address, /*leadingBytes=*/kChunkBytes, kSwizzleAtomBytes);
}

/// The descriptor of an N-major operand (16 x N, k-step kk) of a tile of Rows rows whose rows are
/// the k dimension (V: keys x head_dim): 8-row groups 1024 bytes apart, column blocks of 64 apart
/// by Rows x 128 bytes.
template <int Rows>
__device__ __forceinline__ uint64_t nMajorDescriptor(uint32_t tileAddress, int kk) {
  const uint32_t address = tileAddress + kk * kMmaK * kSwizzleRowBytes;
  return swizzledDescriptor(address, /*leadingBytes=*/Rows * kSwizzleRowBytes, kSwizzleAtomBytes);
}

/// Orders register accesses before the warpgroup's next wgmma (wgmma.fence).
__device__ __forceinline__ void wgmmaFence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}

/// Closes the group of wgmma operations issued since the last commit.
__device__ __forceinline__ void wgmmaCommit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

/// Waits until at most `Pending` committed wgmma groups of the warpgroup are in flight.
template <int Pending> __device__ __forceinline__ void wgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}

/// Keeps the compiler from moving accesses of accumulator registers across a wgmma fence or wait.
template <int N> __device__ __forceinline__ void pinRegisters(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
    asm volatile("" : "+f"(d[i])::"memory");
}

// The 32 f32 accumulator registers of a 64 x 64 wgmma tile, as asm operands %0 .. %31.
#define ATTNC_WGMMA_ACC32_REGS "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define ATTNC_WGMMA_ACC32_OPERANDS \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

// The 64 f32 accumulator registers of a 64 x 128 wgmma tile, as asm operands %0 .. %63.
#define ATTNC_WGMMA_ACC64_REGS "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define ATTNC_WGMMA_ACC64_OPERANDS \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

/// D (64 x 64, f32) = A B + (accumulate ? D : 0): A (64 x 16) and B^T (64 x 16) K-major in shared
/// memory (descriptors); Transposed: A (64 x 16) M-major and B (16 x 64) N-major instead.
template <bool IsBf16, bool Transposed = false>
__device__ __forceinline__ void wgmmaSS64(float (&d)[32], uint64_t a, uint64_t b, int accumulate) {
  if constexpr (IsBf16)
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " ATTNC_WGMMA_ACC32_REGS
                 ", %32, %33, p, 1, 1, %35, %35;\n}\n"
                 : ATTNC_WGMMA_ACC32_OPERANDS
                 : "l"(a), "l"(b), "r"(accumulate), "n"(Transposed ? 1 : 0));
  else
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " ATTNC_WGMMA_ACC32_REGS
                 ", %32, %33, p, 1, 1, %35, %35;\n}\n"
                 : ATTNC_WGMMA_ACC32_OPERANDS
                 : "l"(a), "l"(b), "r"(accumulate), "n"(Transposed ? 1 : 0));
}

/// D (64 x 64, f32) += A B: A (64 x 16) in registers as mma A fragments, B (16 x 64) N-major in shared
/// memory (descriptor, transposed on the fly).
template <bool IsBf16>
__device__ __forceinline__ void wgmmaRS64(float (&d)[32], const uint32_t (&a)[kFragRegs], uint64_t b) {
  if constexpr (IsBf16)
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " ATTNC_WGMMA_ACC32_REGS
                 ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : ATTNC_WGMMA_ACC32_OPERANDS
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
  else
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " ATTNC_WGMMA_ACC32_REGS
                 ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : ATTNC_WGMMA_ACC32_OPERANDS
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

/// D (64 x 128, f32) = A B + (accumulate ? D : 0): A (64 x 16) and B^T (128 x 16) K-major in shared
/// memory (descriptors).
template <bool IsBf16>
__device__ __forceinline__ void wgmmaSS128(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
  if constexpr (IsBf16)
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " ATTNC_WGMMA_ACC64_REGS
                 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : ATTNC_WGMMA_ACC64_OPERANDS
                 : "l"(a), "l"(b), "r"(accumulate));
  else
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 " ATTNC_WGMMA_ACC64_REGS
                 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : ATTNC_WGMMA_ACC64_OPERANDS
                 : "l"(a), "l"(b), "r"(accumulate));
}

/// D (64 x 128, f32) += A B: A (64 x 16) in registers as mma A fragments, B (16 x 128) N-major in shared
/// memory (descriptor, transposed on the fly).
template <bool IsBf16>
__device__ __forceinline__ void wgmmaRS128(float (&d)[64], const uint32_t (&a)[kFragRegs], uint64_t b) {
  if constexpr (IsBf16)
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " ATTNC_WGMMA_ACC64_REGS
                 ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
                 : ATTNC_WGMMA_ACC64_OPERANDS
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
  else
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 " ATTNC_WGMMA_ACC64_REGS
                 ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
                 : ATTNC_WGMMA_ACC64_OPERANDS
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

#undef ATTNC_WGMMA_ACC32_REGS
#undef ATTNC_WGMMA_ACC32_OPERANDS
#undef ATTNC_WGMMA_ACC64_REGS
#undef ATTNC_WGMMA_ACC64_OPERANDS

/// D (64 x N) = A B + (accumulate ? D : 0), A and B^T K-major in shared memory.
template <int N, bool IsBf16>
__device__ __forceinline__ void wgmmaSS(float (&d)[N / 2], uint64_t a, uint64_t b, int accumulate) {
  if constexpr (N == 64)
    wgmmaSS64<IsBf16>(d, a, b, accumulate);
  else
    wgmmaSS128<IsBf16>(d, a, b, accumulate);
}

/// D (64 x N) += A B, A in registers, B N-major in shared memory.
template <int N, bool IsBf16>
__device__ __forceinline__ void wgmmaRS(float (&d)[N / 2], const uint32_t (&a)[kFragRegs],
                                        uint64_t b) {
  if constexpr (N == 64)
    wgmmaRS64<IsBf16>(d, a, b);
  else
    wgmmaRS128<IsBf16>(d, a, b);
}

//===----------------------------------------------------------------------===//
// attn.load_tile
//===----------------------------------------------------------------------===//

/// copyTileAsync for wgmma kernels: rows [row0, row0 + Rows) of a [B, N, H, D] tensor at (b, head)
/// into a swizzled tile; rows past N are zero.
template <class Cfg, int Rows>
__device__ __forceinline__ void copyTileSwizzledAsync(const attnc_tensor_view &t, int64_t b,
                                                      int64_t row0, int64_t head, uint16_t *smem) {
  // Each pass of the block copies kRowsPerPass whole rows, one 16-byte chunk per thread; passes
  // start on swizzle-atom rows, so a thread's chunk keeps its swizzled column in every pass.
  constexpr int kRowsPerPass = Cfg::kNumThreads / Cfg::kChunksPerRow;
  constexpr int kPasses = Rows / kRowsPerPass;
  static_assert(Cfg::kNumThreads % Cfg::kChunksPerRow == 0 && Rows % kRowsPerPass == 0 &&
                    kRowsPerPass % kSwizzleAtomRows == 0,
                "tile copy: whole rows and swizzle atoms per pass");
  const int r = static_cast<int>(threadIdx.x) / Cfg::kChunksPerRow;
  const int c = static_cast<int>(threadIdx.x) % Cfg::kChunksPerRow;
  const int64_t rowsLeft = t.shape[1] - row0 - r; // pass i copies a row iff rowsLeft > i * kRowsPerPass
  const int64_t passStride = kRowsPerPass * t.strides[1];
  const uint16_t *base = rowPointer(t, b, 0, head);
  const uint16_t *src = base + (row0 + r) * t.strides[1] + c * kChunkElems;
  const uint32_t dst = sharedAddress(smem + swizzledOffset<Rows>(r, c * kChunkElems));
#pragma unroll
  for (int i = 0; i < kPasses; ++i) {
    const bool inside = rowsLeft > i * kRowsPerPass;
    cpAsync16(dst + i * kRowsPerPass * kSwizzleRowBytes, inside ? src + i * passStride : base,
              inside);
  }
}

/// loadQFragments for wgmma kernels: waits for the Q copy (the `Younger` groups committed after it
/// may stay in flight) and keeps the warpgroup's rows of Q in shared memory as the A operand.
template <class Cfg, int Younger>
__device__ __forceinline__ void loadQDescriptor(const uint16_t *smemQ, float scaleLog2,
                                                QTile<Cfg> &out) {
  cpAsyncWait<Younger>();
  fenceProxyAsyncShared();
  __syncthreads();
  out.smem = sharedAddress(smemQ) + warpgroupIndex() * kWgmmaM * kSwizzleRowBytes;
  out.scaleLog2 = scaleLog2;
}

//===----------------------------------------------------------------------===//
// attn.qk and attn.pv_update
//===----------------------------------------------------------------------===//

/// qk for wgmma kernels: S (the warpgroup's 64 x BLOCK_N) = Q K^T, both from shared memory.
template <class Cfg>
__device__ __forceinline__ void wgmmaQk(const QTile<Cfg> &q, const uint16_t *kTile,
                                        ScoreTile<Cfg> &s) {
  float(&d)[Cfg::kBlockN / 2] = reinterpret_cast<float(&)[Cfg::kBlockN / 2]>(s.v);
  s.scaleLog2 = q.scaleLog2;
  const uint32_t kAddress = sharedAddress(kTile);
  pinRegisters(d);
  wgmmaFence();
#pragma unroll
  for (int ks = 0; ks < Cfg::kDimSlices; ++ks)
    wgmmaSS<Cfg::kBlockN, Cfg::kIsBf16>(d, kMajorDescriptor<Cfg::kBlockM>(q.smem, ks),
                                         kMajorDescriptor<Cfg::kBlockN>(kAddress, ks), ks > 0);
  wgmmaCommit();
  wgmmaWait<0>();
  pinRegisters(d);
}

/// mmaSyncPv for wgmma kernels: out (the warpgroup's 64 x HEAD_DIM) += P V, V from shared memory.
template <class Cfg>
__device__ __forceinline__ void wgmmaPv(const OperandTile<Cfg> &p, const uint16_t *vTile,
                                        AccTile<Cfg> &out) {
  float(&d)[Cfg::kHeadDim / 2] = reinterpret_cast<float(&)[Cfg::kHeadDim / 2]>(out.v);
  const uint32_t vAddress = sharedAddress(vTile);
  pinRegisters(d);
  wgmmaFence();
#pragma unroll
  for (int kk = 0; kk < Cfg::kKeySlices; ++kk)
    wgmmaRS<Cfg::kHeadDim, Cfg::kIsBf16>(d, p.a[0][kk], nMajorDescriptor<Cfg::kBlockN>(vAddress, kk));
  wgmmaCommit();
  wgmmaWait<0>();
  pinRegisters(d);
}

//===----------------------------------------------------------------------===//
// attn.tile_yield
//===----------------------------------------------------------------------===//

/// storeTile for wgmma kernels: the warp's 16 rows staged swizzled in its rows of smemQ (the
/// warpgroup's wgmmas that read them have completed), then stored with 16-byte stores.
template <class Cfg>
__device__ __forceinline__ void storeTileSwizzled(const attnc_tensor_view &t, int64_t b,
                                                  int64_t qt, int64_t h, const AccTile<Cfg> &o,
                                                  uint16_t *smemQ) {
  __syncwarp();
  const int lane = laneIndex();
  const int warpRow0 = warpIndex() * Cfg::kRowsPerWarp;
#pragma unroll
  for (int half = 0; half < kRowsPerThread; ++half) {
    const int r = warpRow0 + lane / kQuadSize + half * kRowHalfStride;
#pragma unroll
    for (int j = 0; j < Cfg::kDimTiles; ++j) {
      const int c = j * kMmaN + (lane % kQuadSize) * 2;
      *reinterpret_cast<uint32_t *>(smemQ + swizzledOffset<Cfg::kBlockM>(r, c)) =
          packFloat2<Cfg::kIsBf16>(o.v[0][j][2 * half], o.v[0][j][2 * half + 1]);
    }
  }
  __syncwarp();
  constexpr int kChunksPerLane = Cfg::kRowsPerWarp * Cfg::kChunksPerRow / kWarpSize;
  const int64_t row0 = qt * Cfg::kBlockM + warpRow0;
  uint16_t *out = static_cast<uint16_t *>(t.data) + b * t.strides[0] + h * t.strides[2];
#pragma unroll
  for (int i = 0; i < kChunksPerLane; ++i) {
    const int chunk = lane + i * kWarpSize;
    const int r = chunk / Cfg::kChunksPerRow, c = chunk % Cfg::kChunksPerRow;
    if (row0 + r < t.shape[1])
      *reinterpret_cast<uint4 *>(out + (row0 + r) * t.strides[1] + c * kChunkElems) =
          *reinterpret_cast<const uint4 *>(smemQ +
                                           swizzledOffset<Cfg::kBlockM>(warpRow0 + r, c * kChunkElems));
  }
}

} // namespace attnc_cuda

#endif // ATTNC_CUDA_SM90_CUH
