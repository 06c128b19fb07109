//===- Package.cpp - Kernel packages, loaded and validated ----------------===//
//
// Fields are checked in the order that gives the most useful first error: what
// the file is (format, versions, target) before what it says (spec, source,
// summary fields). Unknown fields are ignored. Manifests are read as ordered
// JSON, so that the spec's compact dump, spec_hash's input, keeps the key
// order attnc wrote.
//
//===----------------------------------------------------------------------===//

#include "Package.h"

#include "Error.h"
#include "Files.h"
#include "LaunchGrid.h"
#include "TargetArch.h"

#include "attnc/Mask/Tiles.h"
#include "attnc/Spec/Spec.h"
#include "attnc/runtime/hash.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <limits>

namespace attnc::runtime {

namespace {

using Json = nlohmann::ordered_json;

constexpr const char *kFormat = "attnc-kernel-package";
constexpr int64_t kFormatVersion = 1;
constexpr size_t kArgumentCount = 5;
/// The grid of a CUDA kernel: dimension x, y, z, as launch.grid spells it.
const char *const kCudaGrid[] = {"query_tiles", "heads.query", "batch"};
constexpr const char *kQueryTiles = "ceil(seq_len.q / tile.block_m)";
/// The most threads a CUDA thread block may have.
constexpr int64_t kMaxThreadsPerBlock = 1024;
/// tile.mma's values.
constexpr const char *kMmaSync = "sync";
constexpr const char *kMmaWgmma = "wgmma";
/// The launch.arch a wgmma forward needs: Hopper's arch-specific target.
constexpr const char *kWgmmaArch = "sm_90a";

/// A value for messages: its JSON type and text, shortened.
std::string describe(const Json &value) {
  if (value.is_null())
    return "null";
  std::string text = value.dump();
  if (text.size() > 60)
    text = text.substr(0, 57) + "...";
  return std::string(value.type_name()) + " " + text;
}

/// A length that may be given at launch, for messages.
std::string lengthText(const std::optional<int64_t> &length) {
  return length ? std::to_string(*length) : "null (given at launch)";
}

/// `s` as a JSON string literal, for messages.
std::string jsonString(const std::string &s) { return Json(s).dump(); }

/// Whether a mask reads the launch-time global token list.
bool readsRuntimeTokens(const mask::Mask &m) {
  return m.kind == mask::Kind::GlobalRuntime ||
         std::any_of(m.children.begin(), m.children.end(), readsRuntimeTokens);
}

/// Typed access to the manifest's fields; every failure names the file and
/// the field's path ("heads.query", "arguments[1].shape").
class ManifestReader {
public:
  explicit ManifestReader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void error(const std::string &message) const {
    fail(ATTNRT_ERROR_PACKAGE, file_ + ": " + message);
  }

  /// The member `key` of `object` (at `objectPath`, "" for the top level).
  const Json &member(const Json &object, const std::string &objectPath,
                     const std::string &key) const {
    auto it = object.find(key);
    if (it == object.end())
      error("missing required field " + join(objectPath, key));
    return *it;
  }

  const Json &object(const Json &parent, const std::string &parentPath,
                     const std::string &key) const {
    const Json &value = member(parent, parentPath, key);
    if (!value.is_object())
      error(join(parentPath, key) + ": expected an object, got " + describe(value));
    return value;
  }

  std::string string(const Json &parent, const std::string &parentPath,
                     const std::string &key) const {
    const Json &value = member(parent, parentPath, key);
    if (!value.is_string())
      error(join(parentPath, key) + ": expected a string, got " + describe(value));
    return value.get<std::string>();
  }

  int64_t integer(const Json &parent, const std::string &parentPath, const std::string &key) const {
    return asInteger(member(parent, parentPath, key), join(parentPath, key));
  }

