//===- attnc_cuda_bwd_sm90.cuh - Hopper (sm_90a) wgmma dK/dV kernel -*- CUDA -*-===//
//
// The Hopper variant of the backward's kv-stationary (dK/dV) kernel: the same
// kernel text and helpers as attnc_cuda_bwd.cuh, with the tile configuration
// DkdvWgmmaConfig instead of DkdvConfig. Each warpgroup owns 64 of the kv
// tile's 128 keys; the four matmuls of a step are warpgroup MMAs on the
// swizzled K, V, Q and dO tiles (attnc_cuda_sm90.cuh):
//
//   S^T  = K Q^T     wgmmaQkT (SS: both operands K-major, by descriptor)
//   dP^T = V dO^T    wgmmaQkT
//   dV  += P^T dO    wgmmaPv (RS: P^T in registers, dO N-major)
//   dK  += dS^T Q    wgmmaPv (RS: dS^T in registers, Q N-major)
//
// One swizzled Q (or dO) tile serves as a K-major operand (S^T) and as an
// N-major one (dK): the swizzle is the same, only the descriptor differs.
// Masks, P^T and dS^T are the mma.sync kernel's code (the wgmma accumulator
// is, per warp, the m16n8 accumulator layout). Atomic dQ at HEAD_DIM 128
// stages dS^T swizzled and multiplies dS K by wgmma too (wgmmaDqReduce: dS
// M-major and K N-major, each warpgroup one 64-dim half); at HEAD_DIM 64 by
// mma.sync from a padded dS^T tile (mmaSyncDqReduce), reading K swizzled.
//
// Needs the arch-specific target sm_90a (compute capability 9.0).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_CUDA_BWD_SM90_CUH
#define ATTNC_CUDA_BWD_SM90_CUH

#include "attnc_cuda_bwd.cuh"
#include "attnc_cuda_sm90.cuh"

namespace attnc_cuda {

/// The wgmma dK/dV kernel's configuration: WgmmaConfig transposed, as DkdvConfig is FlashConfig
/// transposed. Tile rows are the BlockN keys of the kv tile (two warpgroups of 64 at 128 keys),
/// tile columns the BlockM query rows of a step (64 or 128: wgmma n-sizes).
template <bool IsBf16, int BlockM, int BlockN, int HeadDim>
using DkdvWgmmaConfig =
    WgmmaConfig<IsBf16, BlockN, BlockM, HeadDim, dkdvWarps(BlockN), kBackwardStages>;

static_assert(kTileAlignment<DkdvWgmmaConfig<true, 64, 128, 128>> == kSwizzleAtomBytes,
              "wgmma operand tiles are aligned to a swizzle atom");

/// qkT for wgmma kernels: S^T (the warpgroup's 64 rows x Cfg::kBlockN) = A B^T (unscaled), A the
/// warpgroup's rows of a swizzled (Cfg::kBlockM, HEAD_DIM) tile (K or V), B a swizzled
/// (Cfg::kBlockN, HEAD_DIM) tile (Q or dO). s.scaleLog2 is 1.
template <class Cfg>
__device__ __forceinline__ void wgmmaQkT(const uint16_t *aTile, const uint16_t *bTile,
                                         ScoreTile<Cfg> &s) {
  QTile<Cfg> a; // the A operand's descriptor base, as wgmmaQk takes Q
  a.smem = sharedAddress(aTile) + warpgroupIndex() * kWgmmaM * kSwizzleRowBytes;
  a.scaleLog2 = 1.0f;
  wgmmaQk(a, bTile, s);
}

/// dqReduce for wgmma kernels at HEAD_DIM 128 (kWgmmaDq): dq_accum[rows of query tile qt, head h]
/// += scale dS K, dS^T in the swizzled `dsTile` (every warp wrote and fenced its rows before a
/// barrier) and K in `kTile`. Warpgroup g multiplies dS (64 x BLOCK_N, M-major: dS^T's rows are
/// keys) by dims [64 g, 64 g + 64) of K (N-major, one column block) and adds its 64 x 64 block to
/// the float32 [B, Nq, Hq, D] dq_accum with red.global.add (rows past Nq skipped).
template <class Cfg>
__device__ __forceinline__ void wgmmaDqReduce(const uint16_t *dsTile, const uint16_t *kTile,
                                              const attnc_tensor_view &dqAccum, int64_t b,
                                              int64_t qt, int64_t h, float scale) {
  static_assert(kWgmmaDq<Cfg> && Cfg::kBlockN == kWgmmaM && Cfg::kHeadDim == 2 * kSwizzleCols,
                "dS K by wgmma: 64 query rows, one 64-dim column block of K per warpgroup");
  constexpr int kKeySteps = Cfg::kBlockM / kMmaK; // k-steps over the kv tile's keys
  constexpr int kTiles = kSwizzleCols / kMmaN;    // 8-dim n-tiles of a warpgroup's block
  float d[kSwizzleCols / 2];
  const int group = warpgroupIndex();
  const uint32_t dsAddress = sharedAddress(dsTile);
  const uint32_t kAddress = sharedAddress(kTile) + group * Cfg::kBlockM * kSwizzleRowBytes;
  pinRegisters(d);
  wgmmaFence();
#pragma unroll
  for (int kk = 0; kk < kKeySteps; ++kk)
    wgmmaSS64<Cfg::kIsBf16, /*Transposed=*/true>(d, nMajorDescriptor<Cfg::kBlockM>(dsAddress, kk),
                                                  nMajorDescriptor<Cfg::kBlockM>(kAddress, kk),
                                                  kk > 0);
  wgmmaCommit();
  wgmmaWait<0>();
  pinRegisters(d);
  // The accumulator: the warp's 16 query rows, n-tile j's two dims per thread (as mma.sync's).
  const int lane = laneIndex();
  float *accum = static_cast<float *>(dqAccum.data) + b * dqAccum.strides[0] + h * dqAccum.strides[2] +
                 group * kSwizzleCols + (lane % kQuadSize) * 2;
#pragma unroll
  for (int half = 0; half < kRowsPerThread; ++half) {
    const int64_t row = qt * Cfg::kBlockN + (warpIndex() % kWarpgroupWarps) * kMmaM +
                        lane / kQuadSize + half * kRowHalfStride;
    if (row >= dqAccum.shape[1])
      continue;
    float *out = accum + row * dqAccum.strides[1];
#pragma unroll
    for (int j = 0; j < kTiles; ++j)
      redAddFloat2(out + j * kMmaN, d[j * kFragRegs + 2 * half] * scale,
                   d[j * kFragRegs + 2 * half + 1] * scale);
  }
}

} // namespace attnc_cuda

#endif // ATTNC_CUDA_BWD_SM90_CUH
