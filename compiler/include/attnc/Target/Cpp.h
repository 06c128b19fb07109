//===- Cpp.h - emit-cpp and emit-cuda: the flash loop as a kernel -*- C++ -*-===//

#ifndef ATTNC_TARGET_CPP_H
#define ATTNC_TARGET_CPP_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace attnc {

/// What a kernel is printed for.
enum class KernelTarget { Cpu, Cuda };

/// Prints a module prepared by attn-prepare-for-emission (one function holding
/// one attn.flash_loop) for `target`: C++17 exporting attnc_forward (CPU), or
/// CUDA C++ for NVRTC and nvcc exporting attnc_forward_kernel, calling the
/// helpers of runtime/device/attnc_cuda.cuh (mma.sync, ldmatrix, cp.async)
/// and, for a wgmma tile, attnc_cuda_sm90.cuh (Hopper's wgmma, sm_90a).
mlir::LogicalResult emitKernel(mlir::ModuleOp module, KernelTarget target,
                               const std::string &banner, llvm::raw_ostream &os);

/// Bytes of dynamic shared memory of a CUDA forward kernel (kSharedBytes<Cfg>)
/// whose tile's `mma` is "sync" (FlashConfig) or "wgmma" (WgmmaConfig).
int64_t cudaSharedBytes(int64_t blockM, int64_t blockN, int64_t headDim, int64_t stages,
                        llvm::StringRef mma);

/// How many dK/dV blocks of the CUDA backward share a kv tile's GQA group of
/// `group` query heads (1: one block walks them all); band schedules only.
int64_t cudaBackwardGroupSplits(int64_t group, bool band);

/// Dynamic shared memory of the backward's CUDA kernels: the kv-stationary
/// dK/dV kernel (`dkdv`, with the dS^T staging tile when `atomicDq`; `mma`
/// its kv tile's: "wgmma" for DkdvWgmmaConfig) or the deterministic dQ kernel.
int64_t cudaBackwardSharedBytes(int64_t blockM, int64_t blockN, int64_t headDim, bool dkdv,
                                bool atomicDq, llvm::StringRef mma = "sync");

} // namespace attnc

#endif // ATTNC_TARGET_CPP_H