  /// An integer or null (a length given at launch).
  std::optional<int64_t> optionalInteger(const Json &parent, const std::string &parentPath,
                                         const std::string &key) const {
    const Json &value = member(parent, parentPath, key);
    if (value.is_null())
      return std::nullopt;
    return asInteger(value, join(parentPath, key) + " (an integer or null)");
  }

  /// An integer field that must be at least `min`.
  int64_t integerAtLeast(const Json &parent, const std::string &parentPath, const std::string &key,
                         int64_t min) const {
    int64_t value = integer(parent, parentPath, key);
    if (value < min)
      error(join(parentPath, key) + ": must be >= " + std::to_string(min) + ", got " +
            std::to_string(value));
    return value;
  }

  static std::string join(const std::string &parentPath, const std::string &key) {
    return parentPath.empty() ? key : parentPath + "." + key;
  }

private:
  int64_t asInteger(const Json &value, const std::string &path) const {
    if (!value.is_number_integer() ||
        (value.is_number_unsigned() &&
         value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())))
      error(path + ": expected an integer, got " + describe(value));
    return value.get<int64_t>();
  }

  std::string file_;
};

/// Checks the argument ABI: q, k, v, o, lse with their dtypes and shapes.
/// Lengths are symbols ("seq_len.q"); a length the spec fixes may also be
/// written as its value.
void checkArguments(const ManifestReader &reader, const Json &arguments, const std::string &dtype,
                    const PackageData &p) {
  if (!arguments.is_array())
    reader.error("arguments: expected an array, got " + describe(arguments));
  if (arguments.size() != kArgumentCount)
    reader.error("arguments: expected " + std::to_string(kArgumentCount) +
                 " entries (q, k, v, o, lse), got " + std::to_string(arguments.size()));
  // The shapes with symbolic lengths, and with the fixed ones as values.
  auto shapes = [&](const Json &q, const Json &kv) {
    return std::vector<Json>{Json::array({"batch", q, p.queryHeads, p.headDim}),
                             Json::array({"batch", kv, p.kvHeads, p.headDim}),
                             Json::array({"batch", kv, p.kvHeads, p.headDim}),
                             Json::array({"batch", q, p.queryHeads, p.headDim}),
                             Json::array({"batch", p.queryHeads, q})};
  };
  const std::vector<Json> symbolic = shapes("seq_len.q", "seq_len.kv");
  const std::vector<Json> fixed = shapes(p.seqLenQ ? Json(*p.seqLenQ) : Json("seq_len.q"),
                                         p.seqLenKV ? Json(*p.seqLenKV) : Json("seq_len.kv"));
  const char *names[kArgumentCount] = {"q", "k", "v", "o", "lse"};
  for (size_t i = 0; i < kArgumentCount; ++i) {
    const std::string path = "arguments[" + std::to_string(i) + "]";
    const Json &argument = arguments[i];
    if (!argument.is_object())
      reader.error(path + ": expected an object, got " + describe(argument));
    std::string name = reader.string(argument, path, "name");
    if (name != names[i])
      reader.error(path + ".name: expected " + jsonString(names[i]) + ", got " + jsonString(name));
    const std::string wantDtype = name == "lse" ? "fp32" : dtype;
    std::string argumentDtype = reader.string(argument, path, "dtype");
    if (argumentDtype != wantDtype)
      reader.error(path + ".dtype: expected " + jsonString(wantDtype) + " for " + name + ", got " +
                   jsonString(argumentDtype));
    const Json &shape = reader.member(argument, path, "shape");
    if (shape != symbolic[i] && shape != fixed[i])
      reader.error(path + ".shape: expected " + symbolic[i].dump() +
                   (fixed[i] != symbolic[i] ? " or " + fixed[i].dump() : "") + " for " + name +
                   ", got " + describe(shape));
  }
}

/// Checks a CUDA package's launch configuration, the one the runtime uses:
/// grid (x, y, z) = (query tiles, query heads, batch), the block size, the
/// dynamic shared memory per block and the architecture the kernels need
/// (launch.arch, TargetArch.h; a tile.mma "wgmma" forward needs "sm_90a").
/// (CPU packages' launch is informative.)
void checkCudaLaunch(const ManifestReader &reader, const Json &launch, PackageData &p) {
  const Json grid = Json::array({kCudaGrid[0], kCudaGrid[1], kCudaGrid[2]});
  const Json &actualGrid = reader.member(launch, "launch", "grid");
  if (actualGrid != grid)
    reader.error("launch.grid: expected " + grid.dump() + " (grid x, y, z of a CUDA kernel), got " +
                 describe(actualGrid));
  std::string queryTiles = reader.string(launch, "launch", "query_tiles");
  if (queryTiles != kQueryTiles)
    reader.error("launch.query_tiles: expected " + jsonString(kQueryTiles) + ", got " +
                 jsonString(queryTiles));
  p.threadsPerBlock = reader.integerAtLeast(launch, "launch", "threads_per_block", 1);
  if (p.threadsPerBlock > kMaxThreadsPerBlock)
    reader.error("launch.threads_per_block: at most " + std::to_string(kMaxThreadsPerBlock) +
                 " threads per CUDA block, got " + std::to_string(p.threadsPerBlock));
  p.sharedBytes = reader.integerAtLeast(launch, "launch", "shared_bytes", 0);
  if (p.sharedBytes > std::numeric_limits<int32_t>::max())
    reader.error("launch.shared_bytes: " + std::to_string(p.sharedBytes) +
                 " bytes of shared memory per block is more than any GPU has");
  if (launch.contains("arch")) {
    p.arch = reader.string(launch, "launch", "arch");
    if (!isLaunchArch(p.arch))
      reader.error("launch.arch: expected a GPU architecture \"sm_XY\" with an optional 'a' "
                   "(\"sm_90a\"), got " +
                   jsonString(p.arch));
  }
  if (p.mma == Mma::Wgmma && p.arch != kWgmmaArch)
    reader.error(std::string("tile.mma: \"wgmma\" (Hopper warpgroup MMA) needs launch.arch \"") +
                 kWgmmaArch + "\", got " +
                 (p.arch.empty() ? std::string("none (a portable kernel)") : jsonString(p.arch)));
}

/// Reads tile.mma (absent: "sync", as before it existed).
Mma readMma(const ManifestReader &reader, const Json &tile) {
  if (!tile.contains("mma"))
    return Mma::Sync;
  std::string mma = reader.string(tile, "tile", "mma");
  if (mma == kMmaSync)
    return Mma::Sync;
  if (mma == kMmaWgmma)
    return Mma::Wgmma;
  reader.error(std::string("tile.mma: expected \"") + kMmaSync + "\" or \"" + kMmaWgmma +
               "\", got " + jsonString(mma));
}

/// Reads one backward kernel of a CUDA package: backward.kernels.ROLE. A
/// query-grid kernel (grid x "query_tiles") may name its own block_m.
PackageData::CudaLaunch cudaBackwardKernel(const ManifestReader &reader, const Json &kernels,
                                           const std::string &role, const char *symbol,
                                           const Json &grid, const PackageData &p) {
  const std::string path = "backward.kernels." + role;
  const Json &k = reader.object(kernels, "backward.kernels", role);
  PackageData::CudaLaunch launch;
  launch.entry = reader.string(k, path, "entry");
  if (launch.entry != symbol)
    reader.error(path + ".entry: expected " + jsonString(symbol) + ", got " +
                 jsonString(launch.entry));
  const Json &actualGrid = reader.member(k, path, "grid");
  if (actualGrid != grid)
    reader.error(path + ".grid: expected " + grid.dump() + ", got " + describe(actualGrid));
  launch.threadsPerBlock = reader.integerAtLeast(k, path, "threads_per_block", 1);
  if (launch.threadsPerBlock > kMaxThreadsPerBlock)
    reader.error(path + ".threads_per_block: at most " + std::to_string(kMaxThreadsPerBlock) +
                 " threads per CUDA block, got " + std::to_string(launch.threadsPerBlock));
  launch.sharedBytes = reader.integerAtLeast(k, path, "shared_bytes", 0);
  if (launch.sharedBytes > std::numeric_limits<int32_t>::max())
    reader.error(path + ".shared_bytes: " + std::to_string(launch.sharedBytes) +
                 " bytes of shared memory per block is more than any GPU has");
  if (grid[0] == "query_tiles" && k.contains("block_m")) {
    launch.blockM = reader.integerAtLeast(k, path, "block_m", 1);
  }
  return launch;
}

/// Reads the manifest's "backward" section (absent: no backward kernels).
void checkBackward(const ManifestReader &reader, const Json &root, bool cuda, PackageData &p) {
  if (!root.contains("backward"))
    return;
  const Json &backward = reader.object(root, "", "backward");
  p.hasBackward = true;
  std::string dq = reader.string(backward, "backward", "dq");
  if (dq != "separate" && dq != "atomic")
    reader.error("backward.dq: expected \"separate\" or \"atomic\", got " + jsonString(dq));
  p.deterministic = dq == "separate";
  if (!cuda) {
    if (!p.deterministic)
      reader.error("backward.dq: CPU kernels compute dQ in the separate pass: expected "
                   "\"separate\", got \"atomic\"");
    p.backwardEntry = reader.string(backward, "backward", "entry");
    if (p.backwardEntry != ATTNC_BACKWARD_SYMBOL)
      reader.error("backward.entry: expected \"" ATTNC_BACKWARD_SYMBOL "\", got " +
                   jsonString(p.backwardEntry));
    return;
  }
  const Json &kernels = reader.object(backward, "backward", "kernels");
  const Json queryGrid = Json::array({"query_tiles", "heads.query", "batch"});
  const Json kvGrid = Json::array({"kv_tiles", "heads.kv", "batch"});
  p.preprocess = cudaBackwardKernel(reader, kernels, "preprocess",
                                    ATTNC_CUDA_BACKWARD_PREPROCESS_SYMBOL, queryGrid, p);
  p.dkdv =
      cudaBackwardKernel(reader, kernels, "dkdv", ATTNC_CUDA_BACKWARD_DKDV_SYMBOL, kvGrid, p);
  const Json &dkdv = reader.object(kernels, "backward.kernels", "dkdv");
  p.dkdv.blockN = reader.integerAtLeast(dkdv, "backward.kernels.dkdv", "block_n", 1);
  p.dkdv.groupSplits = reader.integerAtLeast(dkdv, "backward.kernels.dkdv", "group_splits", 1);
  if ((p.queryHeads / p.kvHeads) % p.dkdv.groupSplits != 0)
    reader.error("backward.kernels.dkdv.group_splits: " + std::to_string(p.dkdv.groupSplits) +
                 " must divide the query heads per kv head (" +
                 std::to_string(p.queryHeads / p.kvHeads) + ")");
  if (p.dkdv.groupSplits > 1)
    p.dkdvConvert = cudaBackwardKernel(reader, kernels, "dkdv_convert",
                                       ATTNC_CUDA_BACKWARD_DKDV_CONVERT_SYMBOL, kvGrid, p);
  if (p.deterministic)
    p.dq = cudaBackwardKernel(reader, kernels, "dq", ATTNC_CUDA_BACKWARD_DQ_SYMBOL, queryGrid, p);
  else
    p.dqConvert = cudaBackwardKernel(reader, kernels, "dq_convert",
                                     ATTNC_CUDA_BACKWARD_DQ_CONVERT_SYMBOL, queryGrid, p);
  // With a table schedule the backward's table has its own tile (preprocess
  // block_m x dkdv block_n, LaunchGrid.h's backwardTableTile); the
  // deterministic dQ kernel walks its rows on the forward's tile, so then
  // the two tiles must agree.
  if (p.schedule == ScheduleKind::Table && p.deterministic) {
    const char *why = ") with a table schedule and dq \"separate\": the dQ kernel walks the "
                      "forward's table";
    auto agree = [&](const std::string &field, int64_t value, const char *tileField,
                     int64_t tileValue) {
      if (value != tileValue)
        reader.error("backward.kernels." + field + ": " + std::to_string(value) +
                     " must equal " + tileField + " (" + std::to_string(tileValue) + why);
    };
    agree("dkdv.block_n", p.dkdv.blockN, "tile.block_n", p.blockN);
    agree("preprocess.block_m", queryTileRows(p, p.preprocess), "tile.block_m", p.blockM);
    agree("dq.block_m", queryTileRows(p, p.dq), "tile.block_m", p.blockM);
  }
}

/// Validates a manifest's text; `readSource(file)` supplies the source it names.
std::shared_ptr<const PackageData>
parseManifest(const std::string &manifestPath, const std::string &text,
              const std::function<std::string(const std::string &)> &readSource) {
  ManifestReader reader(manifestPath);
  Json root;
  try {
    root = Json::parse(text);
  } catch (const Json::parse_error &e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix.
    std::string what = e.what();
    size_t bracket = what.find("] ");
    reader.error("malformed JSON: " +
                 (bracket == std::string::npos ? what : what.substr(bracket + 2)));
  }
  if (!root.is_object())
    reader.error("expected a JSON object at the top level, got " + describe(root));

  // What the file is.
  std::string format = reader.string(root, "", "format");
  if (format != kFormat)
    reader.error("format: expected " + jsonString(kFormat) + ", got " + jsonString(format) +
                 ": not an attnc kernel package");
  int64_t formatVersion = reader.integer(root, "", "format_version");
  if (formatVersion != kFormatVersion)
    reader.error("format_version: expected " + std::to_string(kFormatVersion) + ", got " +
                 std::to_string(formatVersion) + ": this runtime reads kernel package format " +
                 std::to_string(kFormatVersion) + "; recompile the package");
  std::string attncVersion = reader.string(root, "", "attnc_version");
  if (attncVersion != ATTNC_VERSION)
    reader.error("attnc_version " + jsonString(attncVersion) + " differs from this runtime's " +
                 jsonString(ATTNC_VERSION) + ": recompile the package");
  int64_t abiVersion = reader.integer(root, "", "abi_version");
  if (abiVersion != ATTNC_KERNEL_ABI_VERSION)
    reader.error("abi_version " + std::to_string(abiVersion) +
                 " differs from this runtime's kernel ABI version " +
                 std::to_string(ATTNC_KERNEL_ABI_VERSION) + ": recompile the package");
  std::string target = reader.string(root, "", "target");
  if (target != "cpu" && target != "cuda")
    reader.error("target " + jsonString(target) + ": expected \"cpu\" or \"cuda\"");

  auto package = std::make_shared<PackageData>();
  package->manifestPath = manifestPath;
  package->target = target == "cuda" ? Target::Cuda : Target::Cpu;
  package->name = reader.string(root, "", "name");
  if (package->name.empty())
    reader.error("name: must not be empty");

  // The spec and its hash.
  package->specJson = reader.object(root, "", "spec").dump();
  std::string specHash = reader.string(root, "", "spec_hash");
  std::string actualSpecHash = hashString(package->specJson);
  if (specHash != actualSpecHash)
    reader.error("spec_hash mismatch: the spec hashes to " + actualSpecHash + ", spec_hash says " +
                 specHash + ": the manifest was modified after attnc wrote it");

  // The source and its hash.
  const Json &source = reader.object(root, "", "source");
  package->sourceFile = reader.string(source, "source", "file");
  const std::string &file = package->sourceFile;
  if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos)
    reader.error("source.file: expected a file name inside the package directory, got " +
                 jsonString(file));
  std::string sourceHash = reader.string(source, "source", "hash");
  package->source = readSource(file);
  if (hashString(package->source) != sourceHash)
    reader.error("source hash mismatch: " + file +
                 " was modified after attnc wrote it (it hashes to " + hashString(package->source) +
                 ", source.hash says " + sourceHash + ")");

