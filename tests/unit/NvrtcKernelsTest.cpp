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

void checkAll(const std::vector<Case> &cases) {
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    attnc::CompileOptions options;
    options.target = "cuda";
    attnc::CompileResult compiled = attnc::compileSpecText(c.json, c.name, options);
    ASSERT_TRUE(compiled.ok()) << compiled.diagnostics;
    auto package = attnrt::Package::fromMemory(compiled.package->manifestJson,
                                               compiled.package->source);
    ASSERT_TRUE(package.ok()) << package.status().message();
    for (const char *arch : {"sm_80", "sm_90"}) {
      attnrt_nvrtc_output out{};
      attnrt_status status =
          attnrt_nvrtc_compile(package->get(), arch, ATTNRT_NVRTC_PTX, /*report=*/1, &out);
      ASSERT_EQ(status, ATTNRT_OK) << arch << ": " << attnrt_last_error();
      // The forward, and with a backward pass its three kernels.
      EXPECT_EQ(out.num_entries, package->hasBackward() ? 4 : 1) << arch;
      for (int32_t i = 0; i < out.num_entries; ++i) {
        const attnrt_nvrtc_entry &e = out.entries[i];
        std::printf("nvrtc %-40s %s %-34s %3d registers, %lld bytes stack, %lld/%lld bytes "
                    "spilled\n",
                    c.name.c_str(), arch, e.name, e.registers,
                    static_cast<long long>(e.stack_frame_bytes),
                    static_cast<long long>(e.spill_store_bytes),
                    static_cast<long long>(e.spill_load_bytes));
        EXPECT_EQ(e.stack_frame_bytes, 0) << arch << " " << e.name;
        EXPECT_EQ(e.spill_store_bytes, 0) << arch << " " << e.name;
        EXPECT_EQ(e.spill_load_bytes, 0) << arch << " " << e.name;
        EXPECT_GT(e.registers, 0) << arch << " " << e.name;
      }
      attnrt_nvrtc_output_release(&out);
    }
  }
}

TEST(NvrtcKernels, EveryExampleCompilesWithoutSpills) {
  std::vector<Case> cases = exampleSpecs();
  ASSERT_GE(cases.size(), 9u);
  checkAll(cases);
}

TEST(NvrtcKernels, MatrixCompilesWithoutSpills) { checkAll(matrix()); }

} // namespace
