//===- Manifest.h - Kernel package manifests --------------------*- C++ -*-===//
//
// Writes manifest.json of a kernel package (format in runtime/README.md).
// Free of MLIR; the runtime reads what this writes.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_PACKAGE_MANIFEST_H
#define ATTNC_PACKAGE_MANIFEST_H

#include "attnc/Mask/Tiles.h"
#include "attnc/Spec/Spec.h"

#include <optional>
#include <string>
#include <vector>

namespace attnc::package {

/// The package format version this attnc writes.
inline constexpr int kFormatVersion = 1;

struct ManifestInfo {
  std::string attncVersion;
  std::string target;         ///< "cpu" (or "cuda")
  std::string sourceFileName; ///< e.g. "kernel.cpp"
  std::string source;         ///< hashed into source.hash
  int64_t blockM = 0, blockN = 0;
  /// The forward's MMA ("sync" or "wgmma"), written as tile.mma.
  std::string mma = "sync";
  /// CUDA: the only architecture the kernels run on (launch.arch; "sm_90a"
  /// for wgmma kernels), or "" for any sm_80 and later.
  std::string arch;
  std::optional<mask::Band> band; ///< the closed form, else the schedule is a launch-time table
  int abiVersion = 0;
  /// d > 1: the kernel runs once per residue class of positions mod d, on
  /// strided views (a dilated window re-indexed by attn-plan-layout).
  int64_t residueClasses = 1;
  // CUDA launch geometry (target "cuda").
  int64_t threadsPerBlock = 0;
  int64_t sharedBytes = 0;

  /// One backward kernel of a CUDA package: its role ("preprocess", "dkdv",
  /// "dq", "dq_convert"), entry point and launch size.
  struct BackwardKernel {
    std::string role, entry;
    int64_t threadsPerBlock = 0, sharedBytes = 0;
    int64_t blockN = 0; ///< dkdv(_convert): keys per kv tile (grid x = ceil(seq_len.kv / block_n))
    int64_t groupSplits = 1; ///< dkdv: blocks per (kv tile, kv head): grid y = heads.kv x this
    /// preprocess, dq, dq_convert: query rows per tile (grid x = ceil(seq_len.q / block_m)).
    int64_t blockM = 0;
  };
  /// The backward pass, when the source has one.
  bool backward = false;
  bool deterministic = false; ///< dQ by the separate pass (else float32 atomics)
  std::vector<BackwardKernel> backwardKernels; ///< CUDA only
};

/// The manifest of `spec` compiled as `info` describes, as JSON text.
std::string writeManifest(const spec::Spec &spec, const ManifestInfo &info);

} // namespace attnc::package

#endif // ATTNC_PACKAGE_MANIFEST_H
