//===- Compiler.h - libattnc: spec to kernel package ------------*- C++ -*-===//
//
// The compiler as a library, for tools and for host applications that JIT:
//
//   attnc::CompileResult r = attnc::compileSpecText(specJson, "my-spec.json", {});
//   if (!r.ok()) { std::cerr << r.diagnostics; return 1; }
//   // hand r.package->manifestJson and r.package->source to the runtime
//   // (attnrt_package_from_memory), or write them with writePackage().
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_COMPILER_COMPILER_H
#define ATTNC_COMPILER_COMPILER_H

#include "attnc/Spec/Spec.h"

#include <cstdint>
#include <optional>
#include <string>

namespace attnc {

struct CompileOptions {
  int64_t blockM = 0; ///< 0: the attn-tile heuristic
  int64_t blockN = 0;
  std::string target = "cpu";
  /// Backward pass: dQ by a separate q-stationary pass, bitwise reproducible,
  /// instead of float32 atomics (also set by the spec's "deterministic").
  bool deterministic = false;
  /// Target "cuda": the GPU the kernels are for, e.g. "sm_80" or "sm_90a"
  /// ("": none named, mma.sync). "sm_90a" selects the Hopper wgmma forward
  /// mainloop where the tile heuristic allows it; other archs get mma.sync.
  /// Target "cpu" takes none.
  std::string arch;
};

/// A kernel package in memory (runtime/README.md describes the format).
struct KernelPackage {
  std::string manifestJson;
  std::string source;
  std::string sourceFileName; ///< as the manifest names it, e.g. "kernel.cpp"
};

struct CompileResult {
  std::optional<KernelPackage> package; ///< set on success
  std::string diagnostics;              ///< errors and warnings, one per line
  bool ok() const { return package.has_value(); }
};

/// Runs the whole pipeline on a loaded spec.
CompileResult compileSpec(const spec::Spec &spec, const CompileOptions &options);

/// Loads the spec from JSON text (diagnostics name `fileName`), then compiles.
CompileResult compileSpecText(const std::string &json, const std::string &fileName,
                              const CompileOptions &options);

/// Writes DIR/manifest.json and DIR/<source> (creating DIR), each file
/// atomically. Returns false with a message naming the path on failure.
bool writePackage(const KernelPackage &package, const std::string &dir, std::string &error);

} // namespace attnc

#endif // ATTNC_COMPILER_COMPILER_H
