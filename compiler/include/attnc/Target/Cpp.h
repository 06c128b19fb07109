//===- Cpp.h - emit-cpp: the flash loop as portable C++ ---------*- C++ -*-===//

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
/// helpers of runtime/device/attnc_cuda.cuh (mma.sync, ldmatrix, cp.async).
mlir::LogicalResult emitKernel(mlir::ModuleOp module, KernelTarget target,
                               const std::string &banner, llvm::raw_ostream &os);

/// Bytes of dynamic shared memory of a CUDA kernel (SharedStorage<Cfg>).
int64_t cudaSharedBytes(int64_t blockM, int64_t blockN, int64_t headDim, int64_t stages);

/// Prints a module prepared by attn-prepare-for-emission (one function
/// holding one attn.flash_loop) as a C++17 source exporting attnc_forward
/// (runtime/include/attnc/runtime/kernel_abi.h): threads over batch x query
/// head x query tile, float32 accumulation. `banner` is the comment block
/// opening the file. Fails, with a diagnostic, on anything it cannot print.
mlir::LogicalResult emitCpp(mlir::ModuleOp module, const std::string &banner,
                            llvm::raw_ostream &os);

} // namespace attnc

#endif // ATTNC_TARGET_CPP_H
