//===- TargetArch.h - The GPU architecture a CUDA kernel needs --*- C++ -*-===//
//
// A CUDA package is portable (no launch.arch: compiled for the architecture
// of whichever GPU runs it, sm_XY from its compute capability X.Y) or names
// one in launch.arch:
//
//   "sm_XYa"  arch-specific (sm_90a: the Hopper wgmma forward): compiled for
//             exactly that target, which runs only on compute capability X.Y;
//   "sm_XY"   the oldest architecture the kernel runs on: compiled for the
//             device's own architecture, which must be at least X.Y.
//
// Header-only and free of the driver and NVRTC: the unit tests check these
// rules without a GPU (libattnrt exports only the C API).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_TARGETARCH_H
#define ATTNC_RUNTIME_LIB_TARGETARCH_H

#include "Package.h"

#include <string>
#include <string_view>

namespace attnc::runtime {

/// The suffix of an arch-specific target ("sm_90a"): code for exactly one
/// compute capability.
constexpr char kArchSpecificSuffix = 'a';
/// The suffix of a family-specific target ("sm_100f"); NVRTC accepts it as an
/// explicit architecture, launch.arch does not use it.
constexpr char kFamilySpecificSuffix = 'f';

/// XY of "sm_XY", "sm_XYa" or "sm_XYf" with 2 or 3 digits (90 of "sm_90a",
/// 100 of "sm_100f"); -1 if `arch` is none of these. `suffixes` lists the
/// suffixes allowed.
inline int archNumber(std::string_view arch, std::string_view suffixes = "af") {
  constexpr std::string_view kPrefix = "sm_";
  if (arch.substr(0, kPrefix.size()) != kPrefix)
    return -1;
  std::string_view digits = arch.substr(kPrefix.size());
  if (!digits.empty() && suffixes.find(digits.back()) != std::string_view::npos)
    digits.remove_suffix(1);
  if (digits.size() < 2 || digits.size() > 3)
    return -1;
  int number = 0;
  for (char c : digits) {
    if (c < '0' || c > '9')
      return -1;
    number = number * 10 + (c - '0');
  }
  return number;
}

/// Whether `name` may be a manifest's launch.arch: "sm_XY" (2 or 3 digits)
/// with an optional 'a'.
inline bool isLaunchArch(std::string_view name) {
  return archNumber(name, std::string_view(&kArchSpecificSuffix, 1)) >= 0;
}

/// Whether `arch` names an arch-specific target ("sm_90a").
inline bool isArchSpecific(std::string_view arch) {
  return !arch.empty() && arch.back() == kArchSpecificSuffix;
}

/// "X.Y", the compute capability of architecture number XY ("9.0" of 90).
inline std::string computeCapability(int number) {
  return std::to_string(number / 10) + "." + std::to_string(number % 10);
}

/// What an arch-specific kernel uses its target for, for messages.
inline std::string archSpecificFeature(const PackageData &package) {
  return package.mma == Mma::Wgmma ? "Hopper wgmma" : package.arch + "-specific instructions";
}

/// The architecture to compile a package for on a GPU, or why it cannot run there.
struct DeviceArch {
  std::string arch;    ///< for NVRTC's --gpu-architecture; empty when `problem` is set
  std::string problem; ///< the ATTNRT_ERROR_UNSUPPORTED message; empty if none
};

/// The architecture to compile `package` for on a GPU of architecture
/// `deviceArch` ("sm_90", from its compute capability): launch.arch when it is
/// arch-specific (the GPU must be exactly that compute capability), else
/// `deviceArch` (at least launch.arch when the package names one).
inline DeviceArch archForDevice(const PackageData &package, const std::string &deviceArch) {
  const std::string &needed = package.arch;
  if (needed.empty())
    return {deviceArch, ""};
  const int neededNumber = archNumber(needed), deviceNumber = archNumber(deviceArch);
  const std::string kernel = "kernel \"" + package.name + "\"";
  if (isArchSpecific(needed)) {
    if (deviceNumber == neededNumber)
      return {needed, ""};
    return {"", kernel + " uses " + archSpecificFeature(package) + " (launch.arch " + needed +
                    ") and needs a compute capability " + computeCapability(neededNumber) +
                    " GPU; this one is " + deviceArch + "; rebuild the package without --arch " +
                    needed};
  }
  if (deviceNumber >= neededNumber)
    return {deviceArch, ""};
  return {"", kernel + " needs a compute capability " + computeCapability(neededNumber) +
                  " or newer GPU (launch.arch " + needed + "); this one is " + deviceArch};
}

/// Why `package` cannot be compiled for the explicit architecture `arch`
/// (attnrt_nvrtc_check, attnrt_nvrtc_compile; `arch` already well formed):
/// an arch-specific launch.arch admits only itself, a plain one any
/// architecture at least as new. Empty if it can.
inline std::string archArgumentProblem(const PackageData &package, const std::string &arch) {
  const std::string &needed = package.arch;
  if (needed.empty())
    return "";
  if (isArchSpecific(needed))
    return arch == needed
               ? ""
               : "arch: the package's kernel needs " + needed + " (launch.arch), got " + arch;
  return archNumber(arch) >= archNumber(needed) ? ""
                                                : "arch: the package's kernel needs " + needed +
                                                      " or newer (launch.arch), got " + arch;
}

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_TARGETARCH_H
