//===- Report.cpp - What a mask costs -------------------------------------===//

#include "attnc/Report/Report.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace attnc::report {

namespace {

/// Bytes of one element of Q, K, V and O (bf16 and fp16 alike).
constexpr int64_t kElementBytes = 2;
/// Bytes of one LSE entry (float32).
constexpr int64_t kLseBytes = 4;
/// FLOPs per allowed pair and head_dim element: S = QK^T and O += PV.
constexpr int64_t kFwdFlopsPerPairDim = 4;
/// Backward: recompute S, dV += P^T dO, dP = dO V^T, dQ += dS K, dK += dS^T Q.
constexpr int64_t kBwdFlopsPerPairDim = 10;

std::string withCommas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

/// `v` in decimal multiples of `unit`: "1.23 GB", "12.30 GFLOP", "456 B".
std::string decimal(int64_t v, const std::string &unit) {
  const char *prefixes[] = {"", "k", "M", "G", "T", "P", "E"};
  double x = static_cast<double>(v);
  int p = 0;
  while (x >= 1000 && p < 6) {
    x /= 1000;
    ++p;
  }
  return fixed(x, p ? 2 : 0) + " " + prefixes[p] + unit;
}

/// "1.23 GB", "456 kB".
std::string bytes(int64_t b) { return decimal(b, "B"); }

/// "12.30 GFLOP".
std::string flops(int64_t f) { return decimal(f, "FLOP"); }

} // namespace

Report compute(const spec::Spec &spec, const mask::BlockSchedule &schedule,
               const Options &options, bool runtimeTokensOmitted) {
  Report r;
  r.name = spec.name;
  r.dtype = spec::dtypeName(spec.dtype);
  r.mask = mask::toString(mask::canonicalize(spec.mask));
  r.headDim = spec.headDim;
  r.specQueryHeads = spec.queryHeads;
  r.specKvHeads = spec.kvHeads;
  r.nq = schedule.geometry().extent().nq;
  r.nk = schedule.geometry().extent().nk;
  r.batch = options.batch;
  r.queryHeads = options.queryHeads;
  // The kv heads the counted query heads read: a partial group reads a whole kv head.
  int64_t group = spec.queryHeads / spec.kvHeads;
  r.kvHeads = (options.queryHeads + group - 1) / group;
  r.blockM = schedule.blockM();
  r.blockN = schedule.blockN();
  r.closedForm = schedule.isClosedForm();
  r.runtimeTokensOmitted = runtimeTokensOmitted;
  r.hardware = options.hardware;

  mask::TileTotals t = schedule.totals();
  int64_t copies = options.batch * options.queryHeads;
  r.allowedPairs = t.allowedPairs * copies;
  r.densePairs = r.nq * r.nk * copies;
  r.computedPairs = t.computedPairs * copies;
  r.tilesFull = t.full * copies;
  r.tilesPartial = t.partial * copies;
  r.tilesSkipped = t.skipped * copies;
  r.flopsFwd = kFwdFlopsPerPairDim * spec.headDim * r.allowedPairs;
  r.flopsBwd = kBwdFlopsPerPairDim * spec.headDim * r.allowedPairs;
  r.flopsFwdComputed = kFwdFlopsPerPairDim * spec.headDim * r.computedPairs;

  // Read Q, K, V once; write O and LSE once.
  int64_t qBytes = r.nq * r.queryHeads * spec.headDim * kElementBytes;
  int64_t kvBytes = 2 * r.nk * r.kvHeads * spec.headDim * kElementBytes;
  int64_t lseBytes = r.nq * r.queryHeads * kLseBytes;
  r.hbmBytesMin = options.batch * (2 * qBytes + kvBytes + lseBytes);

  // K and V of one token for every layer-head of the spec (what a decoder caches).
  r.kvCacheBytesPerToken = 2 * spec.kvHeads * spec.headDim * kElementBytes;
  r.kvCacheBytesPerTokenMha = 2 * spec.queryHeads * spec.headDim * kElementBytes;
  r.kvCacheBytesPerTokenMqa = 2 * spec.headDim * kElementBytes;

  // The backward recomputes P from the saved LSE instead of storing it.
  r.backward = spec.backward;
  if (r.backward) {
    r.bwdLseBytes = options.batch * lseBytes;
    r.bwdWorkspaceBytes = options.batch * r.nq * r.queryHeads * kLseBytes * (1 + spec.headDim);
    r.bwdPBytes = r.densePairs * kElementBytes;
  }

  r.density = r.densePairs ? static_cast<double>(r.allowedPairs) / r.densePairs : 0;
  r.waste = r.allowedPairs ? static_cast<double>(r.computedPairs) / r.allowedPairs : 0;
  double computeS = r.flopsFwdComputed / (options.hardware.peakTflops * 1e12);
  double memoryS = r.hbmBytesMin / (options.hardware.bandwidthTBs * 1e12);
  r.computeBound = computeS >= memoryS;
  r.estTimeMs = std::max(computeS, memoryS) * 1e3;
  return r;
}