  package->entry = reader.string(root, "", "entry");
  const bool cuda = package->target == Target::Cuda;
  const char *entry = cuda ? ATTNC_CUDA_FORWARD_SYMBOL : ATTNC_FORWARD_SYMBOL;
  if (package->entry != entry)
    reader.error("entry: expected " + jsonString(entry) + " (the " + (cuda ? "CUDA" : "CPU") +
                 " kernel ABI's entry point), got " + jsonString(package->entry));

  // The spec itself, through the spec loader.
  spec::LoadResult loaded = spec::loadSpecFromString(package->specJson, manifestPath + "#spec");
  if (!loaded.ok()) {
    std::string message = "spec: the embedded spec is invalid:";
    for (const spec::Diagnostic &d : loaded.diagnostics)
      if (d.severity == spec::Severity::Error)
        message += "\n  " + d.format();
    reader.error(message);
  }
  const spec::Spec &spec = *loaded.spec;
  package->mask = mask::canonicalize(spec.mask);

  // The summary fields must agree with the spec.
  std::string dtype = reader.string(root, "", "dtype");
  std::string specDtype = spec::dtypeName(spec.dtype);
  if (dtype != specDtype)
    reader.error("dtype " + jsonString(dtype) + " differs from the spec's " +
                 jsonString(specDtype));
  package->dtype = spec.dtype == spec::DType::BF16 ? ATTNC_DTYPE_BF16 : ATTNC_DTYPE_FP16;
  auto expectSpecValue = [&](const std::string &path, int64_t value, int64_t specValue) {
    if (value != specValue)
      reader.error(path + ": " + std::to_string(value) + " differs from the spec's " +
                   std::to_string(specValue));
    return value;
  };
  package->headDim =
      expectSpecValue("head_dim", reader.integer(root, "", "head_dim"), spec.headDim);
  const Json &heads = reader.object(root, "", "heads");
  package->queryHeads =
      expectSpecValue("heads.query", reader.integer(heads, "heads", "query"), spec.queryHeads);
  package->kvHeads =
      expectSpecValue("heads.kv", reader.integer(heads, "heads", "kv"), spec.kvHeads);
  const Json &seqLen = reader.object(root, "", "seq_len");
  package->seqLenQ = reader.optionalInteger(seqLen, "seq_len", "q");
  package->seqLenKV = reader.optionalInteger(seqLen, "seq_len", "kv");
  if (package->seqLenQ != spec.seqLenQ)
    reader.error("seq_len.q: " + lengthText(package->seqLenQ) + " differs from the spec's " +
                 lengthText(spec.seqLenQ));
  if (package->seqLenKV != spec.seqLenKV)
    reader.error("seq_len.kv: " + lengthText(package->seqLenKV) + " differs from the spec's " +
                 lengthText(spec.seqLenKV));

