//===- NvrtcKernelsTest.cpp - Every CUDA kernel compiles, without spills --===//
//
// NVRTC needs no GPU: every CUDA kernel of the test matrix (the example specs
// and every mask family x head grouping x dtype x head_dim, with the backward
// pass: atomic dQ everywhere, deterministic dQ for one grouping per family)
// is emitted by libattnc and compiled by the runtime's NVRTC for sm_80 and
// sm_90, with zero local memory (no stack frame, no spills) in every entry
// point: the forward and each backward kernel. Prints registers per entry.
//
//===----------------------------------------------------------------------===//

#include "attnc/Compiler/Compiler.h"
#include "attnc/runtime/attnrt.hpp"

#include <gtest/gtest.h>

#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Case {
  std::string name, json;
};

std::vector<Case> exampleSpecs() {
  std::vector<Case> cases;
  if (DIR *dir = opendir(ATTNC_SPECS_DIR)) {
    while (dirent *entry = readdir(dir)) {
      std::string file = entry->d_name;
      if (file.size() > 5 && file.substr(file.size() - 5) == ".json") {
        std::ifstream in(std::string(ATTNC_SPECS_DIR) + "/" + file);
        std::stringstream text;
        text << in.rdbuf();
        cases.push_back({file, text.str()});
      }
    }
    closedir(dir);
  }
  std::sort(cases.begin(), cases.end(), [](const Case &a, const Case &b) { return a.name < b.name; });
  return cases;
}

/// Every mask family x head grouping x dtype x head_dim (lengths given at launch).
std::vector<Case> matrix() {
  const std::vector<std::pair<std::string, std::string>> masks = {
      {"full", R"({"full": {}})"},
      {"causal", R"({"causal": {}})"},
      {"window", R"({"window": {"left": 256, "right": 256}})"},
      {"dilated", R"({"window": {"left": 256, "right": 256, "dilation": 2}})"},
      {"global", R"({"union": [{"window": {"left": 128, "right": 128}}, {"global": {"stride": 512}}]})"},
      {"block_sparse", R"({"block_sparse": {"block": 64, "bigbird": {"band": 3, "random": 2, "global": 1, "seed": 1}}})"},
      {"runtime", R"({"union": [{"causal": {}}, {"global": {"runtime": {"max": 16}}}]})"},
      {"intersect", R"({"intersect": [{"causal": {}}, {"window": {"left": 512, "right": 0, "dilation": 3}}]})"}};
  const std::vector<std::pair<std::string, std::pair<int, int>>> groupings = {
      {"mha", {8, 8}}, {"gqa", {8, 2}}, {"mqa", {8, 1}}};
  std::vector<Case> cases;
  for (const auto &[maskName, mask] : masks)
    for (const auto &[groupName, heads] : groupings)
      for (const char *dtype : {"bf16", "fp16"})
        for (int d : {64, 128}) {
          for (bool deterministic : {false, true}) {
            if (deterministic && groupName != "gqa")
              continue;
            std::string name = maskName + "_" + groupName + "_" + dtype + "_d" +
                               std::to_string(d) + (deterministic ? "_det" : "");
            cases.push_back(
                {name, R"({"attnc": 1, "name": ")" + name + R"(", "dtype": ")" + dtype +
                           R"(", "head_dim": )" + std::to_string(d) + R"(, "heads": {"query": )" +
                           std::to_string(heads.first) + R"(, "kv": )" +
                           std::to_string(heads.second) + R"(}, "mask": )" + mask +
                           R"(, "backward": true, "deterministic": )" +
                           (deterministic ? "true" : "false") + "}"});
          }
        }
  return cases;
}

/// Compiles one case for sm_80 and sm_90; returns its report lines and the
/// failures (empty when every entry compiled without local memory).
std::pair<std::string, std::string> checkCase(const Case &c) {
  std::string lines, failures;
  attnc::CompileOptions options;
  options.target = "cuda";
  attnc::CompileResult compiled = attnc::compileSpecText(c.json, c.name, options);
  if (!compiled.ok())
    return {"", c.name + ": " + compiled.diagnostics};
  auto package =
      attnrt::Package::fromMemory(compiled.package->manifestJson, compiled.package->source);
  if (!package.ok())
    return {"", c.name + ": " + package.status().message()};
  for (const char *arch : {"sm_80", "sm_90"}) {
    attnrt_nvrtc_output out{};
    if (attnrt_nvrtc_compile(package->get(), arch, ATTNRT_NVRTC_PTX, /*report=*/1, &out) !=
        ATTNRT_OK) {
      failures += c.name + " " + arch + ": " + attnrt_last_error() + "\n";
      continue;
    }
    // The forward, and with a backward pass its three kernels, four where a
    // large GQA group is split over several dK/dV blocks (their convert kernel).
    const bool splitGroup =
        compiled.package->source.find("attnc_backward_dkdv_convert_kernel") != std::string::npos;
    if (out.num_entries != (package->hasBackward() ? (splitGroup ? 5 : 4) : 1))
      failures += c.name + " " + arch + ": " + std::to_string(out.num_entries) + " entries\n";
    for (int32_t i = 0; i < out.num_entries; ++i) {
      const attnrt_nvrtc_entry &e = out.entries[i];
      char line[256];
      std::snprintf(line, sizeof line,
                    "nvrtc %-40s %s %-34s %3d registers, %lld bytes stack, %lld/%lld bytes "
                    "spilled\n",
                    c.name.c_str(), arch, e.name, e.registers,
                    static_cast<long long>(e.stack_frame_bytes),
                    static_cast<long long>(e.spill_store_bytes),
                    static_cast<long long>(e.spill_load_bytes));
      lines += line;
      if (e.stack_frame_bytes != 0 || e.spill_store_bytes != 0 || e.spill_load_bytes != 0 ||
          e.registers <= 0)
        failures += std::string("local memory or no registers: ") + line;
    }
    attnrt_nvrtc_output_release(&out);
  }
  return {lines, failures};
}

/// Every case, compiled on all hardware threads (NVRTC programs are
/// independent); the report is printed in case order.
void checkAll(const std::vector<Case> &cases) {
  std::vector<std::pair<std::string, std::string>> results(cases.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < cases.size(); i = next++)
      results[i] = checkCase(cases[i]);
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::max(1u, std::thread::hardware_concurrency()); ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &t : pool)
    t.join();
  for (size_t i = 0; i < cases.size(); ++i) {
    std::fputs(results[i].first.c_str(), stdout);
    EXPECT_EQ(results[i].second, "") << cases[i].name;
  }
}

TEST(NvrtcKernels, EveryExampleCompilesWithoutSpills) {
  std::vector<Case> cases = exampleSpecs();
  ASSERT_GE(cases.size(), 9u);
  checkAll(cases);
}

TEST(NvrtcKernels, MatrixCompilesWithoutSpills) { checkAll(matrix()); }

} // namespace
