// Compiles the reference kernels (tests/gpu/reference_kernel.cu, both
// configurations) with NVRTC for sm_80 and sm_90, the way the runtime will, and
// prints registers, spills and stack per kernel from ptxas' verbose log. Needs
// no GPU. Exit status 0 iff every compile succeeds with zero local-memory
// spills and a zero stack frame.
//
//   g++ -std=c++17 -I/usr/local/cuda/include tests/gpu/nvrtc_check.cpp \
//       -L/usr/local/cuda/lib64 -lnvrtc -o nvrtc_check
//   LD_LIBRARY_PATH=/usr/local/cuda/lib64 ./nvrtc_check [repo root] [cuda root]

#include <nvrtc.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

/// The whole text of a file, or an empty string.
std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// What ptxas reported for one compile.
struct Resources {
  int registers = -1, spillStores = -1, spillLoads = -1, stackFrame = -1;
};

/// Registers, spills and stack parsed from ptxas' -v output in the NVRTC log.
Resources parsePtxasLog(const std::string &log) {
  Resources r;
  std::smatch m;
  if (std::regex_search(log, m, std::regex(R"(Used (\d+) registers)")))
    r.registers = std::stoi(m[1]);
  if (std::regex_search(log, m, std::regex(R"((\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads)"))) {
    r.stackFrame = std::stoi(m[1]);
    r.spillStores = std::stoi(m[2]);
    r.spillLoads = std::stoi(m[3]);
  }
  return r;
}

} // namespace

int main(int argc, char **argv) {
  const std::string repo = argc > 1 ? argv[1] : ".";
  const std::string cuda = argc > 2 ? argv[2] : "/usr/local/cuda";
  const std::string source = readFile(repo + "/tests/gpu/reference_kernel.cu");
  if (source.empty()) {
    std::fprintf(stderr, "cannot read %s/tests/gpu/reference_kernel.cu\n", repo.c_str());
    return 1;
  }
  // kernel_abi.h includes <stdint.h>, which NVRTC lacks: the runtime hands it this one.
  const char *stdintShim = "#pragma once\n#include <cuda/std/cstdint>\n";
  const char *headerNames[] = {"stdint.h"};
  const char *headerSources[] = {stdintShim};

  const std::vector<std::string> configs = {"ATTNC_REFERENCE_CAUSAL_GQA",
                                            "ATTNC_REFERENCE_WINDOW_TABLE"};
  const std::vector<std::string> arches = {"sm_80", "sm_90"};
  int failures = 0;
  for (const std::string &config : configs)
    for (const std::string &arch : arches) {
      nvrtcProgram program;
      if (nvrtcCreateProgram(&program, source.c_str(), "reference_kernel.cu", 1, headerSources,
                             headerNames) != NVRTC_SUCCESS) {
        std::fprintf(stderr, "nvrtcCreateProgram failed\n");
        return 1;
      }
      const std::vector<std::string> options = {
          "--gpu-architecture=" + arch,
          "-std=c++17",
          "-D" + config,
          "-I" + repo + "/runtime/device",
          "-I" + repo + "/runtime/include/attnc/runtime",
          "-I" + cuda + "/include",
          "-I" + cuda + "/include/cccl",
          "-lineinfo",
          "-Xptxas=-v"};
      std::vector<const char *> optionPointers;
      for (const std::string &o : options)
        optionPointers.push_back(o.c_str());
      const nvrtcResult result = nvrtcCompileProgram(
          program, static_cast<int>(optionPointers.size()), optionPointers.data());
      size_t logSize = 0;
      nvrtcGetProgramLogSize(program, &logSize);
      std::string log(logSize, '\0');
      nvrtcGetProgramLog(program, log.data());
      size_t cubinSize = 0;
      if (result == NVRTC_SUCCESS)
        nvrtcGetCUBINSize(program, &cubinSize);
      nvrtcDestroyProgram(&program);
      const Resources r = parsePtxasLog(log);
      const bool ok = result == NVRTC_SUCCESS && r.registers > 0 && r.spillStores == 0 &&
                      r.spillLoads == 0 && r.stackFrame == 0;
      std::printf("%-4s %-30s %s: %3d registers, %d bytes spill stores, %d bytes spill loads, "
                  "%d bytes stack, cubin %zu bytes\n",
                  ok ? "OK" : "FAIL", config.c_str(), arch.c_str(), r.registers, r.spillStores,
                  r.spillLoads, r.stackFrame, cubinSize);
      if (!ok) {
        std::printf("%s: %s\n%s\n", config.c_str(), nvrtcGetErrorString(result), log.c_str());
        ++failures;
      }
    }
  return failures == 0 ? 0 : 1;
}
