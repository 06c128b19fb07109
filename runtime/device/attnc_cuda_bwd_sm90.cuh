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
// is, per warp, the m16n8 accumulator layout). Atomic dQ still multiplies
// dS K with mma.sync from the padded dS^T tile (dqReduce), reading K swizzled.
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

} // namespace attnc_cuda

#endif // ATTNC_CUDA_BWD_SM90_CUH