  const Json &tile = reader.object(root, "", "tile");
  package->blockM = reader.integerAtLeast(tile, "tile", "block_m", 1);
  package->blockN = reader.integerAtLeast(tile, "tile", "block_n", 1);
  package->mma = readMma(reader, tile);

  const Json &schedule = reader.object(root, "", "schedule");
  std::string kind = reader.string(schedule, "schedule", "kind");
  if (kind == "band") {
    reader.integer(schedule, "schedule", "lo");
    reader.integer(schedule, "schedule", "hi");
    reader.integerAtLeast(schedule, "schedule", "period", 1);
    if (!mask::bandOf(package->mask))
      reader.error("schedule.kind: \"band\" needs a banded mask (full, causal, windows and their "
                   "intersections), but the spec's mask is " +
                   mask::toString(package->mask) + ": expected \"table\"");
    package->schedule = ScheduleKind::Band;
  } else if (kind == "table") {
    package->schedule = ScheduleKind::Table;
  } else {
    reader.error("schedule.kind: expected \"band\" or \"table\", got " + jsonString(kind));
  }

  package->runtimeGlobalTokens = reader.integerAtLeast(root, "", "runtime_global_tokens", 0);
  if (root.contains("residue_classes")) {
    package->residueClasses = reader.integerAtLeast(root, "", "residue_classes", 1);
    const mask::Mask &m = package->mask;
    if (package->residueClasses > 1 &&
        (m.kind != mask::Kind::Window || m.dilation != package->residueClasses ||
         package->schedule != ScheduleKind::Band))
      reader.error("residue_classes: " + std::to_string(package->residueClasses) +
                   " needs a spec whose mask is one window with that dilation and a band "
                   "schedule, but the mask is " + mask::toString(m));
  }
  if ((package->runtimeGlobalTokens > 0) != readsRuntimeTokens(spec.mask))
    reader.error("runtime_global_tokens: " + std::to_string(package->runtimeGlobalTokens) +
                 (package->runtimeGlobalTokens > 0
                      ? ", but the spec's mask has no runtime global list: expected 0"
                      : ", but the spec's mask has a runtime global list (global.runtime): "
                        "expected its capacity"));

