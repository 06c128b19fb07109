//===- NvrtcKernelsTest.cpp - Every CUDA kernel compiles, without spills --===//
//
// NVRTC needs no GPU: every CUDA kernel of the test matrix (the example specs
// and every mask family x head grouping x dtype x head_dim, with the backward
// pass: atomic dQ everywhere, deterministic dQ for one grouping per family)
// is emitted by libattnc and compiled by the runtime's NVRTC for sm_80 and
// sm_90, with zero local memory (no stack frame, no spills) in every entry
// point: the forward and each backward kernel. The Hopper matrix compiles
// the same families (and BigBird blocks of 128) for --arch sm_90a, whose
// forward runs wgmma where attn-tile picks it: forward only, and with the
// backward pass (its dK/dV kernel wgmma too, the query-grid kernels
// mma.sync; deterministic dQ under bands only, as tables with it keep
// mma.sync). Prints registers per entry.
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
  /// CompileOptions::arch: "" (mma.sync, compiled for sm_80 and sm_90) or
  /// "sm_90a" (the Hopper wgmma forward, compiled for sm_90a).
  std::string arch;
  /// Whether the forward must come out as a wgmma kernel.
  bool wgmma = false;
};

/// The spec of one matrix case (lengths given at launch).
std::string matrixSpec(const std::string &name, const std::string &dtype, int headDim,
                       std::pair<int, int> heads, const std::string &mask, bool backward,
                       bool deterministic) {
  return R"({"attnc": 1, "name": ")" + name + R"(", "dtype": ")" + dtype +
         R"(", "head_dim": )" + std::to_string(headDim) + R"(, "heads": {"query": )" +
         std::to_string(heads.first) + R"(, "kv": )" + std::to_string(heads.second) +
         R"(}, "mask": )" + mask + R"(, "backward": )" + (backward ? "true" : "false") +
         R"(, "deterministic": )" + (deterministic ? "true" : "false") + "}";
}

/// Every mask family: its name, mask, whether it has a closed-form band
/// schedule (else a table), and whether --arch sm_90a gives it the wgmma tile
/// (attn-tile: bands always; tables where 128x128 tiles visit at most 1.25x
/// the pairs of 64x64 ones at the reference length 4096).
struct MaskFamily {
  const char *name, *mask;
  bool band;
  bool hopperWgmma = true;
};
const MaskFamily kMaskFamilies[] = {
    {"full", R"({"full": {}})", true},
    {"causal", R"({"causal": {}})", true},
    {"window", R"({"window": {"left": 256, "right": 256}})", true},
    {"dilated", R"({"window": {"left": 256, "right": 256, "dilation": 2}})", true},
    {"global",
     R"({"union": [{"window": {"left": 128, "right": 128}}, )"
     R"({"global": {"stride": 512}}]})",
     false, false},
    {"block_sparse",
     R"({"block_sparse": {"block": 64, )"
     R"("bigbird": {"band": 3, "random": 2, "global": 1, "seed": 1}}})",
     false, false},
    {"runtime", R"({"union": [{"causal": {}}, {"global": {"runtime": {"max": 16}}}]})", false},
    {"intersect",
     R"({"intersect": [{"causal": {}}, {"window": {"left": 512, "right": 0, "dilation": 3}}]})",
     true}};
/// Hopper matrix only: a table mask that gets the wgmma tile (BigBird blocks
/// of 128, which 128x128 tiles cover exactly).
const MaskFamily kHopperBlockSparse128 = {
    "block_sparse128",
    R"({"block_sparse": {"block": 128, )"
    R"("bigbird": {"band": 3, "random": 2, "global": 1, "seed": 1}}})",
    false, true};
const std::pair<const char *, std::pair<int, int>> kGroupings[] = {
    {"mha", {8, 8}}, {"gqa", {8, 2}}, {"mqa", {8, 1}}};

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
  std::vector<Case> cases;
  for (const MaskFamily &family : kMaskFamilies)
    for (const auto &[groupName, heads] : kGroupings)
      for (const char *dtype : {"bf16", "fp16"})
        for (int d : {64, 128})
          for (bool deterministic : {false, true}) {
            if (deterministic && std::string(groupName) != "gqa")
              continue;
            std::string name = std::string(family.name) + "_" + groupName + "_" + dtype + "_d" +
                               std::to_string(d) + (deterministic ? "_det" : "");
            cases.push_back({name,
                             matrixSpec(name, dtype, d, heads, family.mask, true, deterministic),
                             "", false});
          }
  return cases;
}

