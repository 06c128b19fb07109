//===- Manifest.cpp - Kernel package manifests ----------------------------===//

#include "attnc/Package/Manifest.h"
#include "attnc/runtime/hash.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>

namespace attnc::package {

std::string writeManifest(const spec::Spec &s, const ManifestInfo &info) {
  using nlohmann::ordered_json;
  ordered_json specJson = ordered_json::parse(spec::toJson(s));
  auto length = [](const std::optional<int64_t> &n) {
    return n ? ordered_json(*n) : ordered_json(nullptr);
  };
  ordered_json seqQ = length(s.seqLenQ), seqKV = length(s.seqLenKV);
  auto dim = [](const std::optional<int64_t> &n, const char *symbol) {
    return n ? ordered_json(*n) : ordered_json(symbol);
  };
  std::string dtype = spec::dtypeName(s.dtype);
  auto tensor = [&](const char *name, ordered_json n, int64_t heads, const std::string &type) {
    return ordered_json{{"name", name},
                        {"dtype", type},
                        {"shape", {"batch", n, heads, s.headDim}}};
  };

  // Every runtime global node reads the one launch-time list: its capacity is
  // the largest of theirs.
  int64_t runtimeTokens = 0;
  std::function<void(const mask::Mask &)> visit = [&](const mask::Mask &m) {
    if (m.kind == mask::Kind::GlobalRuntime)
      runtimeTokens = std::max(runtimeTokens, m.runtimeMax);
    for (const mask::Mask &child : m.children)
      visit(child);
  };
  visit(s.mask);

  ordered_json m;
  m["format"] = "attnc-kernel-package";
  m["format_version"] = kFormatVersion;
  m["attnc_version"] = info.attncVersion;
  m["abi_version"] = info.abiVersion;
  m["target"] = info.target;
  m["name"] = s.name;
  m["spec"] = specJson;
  m["spec_hash"] = hashString(specJson.dump());
  m["source"] = {{"file", info.sourceFileName}, {"hash", hashString(info.source)}};
  bool cuda = info.target == "cuda";
  m["entry"] = cuda ? "attnc_forward_kernel" : "attnc_forward";
  m["dtype"] = dtype;
  m["head_dim"] = s.headDim;
  m["heads"] = {{"query", s.queryHeads}, {"kv", s.kvHeads}};
  m["seq_len"] = {{"q", seqQ}, {"kv", seqKV}};
  m["tile"] = {{"block_m", info.blockM}, {"block_n", info.blockN}, {"mma", info.mma}};
  if (info.band)
    m["schedule"] = {{"kind", "band"},
                     {"lo", info.band->lo},
                     {"hi", info.band->hi},
                     {"period", info.band->period}};
  else
    m["schedule"] = {{"kind", "table"}};
  m["runtime_global_tokens"] = runtimeTokens;
  m["residue_classes"] = info.residueClasses;
  if (cuda) {
    m["launch"] = {{"grid", {"query_tiles", "heads.query", "batch"}},
                   {"query_tiles", "ceil(seq_len.q / tile.block_m)"},
                   {"threads_per_block", info.threadsPerBlock},
                   {"shared_bytes", info.sharedBytes}};
    if (!info.arch.empty())
      m["launch"]["arch"] = info.arch; // the kernels run on this architecture only
  } else {
    m["launch"] = {{"grid", {"batch", "heads.query", "query_tiles"}},
                   {"query_tiles", "ceil(seq_len.q / tile.block_m)"}};
  }
  if (info.backward) {
    ordered_json b;
    b["dq"] = info.deterministic ? "separate" : "atomic";
    if (!cuda) {
      b["entry"] = "attnc_backward";
    } else {
      ordered_json kernels = ordered_json::object();
      for (const ManifestInfo::BackwardKernel &k : info.backwardKernels) {
        bool kvGrid = k.role == "dkdv" || k.role == "dkdv_convert";
        kernels[k.role] = {
            {"entry", k.entry},
            {"grid", kvGrid ? ordered_json{"kv_tiles", "heads.kv", "batch"}
                            : ordered_json{"query_tiles", "heads.query", "batch"}},
            {"threads_per_block", k.threadsPerBlock},
            {"shared_bytes", k.sharedBytes}};
        if (kvGrid)
          kernels[k.role]["block_n"] = k.blockN; // kv_tiles = ceil(seq_len.kv / block_n)
        else
          kernels[k.role]["block_m"] = k.blockM; // query_tiles = ceil(seq_len.q / block_m)
        if (k.role == "dkdv")
          kernels[k.role]["group_splits"] = k.groupSplits; // grid y = heads.kv x group_splits
      }
      b["kernels"] = kernels;
    }
    m["backward"] = b;
  }
  m["arguments"] = {
      tensor("q", dim(s.seqLenQ, "seq_len.q"), s.queryHeads, dtype),
      tensor("k", dim(s.seqLenKV, "seq_len.kv"), s.kvHeads, dtype),
      tensor("v", dim(s.seqLenKV, "seq_len.kv"), s.kvHeads, dtype),
      tensor("o", dim(s.seqLenQ, "seq_len.q"), s.queryHeads, dtype),
      ordered_json{{"name", "lse"},
                   {"dtype", "fp32"},
                   {"shape", {"batch", s.queryHeads, dim(s.seqLenQ, "seq_len.q")}}}};
  return m.dump(2) + "\n";
}

} // namespace attnc::package