  const Json &launch = reader.object(root, "", "launch");
  if (cuda) {
    checkCudaLaunch(reader, launch, *package);
  } else {
    if (launch.contains("arch"))
      reader.error("launch.arch: a cpu package has no GPU architecture, got " +
                   describe(launch.at("arch")));
    if (package->mma != Mma::Sync)
      reader.error("tile.mma: \"wgmma\" is a Hopper GPU instruction; cpu packages use \"sync\"");
  }
  checkBackward(reader, root, cuda, *package);
  checkArguments(reader, reader.member(root, "", "arguments"), dtype, *package);
  return package;
}

/// Reads a package file; a missing file is a package error, others are I/O errors.
std::string readPackageFile(const std::string &path, const std::string &what) {
  std::string bytes;
  if (int err = readFile(path, bytes))
    fail(err == ENOENT || err == ENOTDIR ? ATTNRT_ERROR_PACKAGE : ATTNRT_ERROR_IO,
         path + ": cannot read " + what + ": " + errorText(err));
  return bytes;
}

} // namespace

std::shared_ptr<const PackageData> loadPackage(const std::string &dir) {
  std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  std::string manifestPath = prefix + "manifest.json";
  std::string text = readPackageFile(
      manifestPath, "the package manifest (is " + (dir.empty() ? std::string("\"\"") : dir) +
                        " a package written by attnc --emit=package?)");
  return parseManifest(manifestPath, text, [&](const std::string &file) {
    return readPackageFile(prefix + file, "the kernel source named by manifest.json's source.file");
  });
}

std::shared_ptr<const PackageData> loadPackageFromMemory(const std::string &manifestJson,
                                                         const std::string &source) {
  return parseManifest("manifest.json", manifestJson, [&](const std::string &) { return source; });
}

const char *targetName(Target target) { return target == Target::Cuda ? "cuda" : "cpu"; }

std::string dtypeName(int32_t dtype) {
  switch (dtype) {
  case ATTNC_DTYPE_BF16:
    return "bf16";
  case ATTNC_DTYPE_FP16:
    return "fp16";
  case ATTNC_DTYPE_FP32:
    return "fp32";
  default:
    return "dtype " + std::to_string(dtype) + " (unknown)";
  }
}

} // namespace attnc::runtime
