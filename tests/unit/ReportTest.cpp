//===- ReportTest.cpp - The cost report against brute force ---------------===//
//
// For every example spec, the report's allowed pairs, tile counts and
// computed pairs equal an independent count: every pair of the plane checked
// with mask::Predicate, tallied per tile.
//
//===----------------------------------------------------------------------===//

#include "attnc/Report/MaskPicture.h"
#include "attnc/Report/Report.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <dirent.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace attnc;

namespace {

struct BruteForce {
  int64_t allowed = 0, full = 0, partial = 0, skipped = 0, computed = 0;
};

/// Tallies every pair of the plane into its tile.
BruteForce bruteForce(const mask::Mask &m, const mask::Extent &e, int64_t bm, int64_t bn) {
  mask::Predicate pred(m, e);
  int64_t rowTiles = (e.nq + bm - 1) / bm, colTiles = (e.nk + bn - 1) / bn;
  std::vector<int64_t> count(rowTiles * colTiles, 0);
  BruteForce b;
  for (int64_t i = 0; i < e.nq; ++i)
    for (int64_t k = 0; k < e.nk; ++k)
      if (pred.allowed(i, k)) {
        ++count[(i / bm) * colTiles + k / bn];
        ++b.allowed;
      }
  for (int64_t r = 0; r < rowTiles; ++r)
    for (int64_t c = 0; c < colTiles; ++c) {
      int64_t area = (std::min(e.nq, (r + 1) * bm) - r * bm) * (std::min(e.nk, (c + 1) * bn) - c * bn);
      int64_t n = count[r * colTiles + c];
      if (n == 0) {
        ++b.skipped;
        continue;
      }
      (n == area ? b.full : b.partial)++;
      b.computed += area;
    }
  return b;
}

std::vector<std::string> exampleSpecs() {
  std::vector<std::string> paths;
  if (DIR *dir = opendir(ATTNC_SPECS_DIR)) {
    while (dirent *entry = readdir(dir)) {
      std::string name = entry->d_name;
      if (name.size() > 5 && name.substr(name.size() - 5) == ".json")
        paths.push_back(std::string(ATTNC_SPECS_DIR) + "/" + name);
    }
    closedir(dir);
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

TEST(Report, EveryExampleMatchesBruteForce) {
  std::vector<std::string> specs = exampleSpecs();
  ASSERT_GE(specs.size(), 9u) << "examples not found in " << ATTNC_SPECS_DIR;
  // Specs that leave lengths to launch time are counted at an odd size with q != kv.
  const int64_t kDefaultQ = 1000, kDefaultKV = 1500;
  const std::vector<int64_t> runtimeTokens = {0, 7, 700, 1499};
  for (const std::string &path : specs) {
    SCOPED_TRACE(path);
    spec::LoadResult loaded = spec::loadSpecFromFile(path);
    ASSERT_TRUE(loaded.ok());
    const spec::Spec &s = *loaded.spec;
    mask::Extent extent{s.seqLenQ.value_or(kDefaultQ), s.seqLenKV.value_or(kDefaultKV),
                        &runtimeTokens};
    mask::Mask canonical = mask::canonicalize(s.mask);
    for (auto [bm, bn] : {std::pair<int64_t, int64_t>{128, 64}, {64, 128}, {16, 32}}) {
      SCOPED_TRACE(std::to_string(bm) + "x" + std::to_string(bn));
      mask::BlockSchedule schedule(canonical, extent, bm, bn);
      report::Report r = report::compute(s, schedule, report::Options{}, false);
      BruteForce b = bruteForce(s.mask, extent, bm, bn); // the mask as written, not canonical
      EXPECT_EQ(r.allowedPairs, b.allowed);
      EXPECT_EQ(r.densePairs, extent.nq * extent.nk);
      EXPECT_EQ(r.tilesFull, b.full);
      EXPECT_EQ(r.tilesPartial, b.partial);
      EXPECT_EQ(r.tilesSkipped, b.skipped);
      EXPECT_EQ(r.computedPairs, b.computed);
      EXPECT_EQ(r.flopsFwd, 4 * s.headDim * b.allowed);
      EXPECT_EQ(r.flopsBwd, 10 * s.headDim * b.allowed);
    }
  }
}

TEST(Report, ScalesWithBatchAndHeadsAndCountsBytes) {
  spec::LoadResult loaded = spec::loadSpecFromString(
      R"({"attnc": 1, "name": "g", "dtype": "bf16", "head_dim": 128,
          "heads": {"query": 32, "kv": 8}, "seq_len": {"q": 256, "kv": 512},
          "mask": {"causal": {}}})",
      "g.json");
  ASSERT_TRUE(loaded.ok());
  const spec::Spec &s = *loaded.spec;
  mask::BlockSchedule schedule(s.mask, mask::Extent{256, 512, nullptr}, 128, 64);
  report::Report one = report::compute(s, schedule, report::Options{}, false);
  // Row i sits at p = i + 256 and sees p + 1 keys: sum over i < 256 of (i + 257).
  EXPECT_EQ(one.allowedPairs, 256 * 257 + 255 * 256 / 2);
  EXPECT_EQ(one.kvHeads, 1);
  // One query head, its kv head: Q and O 256*128*2 bytes each, K and V 512*128*2 each, LSE 256*4.
  EXPECT_EQ(one.hbmBytesMin, 2 * 256 * 128 * 2 + 2 * 512 * 128 * 2 + 256 * 4);
  EXPECT_EQ(one.kvCacheBytesPerToken, 2 * 8 * 128 * 2);
  EXPECT_EQ(one.kvCacheBytesPerTokenMha, 2 * 32 * 128 * 2);
  EXPECT_EQ(one.kvCacheBytesPerTokenMqa, 2 * 1 * 128 * 2);

  report::Options many;
  many.batch = 3;
  many.queryHeads = 32;
  report::Report all = report::compute(s, schedule, many, false);
  EXPECT_EQ(all.allowedPairs, 96 * one.allowedPairs);
  EXPECT_EQ(all.tilesFull + all.tilesPartial + all.tilesSkipped,
            96 * (one.tilesFull + one.tilesPartial + one.tilesSkipped));
  EXPECT_EQ(all.kvHeads, 8);
  EXPECT_EQ(all.hbmBytesMin, 3 * (2 * 32 * 256 * 128 * 2 + 2 * 8 * 512 * 128 * 2 + 32 * 256 * 4));

  // The roofline: the larger of compute time and memory time.
  double compute = 4.0 * 128 * all.computedPairs / 799e12, memory = all.hbmBytesMin / 3.0e12;
  EXPECT_NEAR(all.estTimeMs, std::max(compute, memory) * 1e3, 1e-12);
}

TEST(Report, JsonHasEveryKeyWithExactIntegers) {
  spec::LoadResult loaded = spec::loadSpecFromFile(std::string(ATTNC_SPECS_DIR) + "/longformer.json");
  ASSERT_TRUE(loaded.ok());
  const spec::Spec &s = *loaded.spec;
  mask::BlockSchedule schedule(mask::canonicalize(s.mask),
                               mask::Extent{*s.seqLenQ, *s.seqLenKV, nullptr}, 128, 64);
  report::Report r = report::compute(s, schedule, report::Options{}, false);
  nlohmann::json j = nlohmann::json::parse(report::toJson(r));
  for (const char *key : {"allowed_pairs", "dense_pairs", "tiles_full", "tiles_partial",
                          "tiles_skipped", "computed_pairs", "flops_fwd", "flops_bwd",
                          "hbm_bytes_min", "kv_cache_bytes_per_token",
                          "kv_cache_bytes_per_token_mha", "kv_cache_bytes_per_token_mqa"}) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(j.contains(key));
    EXPECT_TRUE(j[key].is_number_integer());
  }
  for (const char *key : {"density", "waste", "est_time_ms"})
    EXPECT_TRUE(j.contains(key) && j[key].is_number()) << key;
  EXPECT_EQ(j["allowed_pairs"].get<int64_t>(), r.allowedPairs);
  EXPECT_DOUBLE_EQ(j["waste"].get<double>(),
                   static_cast<double>(r.computedPairs) / r.allowedPairs);
  // The human form explains the saving.
  std::string text = report::toText(r);
  EXPECT_NE(text.find("x fewer scores than full attention"), std::string::npos) << text;
}