/// The Hopper matrix (--arch sm_90a): every mask family (and BigBird blocks
/// of 128) x head grouping x dtype x head_dim, alone and with the backward
/// pass (atomic dQ; deterministic dQ for GQA where the mask is a band: a
/// table with deterministic dQ keeps mma.sync throughout); where attn-tile
/// picks wgmma (MaskFamily::hopperWgmma) the forward and the dK/dV kernel
/// must be wgmma ones, elsewhere mma.sync ones.
std::vector<Case> hopperMatrix() {
  std::vector<Case> cases;
  std::vector<MaskFamily> families(std::begin(kMaskFamilies), std::end(kMaskFamilies));
  families.push_back(kHopperBlockSparse128);
  for (const MaskFamily &family : families)
    for (const auto &[groupName, heads] : kGroupings)
      for (const char *dtype : {"bf16", "fp16"})
        for (int d : {64, 128})
          for (const char *variant : {"_fwd", "", "_det"}) {
            const bool backward = std::string(variant) != "_fwd";
            const bool deterministic = std::string(variant) == "_det";
            if (deterministic && (!family.band || std::string(groupName) != "gqa"))
              continue;
            std::string name = std::string(family.name) + "_" + groupName + "_" + dtype + "_d" +
                               std::to_string(d) + "_wgmma" + variant;
            cases.push_back(
                {name,
                 matrixSpec(name, dtype, d, heads, family.mask, backward, deterministic),
                 "sm_90a", family.hopperWgmma});
          }
  return cases;
}

/// Compiles one case for sm_80 and sm_90 (sm_90a for the Hopper matrix);
/// returns its report lines and the failures (empty when every entry
/// compiled without local memory).
std::pair<std::string, std::string> checkCase(const Case &c) {
  std::string lines, failures;
  attnc::CompileOptions options;
  options.target = "cuda";
  options.arch = c.arch;
  attnc::CompileResult compiled = attnc::compileSpecText(c.json, c.name, options);
  if (!compiled.ok())
    return {"", c.name + ": " + compiled.diagnostics};
  // The forward's MMA, and the dK/dV kernel's: wgmma exactly where the
  // Hopper matrix asks for it.
  const std::string &source = compiled.package->source;
  const bool wgmma = source.find("using Cfg = WgmmaConfig<") != std::string::npos;
  if (wgmma != c.wgmma)
    failures += c.name + ": the forward is " + (wgmma ? "a wgmma" : "an mma.sync") + " kernel\n";
  if (source.find("using DkdvCfg = ") != std::string::npos) {
    const bool dkdvWgmma = source.find("using DkdvCfg = DkdvWgmmaConfig<") != std::string::npos;
    if (dkdvWgmma != c.wgmma)
      failures += c.name + ": the dK/dV kernel is " +
                  (dkdvWgmma ? "a wgmma" : "an mma.sync") + " kernel\n";
  }
  auto package =
      attnrt::Package::fromMemory(compiled.package->manifestJson, compiled.package->source);
  if (!package.ok())
    return {"", c.name + ": " + package.status().message()};
  const std::vector<const char *> archs =
      c.arch.empty() ? std::vector<const char *>{"sm_80", "sm_90"}
                     : std::vector<const char *>{c.arch.c_str()};
  for (const char *arch : archs) {
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

/// libattnc's CompileOptions::arch: sm_90a gives the wgmma forward (a
/// manifest for sm_90a only), other archs and none mma.sync, and the CPU
/// target takes no arch.
TEST(CompileOptions, ArchSelectsTheForwardMma) {
  const std::string spec = matrixSpec("causal_gqa", "bf16", 128, {8, 2}, R"({"causal": {}})",
                                      /*backward=*/false, /*deterministic=*/false);
  auto compile = [&](const std::string &target, const std::string &arch) {
    attnc::CompileOptions options;
    options.target = target;
    options.arch = arch;
    return attnc::compileSpecText(spec, "arch.json", options);
  };
  attnc::CompileResult hopper = compile("cuda", "sm_90a");
  ASSERT_TRUE(hopper.ok()) << hopper.diagnostics;
  EXPECT_NE(hopper.package->manifestJson.find(R"("mma": "wgmma")"), std::string::npos);
  EXPECT_NE(hopper.package->manifestJson.find(R"("arch": "sm_90a")"), std::string::npos);
  for (const char *arch : {"", "sm_80", "sm_90", "sm_100a"}) {
    attnc::CompileResult sync = compile("cuda", arch);
    ASSERT_TRUE(sync.ok()) << arch << ": " << sync.diagnostics;
    EXPECT_NE(sync.package->manifestJson.find(R"("mma": "sync")"), std::string::npos) << arch;
    EXPECT_EQ(sync.package->manifestJson.find(R"("arch":)"), std::string::npos) << arch;
  }
  attnc::CompileResult cpu = compile("cpu", "sm_90a");
  EXPECT_FALSE(cpu.ok());
  EXPECT_EQ(cpu.diagnostics,
            "error: arch 'sm_90a' names a GPU: it applies to target cuda only, not 'cpu'\n");
}

TEST(NvrtcKernels, HopperMatrixCompilesWithoutSpills) {
  std::vector<Case> cases = hopperMatrix();
  // 9 families x 12 forwards and x 12 with atomic dQ, 5 band families x 4
  // GQA with deterministic dQ.
  ASSERT_EQ(cases.size(), 9u * 12 + 9u * 12 + 5u * 4);
  checkAll(cases);
}

} // namespace
