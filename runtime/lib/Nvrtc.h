//===- Nvrtc.h - CUDA sources to cubins with NVRTC --------------*- C++ -*-===//
//
// NVRTC is dlopen'ed at first use (libnvrtc.so, libnvrtc.so.13,
// libnvrtc.so.12, then <CUDA>/lib64/libnvrtc.so), never linked. A package's
// source is compiled for one real architecture (sm_XY) with the headers
// generated kernels include handed over in memory: kernel_abi.h, every
// runtime/device/*.cuh present when libattnrt was built, and a "stdint.h"
// that includes <cuda/std/cstdint>. <CUDA> is $CUDA_HOME, else
// /usr/local/cuda: its include/ and include/cccl are the include path.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_NVRTC_H
#define ATTNC_RUNTIME_LIB_NVRTC_H

#include "Package.h"

#include <string>
#include <string_view>
#include <vector>

namespace attnc::runtime::nvrtc {

/// NVRTC's version as "13.0". Throws Error(ATTNRT_ERROR_UNSUPPORTED) when
/// NVRTC cannot be loaded, saying where it was looked for.
std::string version();

/// The options of a build for `arch` ("sm_90"), in order; part of the cache key.
std::vector<std::string> options(const std::string &arch);

/// The names and texts of the in-memory headers, alternating; part of the
/// cache key (a header edit is a new key).
std::vector<std::string_view> headerKeyParts();

/// Whether `arch` is a real architecture NVRTC can build a cubin for:
/// "sm_" followed by digits and an optional 'a' or 'f' suffix.
bool isRealArch(const std::string &arch);

/// Fails with ATTNRT_ERROR_INVALID_ARGUMENT naming the argument `arch` unless
/// it is a real architecture (isRealArch) that the package's kernel can be
/// compiled for: any for portable packages, else the one their launch.arch
/// requires (TargetArch.h: "sm_90a" only for a wgmma forward).
void requireArch(const PackageData &package, const std::string &arch);

/// One NVRTC build.
struct Build {
  std::string cubin; ///< the compiled cubin
  std::string ptx;   ///< the PTX ptxas compiled (only when asked for)
  std::string log;   ///< NVRTC's log: warnings, and ptxas's report when asked for
};

/// Compiles the package's source, followed by `appended` (not dumped, and
/// placed after the source's last line so that line numbers hold), with
/// `options`. NVRTC failing is Error(ATTNRT_ERROR_COMPILE) with the options,
/// the log (cut at 64 KiB) and the path of a temporary file holding the
/// source with line numbers. With ATTNC_DUMP_SOURCE=1 every source compiled
/// is dumped so, its path printed on stderr. `verbose` prints the NVRTC
/// version and options to stderr.
/// With `withPtx`, the build also keeps the PTX.
Build compile(const PackageData &package, const std::vector<std::string> &options, bool verbose,
              const std::string &appended = "", bool withPtx = false);

/// The register and local-memory figures of one entry in a ptxas -v report.
struct EntryInfo {
  int32_t registers = 0;
  int64_t stackFrameBytes = 0, spillStoreBytes = 0, spillLoadBytes = 0;
  int32_t barriers = 0;    ///< named barriers the entry uses
  int64_t sharedBytes = 0; ///< static shared memory ("N bytes smem"; dynamic is not in it)
};

/// Reads the figures of `entry` from ptxas's verbose report in `log`:
///   ptxas info    : Compiling entry function 'attnc_forward_kernel' for 'sm_90'
///   ptxas info    : Function properties for attnc_forward_kernel
///   ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
///   ptxas info    : Used 40 registers, used 1 barriers, 480 bytes cmem[0]
/// Returns false if the report does not mention the entry.
bool readEntryInfo(const std::string &log, const std::string &entry, EntryInfo &out);

/// Every entry function ptxas's verbose report names ("Compiling entry
/// function 'NAME'"), in the report's order, each once.
std::vector<std::string> entryNames(const std::string &log);

/// The bytes of `entry`'s machine code in a cubin: the size of its ELF
/// section ".text.ENTRY"; -1 if the cubin is no 64-bit ELF or lacks it.
int64_t entryCodeBytes(std::string_view cubin, const std::string &entry);

/// A definition no compile has seen before. With a driver present, NVRTC
/// answers PTX it has compiled before from the driver's JIT cache
/// (~/.nv/ComputeCache) without running ptxas, and so without ptxas's
/// report; appended to a source, this makes its PTX new.
std::string freshDefinition();

/// One entry point of a build for one architecture, as ptxas reports it.
struct EntryReport {
  std::string name;
  EntryInfo info;
  int64_t codeBytes = -1; ///< entryCodeBytes
};

/// attnrt_nvrtc_compile: a CUDA package built for one real architecture.
struct ArchBuild {
  std::string arch;                 ///< "sm_90a"
  std::string version;              ///< NVRTC's, "13.0"
  std::string ptx;                  ///< with wantPtx
  std::string cubin;                ///< always (the report's sizes come from it)
  std::vector<EntryReport> entries; ///< with report: every entry, in ptxas's order
};

/// Compiles a CUDA package for `arch` (requireArch) with the options kernel
/// creation uses, keeping the PTX if `wantPtx`. With `report`, a second
/// compile of the same source with ptxas's verbose report and a
/// freshDefinition() appended reads every entry's figures, so that the PTX
/// and cubin returned stay those of the clean source, byte for byte. Throws
/// Error: ATTNRT_ERROR_INVALID_ARGUMENT (CPU package, malformed arch, an
/// arch the package's launch.arch excludes),
/// ATTNRT_ERROR_COMPILE, ATTNRT_ERROR_PACKAGE (the report names no entry or
/// lacks the package's entry point), ATTNRT_ERROR_UNSUPPORTED (no NVRTC).
ArchBuild compileForArch(const PackageData &package, const std::string &arch, bool wantPtx,
                         bool report);

} // namespace attnc::runtime::nvrtc

#endif // ATTNC_RUNTIME_LIB_NVRTC_H