std::string toJson(const Report &r) {
  nlohmann::ordered_json j;
  j["name"] = r.name;
  j["dtype"] = r.dtype;
  j["mask"] = r.mask;
  j["head_dim"] = r.headDim;
  j["seq_len"] = {{"q", r.nq}, {"kv", r.nk}};
  j["batch"] = r.batch;
  j["heads"] = {{"query", r.queryHeads}, {"kv", r.kvHeads}};
  j["tile"] = {{"block_m", r.blockM}, {"block_n", r.blockN}};
  j["schedule"] = r.closedForm ? "closed_form" : "table";
  j["runtime_global_tokens_counted"] = !r.runtimeTokensOmitted;
  j["allowed_pairs"] = r.allowedPairs;
  j["dense_pairs"] = r.densePairs;
  j["density"] = r.density;
  j["tiles_full"] = r.tilesFull;
  j["tiles_partial"] = r.tilesPartial;
  j["tiles_skipped"] = r.tilesSkipped;
  j["computed_pairs"] = r.computedPairs;
  j["waste"] = r.waste;
  j["flops_fwd"] = r.flopsFwd;
  j["flops_bwd"] = r.flopsBwd;
  j["flops_fwd_computed"] = r.flopsFwdComputed;
  j["hbm_bytes_min"] = r.hbmBytesMin;
  j["kv_cache_bytes_per_token"] = r.kvCacheBytesPerToken;
  j["kv_cache_bytes_per_token_mha"] = r.kvCacheBytesPerTokenMha;
  j["kv_cache_bytes_per_token_mqa"] = r.kvCacheBytesPerTokenMqa;
  if (r.backward)
    j["backward"] = {{"saved_lse_bytes", r.bwdLseBytes},
                     {"workspace_bytes_max", r.bwdWorkspaceBytes},
                     {"stored_p_bytes", r.bwdPBytes},
                     {"bytes_saved", r.bwdPBytes - r.bwdLseBytes}};
  j["est_time_ms"] = r.estTimeMs;
  j["est_bound"] = r.computeBound ? "compute" : "memory";
  j["peak_tflops"] = r.hardware.peakTflops;
  j["peak_tbs"] = r.hardware.bandwidthTBs;
  return j.dump(2) + "\n";
}

std::string toText(const Report &r) {
  std::ostringstream os;
  std::string scope = r.batch == 1 && r.queryHeads == 1
                          ? "one head, batch 1"
                          : std::to_string(r.queryHeads) + " query heads x batch " +
                                std::to_string(r.batch);
  os << r.name << ": " << r.dtype << ", head_dim " << r.headDim << ", heads " << r.specQueryHeads
     << " query / " << r.specKvHeads << " kv, q " << withCommas(r.nq) << " x kv "
     << withCommas(r.nk) << "\n";
  os << "mask: " << r.mask << "\n";
  os << "counts for " << scope << " (--batch, --heads scale them)\n\n";

  os << "  scores       " << withCommas(r.allowedPairs) << " allowed of " << withCommas(r.densePairs)
     << " (density " << fixed(100 * r.density, 2) << "%)\n";
  if (r.allowedPairs == 0)
    os << "               every row is fully masked: O = 0, LSE = -inf\n";
  else if (r.allowedPairs < r.densePairs)
    os << "               " << fixed(static_cast<double>(r.densePairs) / r.allowedPairs, 1)
       << "x fewer scores than full attention\n";
  else
    os << "               full attention: every pair is allowed\n";

  os << "  tiles        " << r.blockM << "x" << r.blockN << ": " << withCommas(r.tilesFull)
     << " full (no mask math), " << withCommas(r.tilesPartial) << " partial (masked), "
     << withCommas(r.tilesSkipped) << " skipped\n";
  os << "               schedule: "
     << (r.closedForm ? "closed form from tile indices (no table)" : "table of visited tiles")
     << "\n";
  os << "  computed     " << withCommas(r.computedPairs) << " pairs in visited tiles: waste "
     << fixed(r.waste, 2) << "x (computed per allowed pair)\n";
  os << "  FLOPs        forward " << flops(r.flopsFwd) << ", backward " << flops(r.flopsBwd)
     << " (useful: 4 and 10 per pair and head_dim)\n";
  os << "  memory       " << bytes(r.hbmBytesMin)
     << " minimum HBM traffic (read Q, K, V; write O, LSE once)\n";
  if (r.backward)
    os << "  backward     recomputes P from the saved LSE (" << bytes(r.bwdLseBytes)
       << "): no N x N tensor; storing P would take " << bytes(r.bwdPBytes)
       << "\n               (saves " << bytes(r.bwdPBytes - r.bwdLseBytes)
       << "); float32 workspace at most " << bytes(r.bwdWorkspaceBytes)
       << " (delta, atomic dQ)\n";
  os << "  KV cache     " << withCommas(r.kvCacheBytesPerToken) << " bytes/token ("
     << r.specKvHeads << " kv heads); MHA " << withCommas(r.kvCacheBytesPerTokenMha)
     << ", MQA " << withCommas(r.kvCacheBytesPerTokenMqa) << "\n";
  os << "  estimate     " << fixed(r.estTimeMs, 4) << " ms forward, "
     << (r.computeBound ? "compute" : "memory") << "-bound on the roofline ("
     << fixed(r.hardware.peakTflops, 0) << " TFLOP/s, " << fixed(r.hardware.bandwidthTBs, 2)
     << " TB/s)\n";
  if (r.runtimeTokensOmitted)
    os << "\nnote: runtime global tokens are given at launch and not counted here\n";
  return os.str();
}

} // namespace attnc::report
