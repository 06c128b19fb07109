//===- attnc-run.cpp - Run, check and benchmark a spec's kernel -----------===//
//
//   attnc-run SPEC --target cpu [--batch B] [--seq-len NQ[,NKV]] [--seed S]
//             [--inputs DIR] [--save DIR] [--check] [--bench] [--json]
//             [--global-tokens T1,T2,...] [--threads N] [--tile MxN]
//
// Compiles the spec with libattnc, loads the kernel package into libattnrt
// (which builds it with the system C++ compiler and caches it on disk), runs
// it on random or given inputs, and optionally checks it against the float64
// reference (and a naive implementation in the spec's dtype, the baseline of
// the error rule) or benchmarks it against that naive implementation.
// Errors name the file, flag or argument at fault; a failed run exits
// non-zero and writes nothing.
//
//===----------------------------------------------------------------------===//

#include "Naive.h"
#include "NpyIO.h"

#include "attnc/Compiler/Compiler.h"
#include "attnc/Compiler/Flags.h"
#include "attnc/Reference/Reference.h"
#include "attnc/Spec/Spec.h"
#include "attnc/Version.h"
#include "attnc/runtime/attnrt.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <malloc.h>
#include <optional>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace cl = llvm::cl;
using namespace attnc;
using npy::HalfType;

namespace {

cl::OptionCategory runCategory("attnc-run options");

cl::opt<std::string> specPath(cl::Positional, cl::desc("SPEC"), cl::Required, cl::cat(runCategory));
cl::opt<std::string> targetFlag("target", cl::desc("Where to run: cpu (the only target so far)"),
                                cl::value_desc("TARGET"), cl::init("cpu"), cl::cat(runCategory));
cl::opt<int64_t> batchFlag("batch",
                           cl::desc("Batch size of random inputs (default 1; with --inputs it "
                                    "comes from the arrays and must agree if given)"),
                           cl::value_desc("B"), cl::init(1), cl::cat(runCategory));
cl::opt<std::string> seqLenFlag("seq-len",
                                cl::desc("Query and key lengths (NKV defaults to NQ); needed for "
                                         "random inputs when the spec has no seq_len, and must "
                                         "agree with the spec's seq_len and with --inputs"),
                                cl::value_desc("NQ[,NKV]"), cl::cat(runCategory));
cl::opt<uint64_t> seedFlag("seed", cl::desc("Seed of the random inputs (default 0)"),
                           cl::value_desc("S"), cl::init(0), cl::cat(runCategory));
cl::opt<std::string> inputsFlag(
    "inputs",
    cl::desc("Read Q, K, V from DIR/q.npy, k.npy, v.npy instead of random values (formats above)"),
    cl::value_desc("DIR"), cl::cat(runCategory));
cl::opt<std::string>
    saveFlag("save",
             cl::desc("Write DIR/o.npy [B, Nq, Hq, D] and DIR/lse.npy [B, Hq, Nq], float32 (DIR is "
                      "created)"),
             cl::value_desc("DIR"), cl::cat(runCategory));
cl::opt<bool> checkFlag("check",
                        cl::desc("Compare with the float64 reference: attnc's relative L2 error "
                                 "of O and LSE must be <= 2x that of a naive implementation in "
                                 "the spec's dtype, and fully masked rows exactly O = 0, "
                                 "LSE = -inf (exit status 2 otherwise)"),
                        cl::cat(runCategory));
cl::opt<bool> benchFlag("bench",
                        cl::desc("Time attnc against the naive materialized implementation "
                                 "(median of --runs after a warm-up) and measure the peak "
                                 "memory of both"),
                        cl::cat(runCategory));
cl::opt<int> runsFlag("runs", cl::desc("--bench: timed runs of each implementation (>= 5)"),
                      cl::value_desc("N"), cl::init(5), cl::cat(runCategory));
cl::opt<bool> jsonFlag("json", cl::desc("Print every result as one JSON object"),
                       cl::cat(runCategory));
cl::opt<std::string> globalTokensFlag(
    "global-tokens",
    cl::desc("The launch-time token list of a runtime global mask (default: none)"),
    cl::value_desc("T1,T2,..."), cl::cat(runCategory));
cl::opt<std::string> tileFlag("tile",
                              cl::desc("Tile BLOCK_M x BLOCK_N, powers of two in [16, 256] "
                                       "(default: the attn-tile heuristic)"),
                              cl::value_desc("MxN"), cl::cat(runCategory));
cl::opt<bool> verboseFlag("verbose",
                          cl::desc("Let the runtime print cache hits, misses and compiler "
                                   "commands"),
                          cl::cat(runCategory));
cl::opt<std::string> writeInputsFlag(
    "write-inputs",
    cl::desc("Also write the inputs as DIR/q.npy, k.npy, v.npy (float32, the dtype-rounded "
             "values, so that --inputs DIR reproduces the run exactly)"),
    cl::value_desc("DIR"), cl::Hidden, cl::cat(runCategory));

constexpr const char *kOverview =
    "attnc-run: runs an attention spec's kernel, checks it, benchmarks it\n\n"
    "  attnc-run SPEC --target cpu [--batch B] [--seq-len NQ[,NKV]] [--seed S]\n"
    "            [--inputs DIR] [--save DIR] [--check] [--bench] [--json]\n"
    "            [--global-tokens T1,T2,...] [--threads N] [--tile MxN]\n\n"
    "Inputs are random (standard normal, seeded, rounded to the spec's dtype) or\n"
    "read with --inputs DIR from DIR/q.npy [B, Nq, Hq, D], DIR/k.npy and DIR/v.npy\n"
    "[B, Nkv, Hkv, D] (NumPy .npy, format 1.0 or 2.0, little-endian, C order).\n"
    "B and the lengths then come from the arrays. Element types:\n"
    "  float32 ('<f4')  rounded to the spec's dtype (nearest even)\n"
    "  float16 ('<f2')  taken as is for fp16 specs; for bf16 specs converted\n"
    "                   exactly to float and rounded to bfloat16\n"
    "  uint16  ('<u2')  bfloat16 bits (NumPy has no bfloat16: save\n"
    "                   x.view(np.uint16)); taken as is for bf16 specs; for fp16\n"
    "                   specs converted exactly to float and rounded to float16\n"
    "Values must be finite in the spec's dtype. --write-inputs DIR (hidden) writes\n"
    "the inputs of a run as float32 q.npy, k.npy, v.npy, which --inputs DIR reads\n"
    "back exactly.\n\n"
    "--save writes float32 arrays even when the check fails (the exit status\n"
    "says so). Exit status: 0 success, 1 error (nothing written), 2 check failed.\n";

int fail(const std::string &message) {
  llvm::errs() << "attnc-run: error: " << message << "\n";
  return 1;
}

/// Parses --seq-len; returns an error message or "".
std::string parseSeqLen(std::optional<std::pair<int64_t, int64_t>> &lengths) {
  if (seqLenFlag.empty())
    return "";
  int64_t nq = 0, nk = 0;
  if (std::string error = parseSeqLenFlag(seqLenFlag, nq, nk); !error.empty())
    return error;
  lengths = {nq, nk};
  return "";
}

/// The capacity of the mask's runtime global token list (0: none).
int64_t runtimeTokenCapacity(const mask::Mask &m) {
  int64_t capacity = m.kind == mask::Kind::GlobalRuntime ? m.runtimeMax : 0;
  for (const mask::Mask &child : m.children)
    capacity = std::max(capacity, runtimeTokenCapacity(child));
  return capacity;
}

/// splitmix64: the generator of the random inputs (the same values on every
/// platform and standard library).
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in (0, 1].
  double uniform() { return static_cast<double>((next() >> 11) + 1) * 0x1.0p-53; }
};

