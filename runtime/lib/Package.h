//===- Package.h - Kernel packages, loaded and validated --------*- C++ -*-===//
//
// A kernel package (runtime/README.md, format version 1) is a manifest.json
// and the kernel source it names. Loading validates everything before anything
// is compiled: the format, the attnc and ABI versions, the target, every
// required field and its type, the spec and source hashes, the spec itself
// (through the spec loader), the consistency of the manifest's summary
// fields (dtype, heads, lengths, schedule, arguments) with the spec, and for
// CUDA packages the launch configuration (grid, block size, shared memory).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_PACKAGE_H
#define ATTNC_RUNTIME_LIB_PACKAGE_H

#include "attnc/Mask/Mask.h"
#include "attnc/runtime/kernel_abi.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace attnc::runtime {

/// How a kernel finds the kv tiles of a query tile.
enum class ScheduleKind {
  Band,  ///< closed form compiled into the kernel; the runtime passes no table
  Table, ///< the runtime builds an attnc_schedule_table at launch
};

/// What a package's kernel is compiled for.
enum class Target {
  Cpu,  ///< C++ for the system compiler; entry ATTNC_FORWARD_SYMBOL
  Cuda, ///< CUDA C++ for NVRTC; entry ATTNC_CUDA_FORWARD_SYMBOL
};

/// How a package's forward kernel multiplies its tiles (tile.mma).
enum class Mma {
  Sync,  ///< "sync": mma.sync m16n8k16, any GPU from sm_80
  Wgmma, ///< "wgmma": Hopper warpgroup MMA, only sm_90a (launch.arch)
};

/// A validated package. Immutable once loaded; kernels keep it alive.
struct PackageData {
  std::string manifestPath; ///< "DIR/manifest.json", or "manifest.json" from memory
  std::string name;         ///< the manifest's "name"
  Target target = Target::Cpu;
  std::string specJson; ///< the "spec" object as compact JSON (spec_hash's input)
  mask::Mask mask;      ///< the spec's mask, canonicalized
  attnc_dtype dtype = ATTNC_DTYPE_BF16;
  int64_t headDim = 0, queryHeads = 0, kvHeads = 0;
  std::optional<int64_t> seqLenQ, seqLenKV; ///< fixed by the spec, else given at launch
  int64_t blockM = 0, blockN = 0;
  Mma mma = Mma::Sync; ///< tile.mma (informational; absent: "sync")
  ScheduleKind schedule = ScheduleKind::Band;
  int64_t runtimeGlobalTokens = 0; ///< capacity of the launch-time token list
  /// d > 1: a dilated window re-indexed by residue class; the kernel runs
  /// once per class r < d on strided views (positions r, r + d, ...).
  int64_t residueClasses = 1;
  std::string sourceFile;          ///< the source's file name ("kernel.cpp")
  std::string source;              ///< its bytes, hash-checked
  std::string entry; ///< the entry point (ATTNC_FORWARD_SYMBOL, ATTNC_CUDA_FORWARD_SYMBOL)
  /// CUDA: launch.threads_per_block and launch.shared_bytes (dynamic shared
  /// memory per block); 0 for CPU packages.
  int64_t threadsPerBlock = 0, sharedBytes = 0;
  /// CUDA: launch.arch, the GPU architecture the kernel needs (TargetArch.h):
  /// "sm_90a" for a Hopper wgmma forward; empty for portable kernels,
  /// compiled for the architecture of whichever GPU runs them.
  std::string arch;

  /// A backward CUDA kernel: entry point and launch size (the manifest's
  /// backward.kernels.ROLE).
  struct CudaLaunch {
    std::string entry;
    int64_t threadsPerBlock = 0, sharedBytes = 0;
    /// preprocess, dq, dq_convert: query rows per tile, grid x = ceil(nq /
    /// blockM); 0 (the kernel names no block_m): the forward's tile.block_m.
    int64_t blockM = 0;
    int64_t blockN = 0; ///< dkdv: keys per kv tile, grid x = ceil(nk / blockN)
    int64_t groupSplits = 1; ///< dkdv: blocks per (kv tile, kv head), grid y = Hkv x this
  };
  /// The backward pass ("backward" in the manifest): present, and dQ by the
  /// separate deterministic pass (else float32 atomics, CUDA only).
  bool hasBackward = false;
  bool deterministic = false;
  std::string backwardEntry; ///< CPU: ATTNC_BACKWARD_SYMBOL
  /// CUDA: the kernels in launch order; dq is the deterministic pass,
  /// dqConvert the atomic one's conversion (one of the two is empty).
  CudaLaunch preprocess, dkdv, dq, dqConvert;
  CudaLaunch dkdvConvert; ///< sums dK, dV partials when dkdv.groupSplits > 1 (else empty)
};

/// "cpu" or "cuda".
const char *targetName(Target target);

/// Loads DIR/manifest.json and the source it names. Throws Error.
std::shared_ptr<const PackageData> loadPackage(const std::string &dir);

/// The same from memory (the JIT path). Throws Error.
std::shared_ptr<const PackageData> loadPackageFromMemory(const std::string &manifestJson,
                                                         const std::string &source);

/// "bf16", "fp16" or "fp32"; "dtype N (unknown)" for other values.
std::string dtypeName(int32_t dtype);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_PACKAGE_H