TEST(MaskPicture, WindowShowsTheBandAndGlobalsTheCross) {
  // A 30-token window 5: every cell on the band is drawn, none far from it.
  mask::Mask window = mask::Mask::window(5, 5);
  mask::BlockSchedule band(window, mask::Extent{30, 30, nullptr}, 16, 16);
  spec::Spec s;
  s.name = "w";
  s.headDim = 64;
  s.queryHeads = s.kvHeads = 1;
  s.mask = window;
  std::string svg = report::renderSvg(band, report::compute(s, band, report::Options{}, false));
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("density"), std::string::npos);
  // 30 rows x (one run of the band) mask rectangles, each fully dense.
  size_t dense = 0;
  for (size_t at = 0; (at = svg.find("fill=\"#1b2f7a\" fill-opacity=\"0.8\"/>", at)) != std::string::npos; ++at)
    ++dense;
  EXPECT_EQ(dense, 30u); // one run of the band per row

  // Global token 0 over a window: row 0 and column 0 are drawn whole (the cross).
  s.mask = mask::Mask::unionOf({mask::Mask::window(1, 1), mask::Mask::globalTokens({0})});
  mask::BlockSchedule cross(s.mask, mask::Extent{30, 30, nullptr}, 16, 16);
  std::string crossSvg = report::renderSvg(cross, report::compute(s, cross, report::Options{}, false));
  EXPECT_NE(crossSvg.find("<title>w: union("), std::string::npos);
}

} // namespace
