//===- PngUnavailable.cpp - svgToPng in builds without librsvg ------------===//
//
// Built instead of Png.cpp when ATTNC_ENABLE_PNG is off (the static compiler
// of tools/gpu-bundle.sh links no shared libraries besides glibc).
//
//===----------------------------------------------------------------------===//

#include "attnc/Report/Png.h"

namespace attnc::report {

bool svgToPng(const std::string &, std::string &, std::string &error) {
  error = "this attnc was built without PNG output (ATTNC_ENABLE_PNG=OFF); use --emit=svg";
  return false;
}

} // namespace attnc::report