/// `n` standard normal values (Box-Muller), seeded by (seed, tensor),
/// rounded to `type`.
std::vector<uint16_t> randomTensor(size_t n, uint64_t seed, int tensor, HalfType type) {
  SplitMix64 gen{seed * 0x2545f4914f6cdd1dull +
                 static_cast<uint64_t>(tensor + 1) * 0x9e3779b97f4a7c15ull};
  std::vector<uint16_t> bits(n);
  for (size_t i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(gen.uniform()));
    const double theta = 2.0 * M_PI * gen.uniform();
    bits[i] = npy::floatToHalf(static_cast<float>(r * std::cos(theta)), type);
    if (i + 1 < n)
      bits[i + 1] = npy::floatToHalf(static_cast<float>(r * std::sin(theta)), type);
  }
  return bits;
}

std::vector<float> halfToFloats(const std::vector<uint16_t> &bits, HalfType type) {
  std::vector<float> f(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    f[i] = npy::halfToFloat(bits[i], type);
  return f;
}

std::vector<double> halfToDoubles(const std::vector<uint16_t> &bits, HalfType type) {
  std::vector<double> d(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    d[i] = npy::halfToFloat(bits[i], type);
  return d;
}

/// A contiguous [d0, d1, d2, d3] (or 3-d) view.
attnc_tensor_view view(void *data, std::vector<int64_t> shape, attnc_dtype dtype) {
  attnc_tensor_view v{};
  v.data = data;
  v.rank = static_cast<int32_t>(shape.size());
  v.dtype = dtype;
  int64_t stride = 1;
  for (int d = v.rank - 1; d >= 0; --d) {
    v.shape[d] = shape[static_cast<size_t>(d)];
    v.strides[d] = stride;
    stride *= shape[static_cast<size_t>(d)];
  }
  return v;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// A field of /proc/self/status in bytes (VmRSS, VmHWM), or -1.
int64_t procStatusBytes(const char *field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.compare(0, prefix.size(), prefix) == 0)
      return std::atoll(line.c_str() + prefix.size()) * 1024;
  return -1;
}

/// The growth of the resident set's high-water mark while `body` runs
/// (Linux: writing 5 to /proc/self/clear_refs resets VmHWM to VmRSS), or -1
/// where that is not available.
int64_t measurePeakBytes(const std::function<void()> &body) {
  bool resettable = false;
  if (std::FILE *f = std::fopen("/proc/self/clear_refs", "w")) {
    resettable = std::fputs("5", f) >= 0;
    resettable = (std::fclose(f) == 0) && resettable;
  }
  const int64_t before = procStatusBytes("VmRSS");
  body();
  const int64_t peak = procStatusBytes("VmHWM");
  if (!resettable || before < 0 || peak < 0)
    return -1;
  return std::max<int64_t>(0, peak - before);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// "1.23 MiB".
std::string humanBytes(double bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

std::string sci(double v) {
  if (std::isinf(v))
    return "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3e", v);
  return buf;
}

/// A JSON number, or null when not finite (JSON has no inf/nan).
llvm::json::Value number(double v) {
  if (!std::isfinite(v))
    return nullptr;
  return v;
}

/// Everything a run produced, for the text and JSON reports.
struct Results {
  // Problem.
  int64_t batch = 0, nq = 0, nk = 0;
  std::string inputs; // "random" or the directory
  std::vector<std::string> inputNotes;
  std::vector<int64_t> tokens;
  bool hasRuntimeTokens = false;
  // Kernel.
  int64_t blockM = 0, blockN = 0;
  std::string schedule;
  bool fromCache = false;
  double buildSeconds = 0, runSeconds = 0;
  int threads = 0;
  // Check.
  bool checked = false, passed = true;
  double errO = 0, errLse = 0, naiveErrO = 0, naiveErrLse = 0;
  int64_t maskedRows = 0, rows = 0, maskedWrong = 0;
  bool okO = true, okLse = true;
  // Bench.
  bool benched = false;
  int runs = 0;
  double attncMedian = 0, attncMin = 0, naiveMedian = 0, naiveMin = 0;
  int64_t attncPeak = -1, naivePeak = -1, attncOutputBytes = 0, naiveMaterialized = 0;
  int64_t allowedPairs = 0;
  std::vector<std::string> saved;
};

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(runCategory);
  cl::AddExtraVersionPrinter(
      [](llvm::raw_ostream &os) { os << "attnc-run " << ATTNC_VERSION << "\n"; });
  // libLLVM registers a hidden option "threads" of its own: take the name
  // over before registering ours (at static initialization the two would
  // collide).
  if (cl::Option *taken = cl::getRegisteredOptions().lookup("threads"))
    taken->removeArgument();
  static cl::opt<int> threadsFlag("threads",
                                  cl::desc("Worker threads of attnc, the naive implementation and "
                                           "the reference (default 0: all hardware threads)"),
                                  cl::value_desc("N"), cl::init(0), cl::cat(runCategory));
  cl::ParseCommandLineOptions(argc, argv, kOverview);
  // Large buffers come from fresh mmaps (no dynamic threshold), so that the
  // resident-set high-water marks of --bench see every byte allocated.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  // Flags.
  if (targetFlag != "cpu")
    return fail("--target=" + targetFlag + ": unknown or unavailable target; valid targets: cpu");
  CompileOptions compileOptions;
  compileOptions.target = targetFlag;
  if (std::string error = tileFlag.empty() ? std::string()
                                            : parseTileFlag(tileFlag, compileOptions.blockM,
                                                            compileOptions.blockN);
      !error.empty())
    return fail(error);
  std::optional<std::pair<int64_t, int64_t>> flagLengths;
  if (std::string error = parseSeqLen(flagLengths); !error.empty())
    return fail(error);
  Results res;
  if (std::string error = parseTokensFlag(globalTokensFlag, res.tokens); !error.empty())
    return fail(error);
  if (batchFlag < 1)
    return fail("--batch=" + std::to_string(batchFlag) + ": must be >= 1");
  if (threadsFlag < 0)
    return fail("--threads=" + std::to_string(threadsFlag) + ": must be >= 0");
  if (runsFlag < 5)
    return fail("--runs=" + std::to_string(runsFlag) + ": must be >= 5");
  const int threads = threadsFlag > 0
                          ? threadsFlag
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  res.threads = threads;

  // The spec.
  spec::LoadResult loaded = spec::loadSpecFromFile(specPath);
  for (const spec::Diagnostic &d : loaded.diagnostics)
    llvm::errs() << d.format() << "\n";
  if (!loaded.ok())
    return 1;
  const spec::Spec &s = *loaded.spec;
  const HalfType type = s.dtype == spec::DType::BF16 ? HalfType::BF16 : HalfType::FP16;
  const attnc_dtype abiType = s.dtype == spec::DType::BF16 ? ATTNC_DTYPE_BF16 : ATTNC_DTYPE_FP16;
  const char *dtypeName = spec::dtypeName(s.dtype);
  const int64_t Hq = s.queryHeads, Hkv = s.kvHeads, D = s.headDim;
  if (flagLengths && s.seqLenQ &&
      (flagLengths->first != *s.seqLenQ || flagLengths->second != *s.seqLenKV))
    return fail("--seq-len=" + seqLenFlag + ": the spec fixes seq_len to " +
                std::to_string(*s.seqLenQ) + "," + std::to_string(*s.seqLenKV));

  // The inputs, in the spec's dtype.
  std::vector<uint16_t> q, k, v;
  if (!inputsFlag.empty()) {
    npy::Array arrays[3];
    const char *names[3] = {"q.npy", "k.npy", "v.npy"};
    std::string paths[3];
    for (int t = 0; t < 3; ++t) {
      llvm::SmallString<256> path(inputsFlag.getValue());
      llvm::sys::path::append(path, names[t]);
      paths[t] = path.str().str();
      std::string error;
      if (!npy::readFile(paths[t], paths[t], arrays[t], error))
        return fail(error);
      if (arrays[t].shape.size() != 4)
        return fail(paths[t] + ": expected 4 dimensions [B, N, H, D], got " +
                    std::to_string(arrays[t].shape.size()));
    }
    const std::vector<int64_t> &qs = arrays[0].shape, &ks = arrays[1].shape, &vs = arrays[2].shape;
    auto mismatch = [&](int t, const std::string &what) {
      return fail(paths[t] + ": shape " + npy::shapeString(arrays[t].shape) + " does not match " +
                  what);
    };
    if (qs[0] < 1 || qs[1] < 1)
      return fail(paths[0] + ": shape " + npy::shapeString(qs) +
                  ": the batch and the length must be >= 1");
    if (qs[2] != Hq)
      return mismatch(0, "the spec's query heads " + std::to_string(Hq));
    if (qs[3] != D)
      return mismatch(0, "the spec's head_dim " + std::to_string(D));
    if (ks[0] != qs[0])
      return mismatch(1, "q.npy's batch " + std::to_string(qs[0]));
    if (ks[1] < 1)
      return fail(paths[1] + ": shape " + npy::shapeString(ks) + ": the length must be >= 1");
    if (ks[2] != Hkv)
      return mismatch(1, "the spec's kv heads " + std::to_string(Hkv));
    if (ks[3] != D)
      return mismatch(1, "the spec's head_dim " + std::to_string(D));
    if (vs != ks)
      return mismatch(2, "k.npy's shape " + npy::shapeString(ks));
    res.batch = qs[0];
    res.nq = qs[1];
    res.nk = ks[1];
    if (batchFlag.getNumOccurrences() && batchFlag != res.batch)
      return fail(paths[0] + ": batch " + std::to_string(res.batch) +
                  " does not match --batch=" + std::to_string(batchFlag));
    if (flagLengths && flagLengths->first != res.nq)
      return fail(paths[0] + ": length " + std::to_string(res.nq) +
                  " does not match --seq-len=" + seqLenFlag);
    if (flagLengths && flagLengths->second != res.nk)
      return fail(paths[1] + ": length " + std::to_string(res.nk) +
                  " does not match --seq-len=" + seqLenFlag);
    if (s.seqLenQ && *s.seqLenQ != res.nq)
      return fail(paths[0] + ": length " + std::to_string(res.nq) +
                  " does not match the spec's seq_len.q " + std::to_string(*s.seqLenQ));
    if (s.seqLenKV && *s.seqLenKV != res.nk)
      return fail(paths[1] + ": length " + std::to_string(res.nk) +
                  " does not match the spec's seq_len.kv " + std::to_string(*s.seqLenKV));
    std::vector<uint16_t> *outs[3] = {&q, &k, &v};
    for (int t = 0; t < 3; ++t) {
      std::string error;
      if (!npy::toHalf(arrays[t], type, paths[t], *outs[t], error))
        return fail(error);
      const npy::ElementType et = arrays[t].type;
      std::string how =
          et == npy::ElementType::Float32 ? std::string("float32, rounded to ") + dtypeName
          : et == npy::ElementType::Float16
              ? (type == HalfType::FP16 ? std::string("float16, as is")
                                        : std::string("float16, rounded to bf16"))
              : (type == HalfType::BF16 ? std::string("bfloat16 bits (uint16), as is")
                                        : std::string("bfloat16 bits (uint16), rounded to fp16"));
      res.inputNotes.push_back(std::string(names[t]) + ": " + how);
      arrays[t].data.clear();
      arrays[t].data.shrink_to_fit();
    }
    res.inputs = inputsFlag;
  } else {
    res.batch = batchFlag;
    if (flagLengths) {
      res.nq = flagLengths->first;
      res.nk = flagLengths->second;
    } else if (s.seqLenQ) {
      res.nq = *s.seqLenQ;
      res.nk = *s.seqLenKV;
    } else {
      return fail("the spec leaves seq_len to launch time; give --seq-len NQ[,NKV] or --inputs "
                  "DIR");
    }
    res.inputs = "random";
  }
  const int64_t B = res.batch, Nq = res.nq, Nk = res.nk;

  // The naive implementation materializes [Nq, Nk] matrices: refuse sizes
  // that cannot fit rather than be killed half-way.
  {
    const double pairs = static_cast<double>(Nq) * static_cast<double>(Nk);
    const double workers = static_cast<double>(std::min<int64_t>(threads, B * Hq));
    const double physical =
        static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
    auto tooLarge = [&](const char *flag, double bytes, const char *what) -> std::string {
      if (physical <= 0 || bytes <= 0.75 * physical)
        return "";
      char buf[320];
      std::snprintf(buf, sizeof buf,
                    "%s: the naive implementation would materialize %.0f bytes (%s), more than "
                    "3/4 of this machine's memory (%.0f bytes)",
                    flag, bytes, what, physical);
      return buf;
    };
    if (benchFlag)
      if (std::string e =
              tooLarge("--bench", pairs * (1 + 4.0 * B * Hq), "S and P of [B, Hq, Nq, Nk]");
          !e.empty())
        return fail(e);
    if (checkFlag)
      if (std::string e =
              tooLarge("--check", pairs * (1 + 4.0 * workers), "S and P of [Nq, Nk] per thread");
          !e.empty())
        return fail(e);
  }

  // The runtime global token list.
  const int64_t capacity = runtimeTokenCapacity(s.mask);
  res.hasRuntimeTokens = capacity > 0;
  if (!globalTokensFlag.empty() && capacity == 0)
    return fail("--global-tokens: the spec's mask has no runtime global tokens");
  if (static_cast<int64_t>(res.tokens.size()) > capacity && capacity > 0)
    return fail("--global-tokens: " + std::to_string(res.tokens.size()) +
                " tokens given, the spec takes at most " + std::to_string(capacity));
  for (int64_t t : res.tokens)
    if (t >= Nk)
      return fail("--global-tokens: token " + std::to_string(t) +
                  " is out of range for kv length " + std::to_string(Nk));
  const std::vector<int64_t> *tokens = res.hasRuntimeTokens ? &res.tokens : nullptr;

  // Random inputs, once every size is known to be acceptable.
  if (res.inputs == "random") {
    q = randomTensor(static_cast<size_t>(B * Nq * Hq * D), seedFlag, 0, type);
    k = randomTensor(static_cast<size_t>(B * Nk * Hkv * D), seedFlag, 1, type);
    v = randomTensor(static_cast<size_t>(B * Nk * Hkv * D), seedFlag, 2, type);
  }

  // Compile the spec, load the package and build (or fetch) the kernel.
  auto buildStart = std::chrono::steady_clock::now();
  CompileResult compiled = compileSpec(s, compileOptions);
  if (!compiled.diagnostics.empty()) {
    llvm::errs() << compiled.diagnostics;
    if (compiled.diagnostics.back() != '\n')
      llvm::errs() << "\n";
  }
  if (!compiled.ok())
    return 1;
  if (llvm::Expected<llvm::json::Value> manifest =
          llvm::json::parse(compiled.package->manifestJson)) {
    if (const llvm::json::Object *m = manifest->getAsObject()) {
      if (const llvm::json::Object *tile = m->getObject("tile")) {
        res.blockM = tile->getInteger("block_m").value_or(0);
        res.blockN = tile->getInteger("block_n").value_or(0);
      }
      if (const llvm::json::Object *schedule = m->getObject("schedule"))
        res.schedule = schedule->getString("kind").value_or("").str();
    }
  } else {
    llvm::consumeError(manifest.takeError());
  }
  attnrt_package *package = nullptr;
  if (attnrt_package_from_memory(compiled.package->manifestJson.c_str(),
                                 compiled.package->source.c_str(), &package) != ATTNRT_OK)
    return fail(attnrt_last_error());
  std::unique_ptr<attnrt_package, void (*)(attnrt_package *)> packageOwner(package,
                                                                           attnrt_package_free);
  attnrt_compile_options runtimeOptions{};
  runtimeOptions.verbose = verboseFlag ? 1 : 0;
  attnrt_kernel *kernel = nullptr;
  if (attnrt_kernel_create(package, &runtimeOptions, &kernel) != ATTNRT_OK)
    return fail(attnrt_last_error());
  std::unique_ptr<attnrt_kernel, void (*)(attnrt_kernel *)> kernelOwner(kernel, attnrt_kernel_free);
  res.fromCache = attnrt_kernel_from_cache(kernel) != 0;
  res.buildSeconds = secondsSince(buildStart);

  // Run attnc.
  const size_t oSize = static_cast<size_t>(B * Nq * Hq * D),
               lseSize = static_cast<size_t>(B * Hq * Nq);
  attnc_tensor_view qv = view(q.data(), {B, Nq, Hq, D}, abiType);
  attnc_tensor_view kv = view(k.data(), {B, Nk, Hkv, D}, abiType);
  attnc_tensor_view vv = view(v.data(), {B, Nk, Hkv, D}, abiType);
  auto runAttnc = [&](std::vector<uint16_t> &o, std::vector<float> &lse) {
    attnc_tensor_view ov = view(o.data(), {B, Nq, Hq, D}, abiType);
    attnc_tensor_view lv = view(lse.data(), {B, Hq, Nq}, ATTNC_DTYPE_FP32);
    return attnrt_forward(kernel, &qv, &kv, &vv, &ov, &lv, tokens ? tokens->data() : nullptr,
                          tokens ? static_cast<int64_t>(tokens->size()) : 0, threads);
  };
  std::vector<uint16_t> o(oSize);
  std::vector<float> lse(lseSize, std::numeric_limits<float>::quiet_NaN());
  auto runStart = std::chrono::steady_clock::now();
  if (runAttnc(o, lse) != ATTNRT_OK)
    return fail(attnrt_last_error());
  res.runSeconds = secondsSince(runStart);

  const reference::Shape shape{B, Nq, Nk, Hq, Hkv, D};
  std::optional<naive::Result> naiveResult;

  // --bench: memory first (before other large buffers come and go), then time.
  if (benchFlag) {
    res.benched = true;
    res.runs = runsFlag;
    res.attncOutputBytes = static_cast<int64_t>(oSize * 2 + lseSize * 4);
    res.attncPeak = measurePeakBytes([&] {
      std::vector<uint16_t> o2(oSize);
      std::vector<float> lse2(lseSize);
      runAttnc(o2, lse2);
    });
    res.naivePeak = measurePeakBytes([&] {
      naive::Result r = naive::forward(s.mask, shape, type, static_cast<float>(s.scale), q.data(),
                                       k.data(), v.data(), tokens, threads);
      res.naiveMaterialized = r.materializedBytes;
      res.allowedPairs = r.allowedPairs;
    });
    std::vector<double> times;
    runAttnc(o, lse); // warm-up
    for (int r = 0; r < runsFlag; ++r) {
      auto start = std::chrono::steady_clock::now();
      if (runAttnc(o, lse) != ATTNRT_OK)
        return fail(attnrt_last_error());
      times.push_back(secondsSince(start));
    }
    res.attncMedian = median(times);
    res.attncMin = *std::min_element(times.begin(), times.end());
    times.clear();
    // The memory run above was the naive's warm-up.
    for (int r = 0; r < runsFlag; ++r) {
      auto start = std::chrono::steady_clock::now();
      naiveResult = naive::forward(s.mask, shape, type, static_cast<float>(s.scale), q.data(),
                                   k.data(), v.data(), tokens, threads);
      times.push_back(secondsSince(start));
    }
    res.naiveMedian = median(times);
    res.naiveMin = *std::min_element(times.begin(), times.end());
  }

  // --check.
  if (checkFlag) {
    res.checked = true;
    if (!naiveResult)
      naiveResult = naive::forward(s.mask, shape, type, static_cast<float>(s.scale), q.data(),
                                   k.data(), v.data(), tokens, threads,
                                   /*materializeAll=*/false);
    reference::Output ref =
        naive::parallelReference(s.mask, shape, s.scale, halfToDoubles(q, type),
                                 halfToDoubles(k, type), halfToDoubles(v, type), tokens, threads);
    const std::vector<double> lseD(lse.begin(), lse.end());
    const std::vector<double> naiveLseD(naiveResult->lse.begin(), naiveResult->lse.end());
    res.errO = reference::relativeL2(halfToDoubles(o, type), ref.o);
    res.errLse = reference::relativeL2(lseD, ref.lse);
    res.naiveErrO = reference::relativeL2(halfToDoubles(naiveResult->o, type), ref.o);
    res.naiveErrLse = reference::relativeL2(naiveLseD, ref.lse);
    // Exact cases (e.g. one key per row) leave the naive without error:
    // allow attnc float32 noise there.
    constexpr double kFloor = 1e-6;
    res.okO = res.errO <= 2 * res.naiveErrO + kFloor;
    res.okLse = res.errLse <= 2 * res.naiveErrLse + kFloor;
    res.rows = static_cast<int64_t>(lseSize);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t i = 0; i < Nq; ++i) {
          const size_t at = static_cast<size_t>((b * Hq + h) * Nq + i);
          if (!std::isinf(ref.lse[at]))
            continue;
          ++res.maskedRows;
          bool exact = std::isinf(lse[at]) && lse[at] < 0;
          const uint16_t *row = o.data() + ((b * Nq + i) * Hq + h) * D;
          for (int64_t c = 0; c < D; ++c)
            exact &= npy::halfToFloat(row[c], type) == 0.0f;
          res.maskedWrong += !exact;
        }
    res.passed = res.okO && res.okLse && res.maskedWrong == 0;
  }

  // Outputs, all computed: write them, all or nothing (each file atomically;
  // on a failure the files and directories this run created are removed).
  struct OutputFile {
    std::string dir, name;
    npy::Array array;
  };
  std::vector<OutputFile> outputs;
  if (!writeInputsFlag.empty()) {
    outputs.push_back(
        {writeInputsFlag, "q.npy", npy::fromFloats({B, Nq, Hq, D}, halfToFloats(q, type))});
    outputs.push_back(
        {writeInputsFlag, "k.npy", npy::fromFloats({B, Nk, Hkv, D}, halfToFloats(k, type))});
    outputs.push_back(
        {writeInputsFlag, "v.npy", npy::fromFloats({B, Nk, Hkv, D}, halfToFloats(v, type))});
  }
  if (!saveFlag.empty()) {
    outputs.push_back({saveFlag, "o.npy", npy::fromFloats({B, Nq, Hq, D}, halfToFloats(o, type))});
    outputs.push_back({saveFlag, "lse.npy", npy::fromFloats({B, Hq, Nq}, lse)});
  }
  std::vector<std::string> createdDirs, writtenFiles;
  auto undo = [&](const std::string &message) {
    for (auto it = writtenFiles.rbegin(); it != writtenFiles.rend(); ++it)
      llvm::sys::fs::remove(*it);
    for (auto it = createdDirs.rbegin(); it != createdDirs.rend(); ++it)
      llvm::sys::fs::remove(*it);
    return fail(message);
  };
  for (const OutputFile &out : outputs) {
    // The missing ancestors of the directory, outermost first.
    std::vector<std::string> missing;
    for (llvm::StringRef d = out.dir; !d.empty() && !llvm::sys::fs::exists(d);
         d = llvm::sys::path::parent_path(d))
      missing.insert(missing.begin(), d.str());
    for (const std::string &d : missing) {
      if (std::error_code ec = llvm::sys::fs::create_directory(d))
        return undo(out.dir + ": cannot create directory: " + ec.message());
      createdDirs.push_back(d);
    }
  }
  for (const OutputFile &out : outputs) {
    llvm::SmallString<256> path(out.dir);
    llvm::sys::path::append(path, out.name);
    std::string error;
    if (!npy::writeFile(path.str().str(), out.array, error))
      return undo(error);
    writtenFiles.push_back(path.str().str());
  }
  res.saved = writtenFiles;

  // Report.
  const double usefulFlops =
      4.0 * static_cast<double>(B * Hq * D) * static_cast<double>(res.allowedPairs);
  if (jsonFlag) {
    llvm::json::OStream j(llvm::outs(), 2);
    j.object([&] {
      j.attribute("spec", s.name);
      j.attribute("target", targetFlag);
      j.attribute("dtype", dtypeName);
      j.attribute("head_dim", D);
      j.attributeObject("heads", [&] {
        j.attribute("query", Hq);
        j.attribute("kv", Hkv);
      });
      j.attribute("batch", B);
      j.attributeObject("seq_len", [&] {
        j.attribute("q", Nq);
        j.attribute("kv", Nk);
      });
      j.attribute("scale", s.scale);
      j.attribute("mask", mask::toString(s.mask));
      j.attributeObject("inputs", [&] {
        if (res.inputs == "random") {
          j.attribute("source", "random");
          j.attribute("seed", static_cast<int64_t>(seedFlag));
        } else {
          j.attribute("source", "npy");
          j.attribute("dir", res.inputs);
        }
      });
      if (res.hasRuntimeTokens)
        j.attributeArray("global_tokens", [&] {
          for (int64_t t : res.tokens)
            j.value(t);
        });
      j.attributeObject("kernel", [&] {
        j.attributeObject("tile", [&] {
          j.attribute("block_m", res.blockM);
          j.attribute("block_n", res.blockN);
        });
        j.attribute("schedule", res.schedule);
        j.attribute("from_cache", res.fromCache);
        j.attribute("build_seconds", res.buildSeconds);
        j.attribute("run_seconds", res.runSeconds);
        j.attribute("threads", threads);
      });
      if (res.checked)
        j.attributeObject("check", [&] {
          j.attribute("passed", res.passed);
          j.attribute("limit", 2.0);
          j.attributeObject("o", [&] {
            j.attribute("attnc", number(res.errO));
            j.attribute("naive", number(res.naiveErrO));
            j.attribute("ok", res.okO);
          });
          j.attributeObject("lse", [&] {
            j.attribute("attnc", number(res.errLse));
            j.attribute("naive", number(res.naiveErrLse));
            j.attribute("ok", res.okLse);
          });
          j.attribute("rows", res.rows);
          j.attribute("fully_masked_rows", res.maskedRows);
          j.attribute("fully_masked_rows_wrong", res.maskedWrong);
        });
      if (res.benched)
        j.attributeObject("bench", [&] {
          j.attribute("runs", res.runs);
          j.attribute("allowed_pairs", res.allowedPairs);
          j.attributeObject("attnc", [&] {
            j.attribute("median_ms", res.attncMedian * 1e3);
            j.attribute("min_ms", res.attncMin * 1e3);
            j.attribute("gflops", number(usefulFlops / res.attncMedian * 1e-9));
            j.attribute("peak_bytes",
                        res.attncPeak >= 0 ? llvm::json::Value(res.attncPeak) : nullptr);
            j.attribute("output_bytes", res.attncOutputBytes);
          });
          j.attributeObject("naive", [&] {
            j.attribute("median_ms", res.naiveMedian * 1e3);
            j.attribute("min_ms", res.naiveMin * 1e3);
            j.attribute("gflops", number(usefulFlops / res.naiveMedian * 1e-9));
            j.attribute("peak_bytes",
                        res.naivePeak >= 0 ? llvm::json::Value(res.naivePeak) : nullptr);
            j.attribute("materialized_bytes", res.naiveMaterialized);
          });
          j.attribute("speedup", number(res.naiveMedian / res.attncMedian));
        });
      if (!res.saved.empty())
        j.attributeArray("saved", [&] {
          for (const std::string &path : res.saved)
            j.value(path);
        });
    });
    llvm::outs() << "\n";
  } else {
    llvm::raw_ostream &os = llvm::outs();
    os << s.name << ": " << dtypeName << ", head_dim " << D << ", heads " << Hq << " query / "
       << Hkv << " kv, batch " << B << ", q " << Nq << " x kv " << Nk << "\n";
    os << "  mask: " << mask::toString(s.mask) << "\n";
    if (res.inputs == "random")
      os << "  inputs: random (standard normal, seed " << seedFlag << ")\n";
    else
      for (const std::string &note : res.inputNotes)
        os << "  inputs: " << res.inputs << "/" << note << "\n";
    if (res.hasRuntimeTokens) {
      os << "  global tokens (launch time):";
      if (res.tokens.empty())
        os << " none (--global-tokens)";
      for (int64_t t : res.tokens)
        os << " " << t;
      os << "\n";
    }
    os << "  kernel: " << targetFlag << ", tile " << res.blockM << "x" << res.blockN << ", "
       << (res.schedule.empty() ? "?" : res.schedule) << " schedule; "
       << (res.fromCache ? "from the disk cache" : "compiled") << " in "
       << llvm::format("%.2f", res.buildSeconds) << " s\n";
    os << "  run: " << llvm::format("%.3f", res.runSeconds * 1e3) << " ms (" << threads
       << (threads == 1 ? " thread)\n" : " threads)\n");
    if (res.checked) {
      os << "check: relative L2 error against the float64 reference (attnc <= 2x naive "
         << dtypeName << ")\n";
      auto line = [&](const char *what, double a, double n, bool ok) {
        os << "  " << what << "  attnc " << sci(a) << "  naive " << sci(n) << "  "
           << (ok ? "ok" : "FAIL") << "\n";
      };
      line("O  ", res.errO, res.naiveErrO, res.okO);
      line("LSE", res.errLse, res.naiveErrLse, res.okLse);
      os << "  fully masked rows: " << res.maskedRows << " of " << res.rows;
      if (res.maskedRows)
        os << (res.maskedWrong
                   ? ", " + std::to_string(res.maskedWrong) + " not O = 0, LSE = -inf: FAIL"
                   : ", all O = 0, LSE = -inf: ok");
      os << "\n";
      os << "check: " << (res.passed ? "PASS" : "FAIL") << "\n";
    }
    if (res.benched) {
      os << "bench: median of " << res.runs << " runs after a warm-up, " << threads
         << (threads == 1 ? " thread, " : " threads, ") << res.allowedPairs
         << " allowed pairs per head\n";
      auto peak = [&](int64_t bytes) {
        return bytes >= 0 ? std::to_string(bytes) + " bytes (" + humanBytes(bytes) + ")"
                          : std::string("n/a");
      };
      os << "  attnc  " << llvm::format("%10.3f", res.attncMedian * 1e3) << " ms  "
         << llvm::format("%8.2f", usefulFlops / res.attncMedian * 1e-9) << " GFLOP/s  peak memory "
         << peak(res.attncPeak) << "\n";
      os << "  naive  " << llvm::format("%10.3f", res.naiveMedian * 1e3) << " ms  "
         << llvm::format("%8.2f", usefulFlops / res.naiveMedian * 1e-9) << " GFLOP/s  peak memory "
         << peak(res.naivePeak) << ", S, P and mask materialized: " << res.naiveMaterialized
         << " bytes (" << humanBytes(static_cast<double>(res.naiveMaterialized)) << ")\n";
      os << "  attnc is " << llvm::format("%.2f", res.naiveMedian / res.attncMedian)
         << "x as fast as the naive\n";
    }
    for (const std::string &path : res.saved)
      os << "wrote " << path << "\n";
  }
  return res.passed ? 0 : 2;
}
