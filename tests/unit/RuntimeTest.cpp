//===- RuntimeTest.cpp - libattnrt: packages, cache, validation, tables ---===//
//
// The runtime against hand-written packages: manifests built here with the
// same hash functions attnc uses, and tiny kernels written here (a "marker"
// kernel that writes a recognizable value, and a naive dense kernel that
// reads the schedule table). Covers package validation, the disk cache and
// its faults (truncated and flipped entries, an unwritable directory, two
// processes racing on one key, a missing or failing compiler), every
// argument check of attnrt_forward, and the launch-time schedule tables
// against brute force.
//
//===----------------------------------------------------------------------===//

#include "Schedule.h"

#include "attnc/Mask/Tiles.h"
#include "attnc/Package/Manifest.h"
#include "attnc/Spec/Spec.h"
#include "attnc/runtime/attnrt.h"
#include "attnc/runtime/attnrt.hpp"
#include "attnc/runtime/hash.h"
#include "attnc_cpu.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <regex>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char **environ;

using namespace attnc;
using Json = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

//===----------------------------------------------------------------------===//
// Packages written by hand
//===----------------------------------------------------------------------===//

/// Runtime global tokens (at most 3) around a narrow window: a "table" mask.
const char *kRuntimeGlobalSpec = R"({
  "attnc": 1, "name": "marker", "dtype": "bf16", "head_dim": 8,
  "heads": {"query": 2, "kv": 1},
  "mask": {"union": [{"window": {"left": 1, "right": 1}}, {"global": {"runtime": {"max": 3}}}]}
})";

/// Causal with lengths fixed by the spec: a "band" mask.
const char *kFixedCausalSpec = R"({
  "attnc": 1, "name": "fixed", "dtype": "bf16", "head_dim": 8,
  "heads": {"query": 2, "kv": 1}, "seq_len": {"q": 4, "kv": 6},
  "mask": {"causal": {}}
})";

/// The value marker kernels write to lse[0] (RuntimeTestHelper checks it too).
constexpr float kMarker = 1234.5f;

/// A kernel that writes kMarker to lse[0], the thread count to lse[1], 1 to
/// lse[2] if it was given no schedule table, and returns `status`.
std::string markerSource(int status = 0) {
  return R"(// Marker kernel of the runtime tests.
#include "kernel_abi.h"

extern "C" int attnc_forward(const attnc_forward_args *args) {
  float *lse = (float *)args->lse.data;
  lse[0] = 1234.5f;
  lse[1] = (float)args->num_threads;
  lse[2] = args->schedule.row_offsets == 0 ? 1.0f : 0.0f;
  return )" +
         std::to_string(status) + ";\n}\n";
}

/// A dense kernel: the mask from the schedule table when it has one, else
/// from the band; float32 softmax; O = 0 and LSE = -inf on masked rows.
const char *kNaiveSource = R"(// Naive kernel of the runtime tests.
#include "attnc_cpu.h"
#include "kernel_abi.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t kBlockM = @BLOCK_M@, kBlockN = @BLOCK_N@;
constexpr int64_t kBandLo = @LO@, kBandHi = @HI@, kBandPeriod = @PERIOD@;

/// Whether query row i may attend key k, read from the schedule table.
bool allowedByTable(const attnc_schedule_table &t, int64_t i, int64_t k) {
  const int64_t r = i / kBlockM, c = k / kBlockN;
  for (int64_t e = t.row_offsets[r]; e < t.row_offsets[r + 1]; ++e) {
    if (t.col_tiles[e] != c)
      continue;
    if (t.full[e])
      return true;
    const uint64_t *row = t.bits + t.bit_offsets[e] + (i % kBlockM) * t.words_per_row;
    const int64_t bit = k % kBlockN;
    return (row[bit / 64] >> (bit % 64)) & 1;
  }
  return false;
}

/// Whether position p may attend key k under the band.
bool allowedByBand(int64_t p, int64_t k) {
  const int64_t delta = p - k;
  return kBandLo <= delta && delta <= kBandHi && delta % kBandPeriod == 0;
}

} // namespace

extern "C" int attnc_forward(const attnc_forward_args *a) {
  const bool table = a->schedule.row_offsets != nullptr;
  const int64_t hq = a->q.shape[2], hkv = a->k.shape[2], dim = a->q.shape[3];
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  const auto *q = static_cast<const uint16_t *>(a->q.data);
  const auto *k = static_cast<const uint16_t *>(a->k.data);
  const auto *v = static_cast<const uint16_t *>(a->v.data);
  auto *o = static_cast<uint16_t *>(a->o.data);
  auto *lse = static_cast<float *>(a->lse.data);
  attnc_cpu::parallelFor(a->batch * hq, a->num_threads, [&](int64_t bh) {
    const int64_t b = bh / hq, h = bh % hq, g = h / (hq / hkv);
    std::vector<float> s(a->nk), acc(dim);
    for (int64_t i = 0; i < a->nq; ++i) {
      const int64_t p = i + a->nk - a->nq;
      const int64_t qRow = b * a->q.strides[0] + i * a->q.strides[1] + h * a->q.strides[2];
      float m = -INFINITY;
      for (int64_t key = 0; key < a->nk; ++key) {
        s[key] = -INFINITY;
        if (!(table ? allowedByTable(a->schedule, i, key) : allowedByBand(p, key)))
          continue;
        const int64_t kRow = b * a->k.strides[0] + key * a->k.strides[1] + g * a->k.strides[2];
        float dot = 0;
        for (int64_t c = 0; c < dim; ++c)
          dot += attnc_cpu::load<true>(q, qRow + c) * attnc_cpu::load<true>(k, kRow + c);
        s[key] = dot * scale;
        m = std::max(m, s[key]);
      }
      float l = 0;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t key = 0; key < a->nk; ++key) {
        if (s[key] == -INFINITY)
          continue;
        const float w = std::exp(s[key] - m);
        l += w;
        const int64_t vRow = b * a->v.strides[0] + key * a->v.strides[1] + g * a->v.strides[2];
        for (int64_t c = 0; c < dim; ++c)
          acc[c] += w * attnc_cpu::load<true>(v, vRow + c);
      }
      const int64_t oRow = b * a->o.strides[0] + i * a->o.strides[1] + h * a->o.strides[2];
      for (int64_t c = 0; c < dim; ++c)
        attnc_cpu::store<true>(o, oRow + c, l > 0 ? acc[c] / l : 0.0f);
      lse[b * a->lse.strides[0] + h * a->lse.strides[1] + i * a->lse.strides[2]] =
          l > 0 ? m + std::log(l) : -INFINITY;
    }
  });
  return 0;
}
)";

/// Replaces every "@KEY@" in `text`.
std::string substitute(std::string text,
                       const std::vector<std::pair<std::string, int64_t>> &values) {
  for (const auto &[key, value] : values) {
    std::string pattern = "@" + key + "@";
    for (size_t at = text.find(pattern); at != std::string::npos; at = text.find(pattern))
      text.replace(at, pattern.size(), std::to_string(value));
  }
  return text;
}

/// The capacity of a mask's runtime global list, as the emitter records it.
int64_t runtimeCapacity(const mask::Mask &m) {
  int64_t capacity = m.kind == mask::Kind::GlobalRuntime ? m.runtimeMax : 0;
  for (const mask::Mask &child : m.children)
    capacity = std::max(capacity, runtimeCapacity(child));
  return capacity;
}

/// The manifest attnc --emit=package writes for a spec and a source
/// (runtime/README.md, format version 1).
Json makeManifest(const std::string &specText, const std::string &source, int64_t blockM = 16,
                  int64_t blockN = 16) {
  spec::LoadResult loaded = spec::loadSpecFromString(specText, "test-spec.json");
  EXPECT_TRUE(loaded.ok()) << (loaded.diagnostics.empty() ? "" : loaded.diagnostics[0].format());
  const spec::Spec &s = *loaded.spec;
  mask::Mask canonical = mask::canonicalize(s.mask);
  const std::string dtype = spec::dtypeName(s.dtype);
  Json m;
  m["format"] = "attnc-kernel-package";
  m["format_version"] = 1;
  m["attnc_version"] = ATTNC_VERSION;
  m["abi_version"] = ATTNC_KERNEL_ABI_VERSION;
  m["target"] = "cpu";
  m["name"] = s.name;
  m["spec"] = Json::parse(spec::toJson(s));
  m["spec_hash"] = hashString(m["spec"].dump());
  m["source"] = {{"file", "kernel.cpp"}, {"hash", hashString(source)}};
  m["entry"] = "attnc_forward";
  m["dtype"] = dtype;
  m["head_dim"] = s.headDim;
  m["heads"] = {{"query", s.queryHeads}, {"kv", s.kvHeads}};
  m["seq_len"] = {{"q", s.seqLenQ ? Json(*s.seqLenQ) : Json()},
                  {"kv", s.seqLenKV ? Json(*s.seqLenKV) : Json()}};
  m["tile"] = {{"block_m", blockM}, {"block_n", blockN}};
  if (std::optional<mask::Band> band = mask::bandOf(canonical))
    m["schedule"] = {
        {"kind", "band"}, {"lo", band->lo}, {"hi", band->hi}, {"period", band->period}};
  else
    m["schedule"] = {{"kind", "table"}};
  m["runtime_global_tokens"] = runtimeCapacity(s.mask);
  m["launch"] = {{"grid", {"batch", "heads.query", "query_tiles"}},
                 {"query_tiles", "ceil(seq_len.q / tile.block_m)"}};
  m["arguments"] = Json::array(
      {{{"name", "q"},
        {"dtype", dtype},
        {"shape", {"batch", "seq_len.q", s.queryHeads, s.headDim}}},
       {{"name", "k"}, {"dtype", dtype}, {"shape", {"batch", "seq_len.kv", s.kvHeads, s.headDim}}},
       {{"name", "v"}, {"dtype", dtype}, {"shape", {"batch", "seq_len.kv", s.kvHeads, s.headDim}}},
       {{"name", "o"},
        {"dtype", dtype},
        {"shape", {"batch", "seq_len.q", s.queryHeads, s.headDim}}},
       {{"name", "lse"}, {"dtype", "fp32"}, {"shape", {"batch", s.queryHeads, "seq_len.q"}}}});
  return m;
}

/// The naive kernel's source for a manifest (its tile sizes and band).
std::string naiveSource(const std::string &specText, int64_t blockM, int64_t blockN) {
  Json m = makeManifest(specText, "", blockM, blockN);
  const Json &schedule = m["schedule"];
  bool band = schedule["kind"] == "band";
  return substitute(kNaiveSource, {{"BLOCK_M", blockM},
                                   {"BLOCK_N", blockN},
                                   {"LO", band ? schedule["lo"].get<int64_t>() : 0},
                                   {"HI", band ? schedule["hi"].get<int64_t>() : 0},
                                   {"PERIOD", band ? schedule["period"].get<int64_t>() : 1}});
}

void writeText(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

std::string readText(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// A directory of the test's own under $TMPDIR (else /tmp), world-readable
/// (the unprivileged child reads it), removed at the end.
class Scratch {
public:
  Scratch() {
    const char *base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/attnrt-test-XXXXXX";
    EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
    path_ = pattern;
    ::chmod(path_.c_str(), 0755);
  }
  ~Scratch() {
    std::error_code ignored;
    for (auto &entry : fs::recursive_directory_iterator(path_, ignored))
      if (entry.is_directory(ignored))
        fs::permissions(entry.path(), fs::perms::owner_all, fs::perm_options::add, ignored);
    fs::remove_all(path_, ignored);
  }
  std::string operator/(const std::string &name) const { return path_ + "/" + name; }
  const std::string &path() const { return path_; }

private:
  std::string path_;
};

/// Writes a package (manifest.json + kernel.cpp) into `dir`, creating it.
void writePackage(const std::string &dir, const Json &manifest, const std::string &source) {
  fs::create_directories(dir);
  writeText(dir + "/manifest.json", manifest.dump(2));
  writeText(dir + "/kernel.cpp", source);
}

/// Loads a package, expecting success.
attnrt_package *loadOk(const std::string &dir) {
  attnrt_package *package = nullptr;
  EXPECT_EQ(attnrt_package_load(dir.c_str(), &package), ATTNRT_OK) << attnrt_last_error();
  return package;
}

/// Loads a package expecting `status`; returns the message.
std::string loadError(const std::string &dir, attnrt_status status) {
  attnrt_package *package = nullptr;
  EXPECT_EQ(attnrt_package_load(dir.c_str(), &package), status) << attnrt_last_error();
  EXPECT_EQ(package, nullptr);
  return attnrt_last_error();
}

/// Writes a package from `manifest` and `source` and loads it, expecting `status`.
std::string manifestError(const Json &manifest, const std::string &source,
                          attnrt_status status = ATTNRT_ERROR_PACKAGE) {
  Scratch scratch;
  writePackage(scratch / "pkg", manifest, source);
  return loadError(scratch / "pkg", status);
}

/// The files of a directory (names), sorted.
std::vector<std::string> filesIn(const std::string &dir) {
  std::vector<std::string> names;
  std::error_code ignored;
  for (const auto &entry : fs::directory_iterator(dir, ignored))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

size_t countOf(const std::string &text, const std::string &what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

/// Compile options for a cache directory (`dir` must outlive them).
attnrt_compile_options cacheOptions(const char *dir, const char *cxx = nullptr) {
  attnrt_compile_options options{};
  options.cache_dir = dir;
  options.cxx = cxx;
  return options;
}

/// Tensors for one launch, contiguous, bf16 (lse fp32), filled with seeded
/// random values rounded to bf16.
struct Launch {
  int64_t batch, nq, nk, hq, hkv, dim;
  std::vector<uint16_t> q, k, v, o;
  std::vector<float> lse;
  attnc_tensor_view qv, kv, vv, ov, lv;

  Launch(int64_t batch, int64_t nq, int64_t nk, int64_t hq, int64_t hkv, int64_t dim,
         uint32_t seed = 1)
      : batch(batch), nq(nq), nk(nk), hq(hq), hkv(hkv), dim(dim),
        q(static_cast<size_t>(batch * nq * hq * dim)),
        k(static_cast<size_t>(batch * nk * hkv * dim)), v(k.size()), o(q.size()),
        lse(static_cast<size_t>(batch * hq * nq)) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (auto *buffer : {&q, &k, &v})
      for (uint16_t &x : *buffer)
        x = attnc_cpu::floatToBf16(uniform(rng));
    qv = attnrt::contiguousView(q.data(), ATTNC_DTYPE_BF16, {batch, nq, hq, dim});
    kv = attnrt::contiguousView(k.data(), ATTNC_DTYPE_BF16, {batch, nk, hkv, dim});
    vv = attnrt::contiguousView(v.data(), ATTNC_DTYPE_BF16, {batch, nk, hkv, dim});
    ov = attnrt::contiguousView(o.data(), ATTNC_DTYPE_BF16, {batch, nq, hq, dim});
    lv = attnrt::contiguousView(lse.data(), ATTNC_DTYPE_FP32, {batch, hq, nq});
  }

  attnrt_status run(attnrt_kernel *kernel, const std::vector<int64_t> &tokens = {},
                    int32_t threads = 1) {
    return attnrt_forward(kernel, &qv, &kv, &vv, &ov, &lv, tokens.empty() ? nullptr : tokens.data(),
                          static_cast<int64_t>(tokens.size()), threads);
  }
};

/// Runs a child process; returns its wait status, its stdout in `out`.
int runChild(const std::vector<std::string> &argv, std::string *out = nullptr,
             std::string *err = nullptr, const std::vector<std::string> *env = nullptr) {
  static int counter = 0;
  std::string base = fs::temp_directory_path().string() + "/attnrt-child-" +
                     std::to_string(::getpid()) + "-" + std::to_string(counter++);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, (base + ".out").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, (base + ".err").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char *> args, envs;
  for (const std::string &a : argv)
    args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  if (env) {
    for (const std::string &e : *env)
      envs.push_back(const_cast<char *>(e.c_str()));
    envs.push_back(nullptr);
  }
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), env ? envs.data() : environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << argv[0];
  int status = -1;
  if (rc == 0)
    waitpid(pid, &status, 0);
  if (out)
    *out = readText(base + ".out");
  if (err)
    *err = readText(base + ".err");
  fs::remove(base + ".out");
  fs::remove(base + ".err");
  return status;
}

/// A fixture with a scratch directory and its cache directory.
class RuntimeCache : public ::testing::Test {
protected:
  void SetUp() override {
    writePackage(scratch / "pkg", makeManifest(kRuntimeGlobalSpec, markerSource()), markerSource());
    package = loadOk(scratch / "pkg");
  }
  void TearDown() override { attnrt_package_free(package); }

  /// Creates the kernel with the scratch cache; expects success.
  attnrt_kernel *create(const attnrt_compile_options &options) {
    attnrt_kernel *kernel = nullptr;
    EXPECT_EQ(attnrt_kernel_create(package, &options, &kernel), ATTNRT_OK) << attnrt_last_error();
    return kernel;
  }

  /// Creates the kernel, runs it once, frees it; returns from_cache.
  int32_t createAndRun(const attnrt_compile_options &options) {
    attnrt_kernel *kernel = create(options);
    if (!kernel)
      return -1;
    Launch launch(1, 3, 5, 2, 1, 8);
    EXPECT_EQ(launch.run(kernel), ATTNRT_OK) << attnrt_last_error();
    EXPECT_EQ(launch.lse[0], kMarker);
    int32_t fromCache = attnrt_kernel_from_cache(kernel);
    attnrt_kernel_free(kernel);
    return fromCache;
  }

  /// The one cache entry in `dir`.
  std::string onlyEntry(const std::string &dir) {
    std::vector<std::string> files = filesIn(dir);
    EXPECT_EQ(files.size(), 1u);
    return files.empty() ? "" : dir + "/" + files[0];
  }

  Scratch scratch;
  const std::string cache = scratch / "cache"; ///< the cache directory of most tests
  attnrt_package *package = nullptr;
};

/// A fixture with the marker kernel of a package, compiled once into a cache
/// shared by the test processes (ATTNRT_TEST_CACHE_DIR).
class RuntimeForward : public ::testing::Test {
protected:
  void SetUp() override { load(kRuntimeGlobalSpec, markerSource()); }
  void TearDown() override {
    attnrt_kernel_free(kernel);
    attnrt_package_free(package);
  }

  void load(const std::string &specText, const std::string &source) {
    attnrt_kernel_free(kernel);
    attnrt_package_free(package);
    kernel = nullptr;
    package = nullptr;
    ASSERT_EQ(attnrt_package_from_memory(makeManifest(specText, source).dump().c_str(),
                                         source.c_str(), &package),
              ATTNRT_OK)
        << attnrt_last_error();
    attnrt_compile_options options = cacheOptions(ATTNRT_TEST_CACHE_DIR);
    ASSERT_EQ(attnrt_kernel_create(package, &options, &kernel), ATTNRT_OK) << attnrt_last_error();
  }

  /// Runs `launch`, expecting an invalid argument; returns the message.
  std::string invalid(Launch &launch, const std::vector<int64_t> &tokens = {}) {
    EXPECT_EQ(launch.run(kernel, tokens), ATTNRT_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(launch.lse[0], kMarker) << "the kernel ran";
    return attnrt_last_error();
  }

  attnrt_package *package = nullptr;
  attnrt_kernel *kernel = nullptr;
};

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

//===----------------------------------------------------------------------===//
// Packages: loading and validation
//===----------------------------------------------------------------------===//

TEST(RuntimePackage, LoadsFromDirectoryAndMemory) {
  Scratch scratch;
  Json manifest = makeManifest(kRuntimeGlobalSpec, markerSource());
  writePackage(scratch / "pkg", manifest, markerSource());
  attnrt_package *package = loadOk(scratch / "pkg");
  ASSERT_NE(package, nullptr);
  EXPECT_EQ(std::string(attnrt_package_spec_json(package)), manifest["spec"].dump());
  attnrt_package_free(package);

  attnrt_package *fromMemory = nullptr;
  ASSERT_EQ(
      attnrt_package_from_memory(manifest.dump().c_str(), markerSource().c_str(), &fromMemory),
      ATTNRT_OK)
      << attnrt_last_error();
  EXPECT_EQ(std::string(attnrt_package_spec_json(fromMemory)), manifest["spec"].dump());
  attnrt_package_free(fromMemory);
}

TEST(RuntimePackage, AcceptsManifestsWrittenByAttnc) {
  // attnc's own manifest writer: lengths given at launch with a table
  // schedule, and fixed lengths (written as values) with a band.
  for (const char *specText : {kRuntimeGlobalSpec, kFixedCausalSpec}) {
    spec::LoadResult loaded = spec::loadSpecFromString(specText, "test-spec.json");
    ASSERT_TRUE(loaded.ok());
    package::ManifestInfo info;
    info.attncVersion = ATTNC_VERSION;
    info.target = "cpu";
    info.sourceFileName = "kernel.cpp";
    info.source = markerSource();
    info.blockM = info.blockN = 16;
    info.band = mask::bandOf(mask::canonicalize(loaded.spec->mask));
    info.abiVersion = ATTNC_KERNEL_ABI_VERSION;
    std::string manifest = package::writeManifest(*loaded.spec, info);
    attnrt_package *p = nullptr;
    EXPECT_EQ(attnrt_package_from_memory(manifest.c_str(), info.source.c_str(), &p), ATTNRT_OK)
        << attnrt_last_error();
    attnrt_package_free(p);
  }
}

TEST(RuntimePackage, MissingManifest) {
  Scratch scratch;
  std::string message = loadError(scratch / "nothing-here", ATTNRT_ERROR_PACKAGE);
  EXPECT_HAS(message, scratch / "nothing-here/manifest.json");
  EXPECT_HAS(message, "No such file or directory");
}

TEST(RuntimePackage, MalformedJson) {
  Scratch scratch;
  fs::create_directories(scratch / "pkg");
  writeText(scratch / "pkg/manifest.json", "{\"format\": \"attnc-kernel-package\",\n  \"x\": }");
  std::string message = loadError(scratch / "pkg", ATTNRT_ERROR_PACKAGE);
  EXPECT_HAS(message, "manifest.json: malformed JSON: parse error at line 2");
}

TEST(RuntimePackage, NotAnObject) {
  EXPECT_HAS(manifestError(Json::array({1}), ""), "expected a JSON object at the top level");
}

TEST(RuntimePackage, WrongFormat) {
  Json m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["format"] = "something-else";
  EXPECT_HAS(manifestError(m, markerSource()),
             "format: expected \"attnc-kernel-package\", got \"something-else\"");
}

TEST(RuntimePackage, WrongFormatVersion) {
  Json m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["format_version"] = 2;
  EXPECT_HAS(manifestError(m, markerSource()), "manifest.json: format_version: expected 1, got 2");
}

TEST(RuntimePackage, ForeignAttncVersion) {
  Json m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["attnc_version"] = "0.0.9";
  EXPECT_HAS(manifestError(m, markerSource()),
             std::string("manifest.json: attnc_version \"0.0.9\" differs from this runtime's \"") +
                 ATTNC_VERSION + "\": recompile the package");
}

// The manifest's backward section (runtime/README.md, "Backward"): CPU
// packages name attnc_backward and compute dQ in the separate pass.
TEST(RuntimePackage, BackwardSectionIsChecked) {
  Json m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["backward"] = {{"dq", "separate"}, {"entry", "attnc_forward"}};
  EXPECT_HAS(manifestError(m, markerSource()),
             "backward.entry: expected \"attnc_backward\", got \"attnc_forward\"");
  m["backward"] = {{"dq", "atomic"}, {"entry", "attnc_backward"}};
  EXPECT_HAS(manifestError(m, markerSource()),
             "backward.dq: CPU kernels compute dQ in the separate pass: expected \"separate\", "
             "got \"atomic\"");
  m["backward"] = {{"dq", "sometimes"}, {"entry", "attnc_backward"}};
  EXPECT_HAS(manifestError(m, markerSource()),
             "backward.dq: expected \"separate\" or \"atomic\", got \"sometimes\"");
  m["backward"] = 3;
  EXPECT_HAS(manifestError(m, markerSource()), "backward");
}

TEST(RuntimePackage, WrongAbiVersion) {
  Json m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["abi_version"] = ATTNC_KERNEL_ABI_VERSION + 1;
  EXPECT_HAS(manifestError(m, markerSource()),
             "abi_version 3 differs from this runtime's kernel ABI version 2");
}

TEST(RuntimePackage, TamperedSource) {
  Scratch scratch;
  writePackage(scratch / "pkg", makeManifest(kRuntimeGlobalSpec, markerSource()),
               markerSource(0) + "// edited\n");
  EXPECT_HAS(loadError(scratch / "pkg", ATTNRT_ERROR_PACKAGE),
             "manifest.json: source hash mismatch: kernel.cpp was modified after attnc wrote it");
}

TEST(RuntimePackage, TamperedSpec) {
  Json m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["spec"]["head_dim"] = 16;
  std::string message = manifestError(m, markerSource());
  EXPECT_HAS(message, "manifest.json: spec_hash mismatch");
  EXPECT_HAS(message, "the manifest was modified after attnc wrote it");
}

TEST(RuntimePackage, UnknownTarget) {
  Json m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["target"] = "tpu";
  EXPECT_HAS(manifestError(m, markerSource()), "target \"tpu\": expected \"cpu\" or \"cuda\"");
}

TEST(RuntimePackage, CudaTargetNeedsCudaFields) {
  // A CPU manifest relabelled "cuda" lacks the CUDA kernel's entry point.
  Json m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["target"] = "cuda";
  EXPECT_HAS(manifestError(m, markerSource()),
             "entry: expected \"attnc_forward_kernel\" (the CUDA kernel ABI's entry point)");
}

TEST(RuntimePackage, MissingFieldAndWrongType) {
  Json m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m.erase("tile");
  EXPECT_HAS(manifestError(m, markerSource()), "manifest.json: missing required field tile");
  m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["heads"]["query"] = "2";
  EXPECT_HAS(manifestError(m, markerSource()),
             "heads.query: expected an integer, got string \"2\"");
  m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["tile"]["block_n"] = 0;
  EXPECT_HAS(manifestError(m, markerSource()), "tile.block_n: must be >= 1, got 0");
  m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["arguments"][1]["shape"][2] = 7;
  EXPECT_HAS(manifestError(m, markerSource()),
             "arguments[1].shape: expected [\"batch\",\"seq_len.kv\",1,8] for k");
}

TEST(RuntimePackage, MissingSource) {
  Scratch scratch;
  writePackage(scratch / "pkg", makeManifest(kRuntimeGlobalSpec, markerSource()), "");
  fs::remove(scratch / "pkg/kernel.cpp");
  std::string message = loadError(scratch / "pkg", ATTNRT_ERROR_PACKAGE);
  EXPECT_HAS(message, "pkg/kernel.cpp: cannot read the kernel source");
}

TEST(RuntimePackage, SourceOutsideThePackage) {
  Json m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["source"]["file"] = "../kernel.cpp";
  EXPECT_HAS(manifestError(m, markerSource()),
             "source.file: expected a file name inside the package directory");
}

TEST(RuntimePackage, InvalidSpec) {
  // Hashes match, but the spec itself is wrong: the spec loader's diagnostic.
  Json m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["spec"]["head_dim"] = 12;
  m["spec_hash"] = hashString(m["spec"].dump());
  std::string message = manifestError(m, markerSource());
  EXPECT_HAS(message, "spec: the embedded spec is invalid");
  EXPECT_HAS(message, "manifest.json#spec:");
  EXPECT_HAS(message, "/head_dim");
}

TEST(RuntimePackage, SummaryDisagreesWithSpec) {
  Json m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["heads"]["kv"] = 2;
  EXPECT_HAS(manifestError(m, markerSource()), "heads.kv: 2 differs from the spec's 1");
  m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["seq_len"]["q"] = 64;
  EXPECT_HAS(manifestError(m, markerSource()),
             "seq_len.q: 64 differs from the spec's null (given at launch)");
  m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["runtime_global_tokens"] = 0;
  EXPECT_HAS(manifestError(m, markerSource()),
             "runtime_global_tokens: 0, but the spec's mask has a runtime global list");
  m = makeManifest(kRuntimeGlobalSpec, markerSource());
  m["schedule"] = {{"kind", "band"}, {"lo", 0}, {"hi", 1}, {"period", 1}};
  EXPECT_HAS(manifestError(m, markerSource()), "schedule.kind: \"band\" needs a banded mask");
}

TEST(RuntimePackage, CppLayerCarriesTheMessage) {
  Scratch scratch;
  auto missing = attnrt::Package::load(scratch / "none");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.status().code(), ATTNRT_ERROR_PACKAGE);
  EXPECT_HAS(missing.status().message(), "manifest.json");

  Json manifest = makeManifest(kRuntimeGlobalSpec, markerSource());
  auto package = attnrt::Package::fromMemory(manifest.dump(), markerSource());
  ASSERT_TRUE(package) << package.status().message();
  attnrt_compile_options options = cacheOptions(ATTNRT_TEST_CACHE_DIR);
  auto kernel = attnrt::Kernel::create(*package, &options);
  ASSERT_TRUE(kernel) << kernel.status().message();
  Launch launch(1, 3, 5, 2, 1, 8);
  attnrt::Status ok = kernel->forward(launch.qv, launch.kv, launch.vv, launch.ov, launch.lv, {0});
  ASSERT_TRUE(ok) << ok.message();
  EXPECT_EQ(launch.lse[0], kMarker);
  launch.qv.rank = 3;
  attnrt::Status bad = kernel->forward(launch.qv, launch.kv, launch.vv, launch.ov, launch.lv);
  EXPECT_EQ(bad.code(), ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_HAS(bad.message(), "q: expected 4 dimensions");
}

TEST(RuntimePackage, NullArguments) {
  attnrt_package *package = nullptr;
  EXPECT_EQ(attnrt_package_load(nullptr, &package), ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(attnrt_last_error(), "dir: is null");
  EXPECT_EQ(attnrt_package_load("x", nullptr), ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(attnrt_last_error(), "out: is null");
  attnrt_kernel *kernel = nullptr;
  EXPECT_EQ(attnrt_kernel_create(nullptr, nullptr, &kernel), ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(attnrt_last_error(), "package: is null");
}

//===----------------------------------------------------------------------===//
// The disk cache
//===----------------------------------------------------------------------===//

TEST_F(RuntimeCache, MissThenHit) {
  attnrt_compile_options options = cacheOptions(cache.c_str());
  options.verbose = 1;
  testing::internal::CaptureStderr();
  EXPECT_EQ(createAndRun(options), 0);
  std::string trace = testing::internal::GetCapturedStderr();
  std::string entry = onlyEntry(cache);
  EXPECT_HAS(trace, "attnrt: cache miss: " + entry);
  EXPECT_HAS(trace, "-O2 -std=c++17 -fPIC -shared -pthread");
  EXPECT_HAS(trace, "attnrt: cached " + entry);
  EXPECT_TRUE(std::regex_match(fs::path(entry).filename().string(),
                               std::regex("marker-cpu-[0-9a-f]{16}\\.so")))
      << entry;
  std::string bytes = readText(entry);
  EXPECT_EQ(bytes.substr(0, 4), "\x7f"
                                "ELF");
  EXPECT_EQ(bytes.substr(bytes.size() - 8), "ATTNCSUM");
  testing::internal::CaptureStderr();
  EXPECT_EQ(createAndRun(options), 1);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "attnrt: cache hit: " + entry + "\n");
  EXPECT_EQ(filesIn(cache).size(), 1u);
}

TEST_F(RuntimeCache, EnvironmentNamesTheDirectory) {
  ::setenv("ATTNC_CACHE_DIR", (scratch / "env-cache").c_str(), 1);
  attnrt_compile_options options{};
  EXPECT_EQ(createAndRun(options), 0);
  ::unsetenv("ATTNC_CACHE_DIR");
  EXPECT_EQ(filesIn(scratch / "env-cache").size(), 1u);
}

TEST_F(RuntimeCache, TruncatedEntryIsRebuiltWithOneWarning) {
  attnrt_compile_options options = cacheOptions(cache.c_str());
  EXPECT_EQ(createAndRun(options), 0);
  std::string entry = onlyEntry(cache);
  fs::resize_file(entry, fs::file_size(entry) / 2);

  testing::internal::CaptureStderr();
  EXPECT_EQ(createAndRun(options), 0);
  std::string warnings = testing::internal::GetCapturedStderr();
  EXPECT_EQ(countOf(warnings, "attnrt: warning:"), 1u) << warnings;
  EXPECT_HAS(warnings, "cache entry " + entry + " corrupt: no checksum trailer");

  // Rebuilt: a valid entry again, loaded silently.
  testing::internal::CaptureStderr();
  EXPECT_EQ(createAndRun(options), 1);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");

  // Warned about once: the same entry corrupted again is rebuilt silently.
  fs::resize_file(entry, 100);
  testing::internal::CaptureStderr();
  EXPECT_EQ(createAndRun(options), 0);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST_F(RuntimeCache, FlippedBitIsRebuiltWithOneWarning) {
  attnrt_compile_options options = cacheOptions(cache.c_str());
  EXPECT_EQ(createAndRun(options), 0);
  std::string entry = onlyEntry(cache);
  std::string bytes = readText(entry);
  bytes[bytes.size() / 2] ^= 0x10;
  writeText(entry, bytes);

  testing::internal::CaptureStderr();
  EXPECT_EQ(createAndRun(options), 0);
  std::string warnings = testing::internal::GetCapturedStderr();
  EXPECT_EQ(countOf(warnings, "attnrt: warning:"), 1u) << warnings;
  EXPECT_HAS(warnings, "corrupt: checksum mismatch; rebuilding it");
  EXPECT_EQ(createAndRun(options), 1);
}

TEST_F(RuntimeCache, ReadOnlyDirectoryStillRuns) {
  fs::create_directories(cache);
  ASSERT_EQ(::chmod(cache.c_str(), 0555), 0);
  if (::geteuid() != 0) {
    testing::internal::CaptureStderr();
    EXPECT_EQ(createAndRun(cacheOptions(cache.c_str())), 0);
    std::string warnings = testing::internal::GetCapturedStderr();
    EXPECT_HAS(warnings, "attnrt: warning: cache directory \"" + cache + "\" is not usable");
    EXPECT_TRUE(filesIn(cache).empty());
    return;
  }
  // Root writes anywhere: run the helper as nobody. It is copied into the
  // scratch directory so that nobody can run it wherever the build tree is.
  if (::access("/usr/bin/setpriv", X_OK) != 0)
    GTEST_SKIP() << "running as root and /usr/bin/setpriv is missing: cannot drop privileges";
  std::string helper = scratch / "helper";
  fs::copy_file(ATTNRT_TEST_HELPER, helper);
  ::chmod(helper.c_str(), 0755);
  std::vector<std::string> env = {"PATH=" + std::string(std::getenv("PATH")), "TMPDIR=/tmp",
                                  "HOME=/nonexistent"};
  if (const char *cxx = std::getenv("CXX"))
    env.push_back(std::string("CXX=") + cxx);
  std::string out, err;
  int status = runChild({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                         helper, scratch / "pkg", cache},
                        &out, &err, &env);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err;
  EXPECT_EQ(out, "from_cache=0\n");
  EXPECT_HAS(err, "attnrt: warning: cache directory \"" + cache +
                      "\" is not usable (cannot write there: Permission denied)");
  EXPECT_TRUE(filesIn(cache).empty());
}

TEST_F(RuntimeCache, UncreatableDirectoryStillRuns) {
  writeText(scratch / "a-file", "");
  const std::string uncreatable = scratch / "a-file/cache";
  testing::internal::CaptureStderr();
  EXPECT_EQ(createAndRun(cacheOptions(uncreatable.c_str())), 0);
  std::string warnings = testing::internal::GetCapturedStderr();
  EXPECT_HAS(warnings, "cache directory \"" + uncreatable +
                           "\" is not usable (cannot create it: Not a directory); compiling into "
                           "a private temporary directory");
}

TEST_F(RuntimeCache, TwoProcessesRaceOnOneKey) {
  // A compiler that sleeps first, so that both processes miss and compile
  // and publish the same key at the same time.
  writeText(scratch / "slow-cxx.sh", "sleep 0.5\nexec c++ \"$@\"\n");
  std::string cxx = "/bin/sh " + (scratch / "slow-cxx.sh");
  const std::string go = scratch / "go";
  std::vector<std::string> argv = {ATTNRT_TEST_HELPER, scratch / "pkg", cache, cxx, go};
  std::string outs[2], errs[2];
  int statuses[2];
  std::thread children[2];
  for (int i = 0; i < 2; ++i)
    children[i] = std::thread([&, i] { statuses[i] = runChild(argv, &outs[i], &errs[i]); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  writeText(go, "");
  for (std::thread &child : children)
    child.join();
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(WIFEXITED(statuses[i]) && WEXITSTATUS(statuses[i]) == 0) << errs[i];
    EXPECT_EQ(outs[i], "from_cache=0\n") << "both processes compile";
    EXPECT_EQ(errs[i], "");
  }
  // One valid entry and no temporary file left behind.
  onlyEntry(cache);
  testing::internal::CaptureStderr();
  EXPECT_EQ(createAndRun(cacheOptions(cache.c_str(), cxx.c_str())), 1);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST_F(RuntimeCache, MissingCompiler) {
  attnrt_compile_options options = cacheOptions(cache.c_str(), "/nonexistent/c++");
  attnrt_kernel *kernel = nullptr;
  EXPECT_EQ(attnrt_kernel_create(package, &options, &kernel), ATTNRT_ERROR_COMPILE);
  EXPECT_EQ(kernel, nullptr);
  EXPECT_HAS(attnrt_last_error(),
             "the C++ compiler \"/nonexistent/c++\" (from attnrt_compile_options.cxx) could not "
             "be started: No such file or directory");
  EXPECT_TRUE(filesIn(cache).empty());
}

TEST_F(RuntimeCache, CompilerFromEnvironment) {
  ::setenv("CXX", "/nonexistent/env-c++", 1);
  attnrt_compile_options options = cacheOptions(cache.c_str());
  attnrt_kernel *kernel = nullptr;
  EXPECT_EQ(attnrt_kernel_create(package, &options, &kernel), ATTNRT_ERROR_COMPILE);
  ::unsetenv("CXX");
  EXPECT_HAS(attnrt_last_error(), "\"/nonexistent/env-c++\" (from $CXX) could not be started");
}

TEST_F(RuntimeCache, FailingCompilerGivesItsLogAndCachesNothing) {
  const std::string broken = "extern \"C\" int attnc_forward(const void *) { return 0 }\n";
  writePackage(scratch / "broken", makeManifest(kRuntimeGlobalSpec, broken), broken);
  attnrt_package *brokenPackage = loadOk(scratch / "broken");
  attnrt_compile_options options = cacheOptions(cache.c_str());
  attnrt_kernel *kernel = nullptr;
  EXPECT_EQ(attnrt_kernel_create(brokenPackage, &options, &kernel), ATTNRT_ERROR_COMPILE);
  std::string message = attnrt_last_error();
  EXPECT_HAS(message, "kernel.cpp: the C++ compiler");
  EXPECT_HAS(message, "-O2 -std=c++17 -fPIC -shared -pthread -o marker-cpu-");
  EXPECT_HAS(message, "kernel.cpp:1:"); // the compiler's own diagnostic
  EXPECT_HAS(message, "error");
  EXPECT_HAS(message, "set ATTNC_DUMP_SOURCE=1");
  EXPECT_TRUE(filesIn(cache).empty());

  ::setenv("ATTNC_DUMP_SOURCE", "1", 1);
  testing::internal::CaptureStderr();
  EXPECT_EQ(attnrt_kernel_create(brokenPackage, &options, &kernel), ATTNRT_ERROR_COMPILE);
  std::string dumped = testing::internal::GetCapturedStderr();
  ::unsetenv("ATTNC_DUMP_SOURCE");
  EXPECT_HAS(attnrt_last_error(), "the source with line numbers is on stderr");
  EXPECT_HAS(dumped, "attnrt: kernel.cpp of kernel \"marker\", with line numbers:\n"
                     "    1  extern \"C\" int attnc_forward");
  EXPECT_TRUE(filesIn(cache).empty());
  attnrt_package_free(brokenPackage);
}

//===----------------------------------------------------------------------===//
// attnrt_forward: argument validation, one case per check
//===----------------------------------------------------------------------===//

TEST_F(RuntimeForward, ValidLaunchRuns) {
  Launch launch(2, 3, 5, 2, 1, 8);
  ASSERT_EQ(launch.run(kernel, {0, 4}, 3), ATTNRT_OK) << attnrt_last_error();
  EXPECT_EQ(launch.lse[0], kMarker);
  EXPECT_EQ(launch.lse[1], 3.0f);
  EXPECT_EQ(launch.lse[2], 0.0f) << "a table mask gets a table";
}

TEST_F(RuntimeForward, DefaultThreadCountIsTheHardware) {
  Launch launch(2, 3, 5, 2, 1, 8);
  ASSERT_EQ(launch.run(kernel, {}, 0), ATTNRT_OK) << attnrt_last_error();
  EXPECT_EQ(launch.lse[1], static_cast<float>(std::max(1u, std::thread::hardware_concurrency())));
}

TEST_F(RuntimeForward, NullKernel) {
  Launch launch(2, 3, 5, 2, 1, 8);
  EXPECT_EQ(launch.run(nullptr), ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(attnrt_last_error(), "kernel: is null");
}

TEST_F(RuntimeForward, NullView) {
  Launch launch(2, 3, 5, 2, 1, 8);
  EXPECT_EQ(attnrt_forward(kernel, &launch.qv, &launch.kv, nullptr, &launch.ov, &launch.lv, nullptr,
                           0, 1),
            ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(attnrt_last_error(), "v: is null");
}

TEST_F(RuntimeForward, NullData) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.kv.data = nullptr;
  EXPECT_EQ(invalid(launch), "k: data is null");
}

TEST_F(RuntimeForward, WrongRank) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.qv.rank = 3;
  EXPECT_EQ(invalid(launch), "q: expected 4 dimensions [batch, seq_len.q, 2, 8], got [2, 3, 2]");
}

TEST_F(RuntimeForward, WrongLseRank) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.lv.rank = 4;
  EXPECT_HAS(invalid(launch), "lse: expected 3 dimensions [batch, 2, seq_len.q], got [2, 2, 3, ");
}

TEST_F(RuntimeForward, WrongDtype) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.ov.dtype = ATTNC_DTYPE_FP16;
  EXPECT_EQ(invalid(launch), "o: expected dtype bf16, got fp16");
}

TEST_F(RuntimeForward, WrongLseDtype) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.lv.dtype = ATTNC_DTYPE_BF16;
  EXPECT_EQ(invalid(launch), "lse: expected dtype fp32, got bf16");
}

TEST_F(RuntimeForward, UnknownDtype) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.qv.dtype = 42;
  EXPECT_EQ(invalid(launch), "q: expected dtype bf16, got dtype 42 (unknown)");
}

TEST_F(RuntimeForward, BatchMismatch) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.vv.shape[0] = 3;
  EXPECT_HAS(invalid(launch),
             "v: dimension 0 (batch) must be 2 (q's batch), got 3 in [3, 5, 1, 8]");
}

TEST_F(RuntimeForward, QueryHeads) {
  Launch launch(2, 3, 5, 3, 1, 8);
  EXPECT_HAS(invalid(launch), "q: dimension 2 (heads.query) must be 2, got 3 in [2, 3, 3, 8]; "
                              "expected [batch, seq_len.q, 2, 8]");
}

TEST_F(RuntimeForward, KvHeads) {
  Launch launch(2, 3, 5, 2, 2, 8);
  EXPECT_HAS(invalid(launch), "k: dimension 2 (heads.kv) must be 1, got 2");
}

TEST_F(RuntimeForward, HeadDim) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.vv.shape[3] = 16;
  EXPECT_HAS(invalid(launch), "v: dimension 3 (head_dim) must be 8, got 16");
}

TEST_F(RuntimeForward, KeyAndValueLengthsDiffer) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.vv.shape[1] = 4;
  EXPECT_HAS(invalid(launch), "v: dimension 1 (seq_len.kv) must be 5 (k's seq_len.kv), got 4");
}

TEST_F(RuntimeForward, OutputShape) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.ov.shape[1] = 4;
  EXPECT_HAS(invalid(launch), "o: dimension 1 (seq_len.q) must be 3 (q's seq_len.q), got 4");
}

TEST_F(RuntimeForward, LseShape) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.lv.shape[2] = 5;
  EXPECT_HAS(invalid(launch), "lse: dimension 2 (seq_len.q) must be 3 (q's seq_len.q), got 5");
}

TEST_F(RuntimeForward, LseHeads) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.lv.shape[1] = 1;
  EXPECT_HAS(invalid(launch), "lse: dimension 1 (heads.query) must be 2, got 1");
}

TEST_F(RuntimeForward, LengthFixedBySpec) {
  load(kFixedCausalSpec, markerSource());
  Launch launch(1, 4, 5, 2, 1, 8);
  EXPECT_HAS(invalid(launch), "k: dimension 1 (seq_len.kv) must be 6 (fixed by the spec), got 5");
  Launch fixed(1, 4, 6, 2, 1, 8);
  ASSERT_EQ(fixed.run(kernel), ATTNRT_OK) << attnrt_last_error();
  EXPECT_EQ(fixed.lse[2], 1.0f) << "a band mask gets no table";
}

TEST_F(RuntimeForward, ZeroLength) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.qv.shape[1] = 0;
  EXPECT_EQ(invalid(launch), "q: dimension 1 (seq_len.q) must be >= 1, got 0 in [2, 0, 2, 8]");
}

TEST_F(RuntimeForward, ZeroBatch) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.kv.shape[0] = 0;
  EXPECT_HAS(invalid(launch), "k: dimension 0 (batch) must be >= 1, got 0");
}

TEST_F(RuntimeForward, LastDimensionNotContiguous) {
  Launch launch(2, 3, 5, 2, 1, 8);
  launch.kv.strides[3] = 2;
  EXPECT_EQ(invalid(launch), "k: the last dimension must be contiguous (stride 1), got stride 2");
}

TEST_F(RuntimeForward, TooManyTokens) {
  Launch launch(2, 3, 5, 2, 1, 8);
  EXPECT_EQ(invalid(launch, {0, 1, 2, 3}),
            "global_tokens: at most 3 tokens (the spec's global.runtime.max), got 4");
}

TEST_F(RuntimeForward, TokenOutOfRange) {
  Launch launch(2, 3, 5, 2, 1, 8);
  EXPECT_EQ(invalid(launch, {1, 5}),
            "global_tokens[1]: token 5 is out of range [0, 5) (seq_len.kv)");
}

TEST_F(RuntimeForward, NegativeToken) {
  Launch launch(2, 3, 5, 2, 1, 8);
  EXPECT_HAS(invalid(launch, {-1}), "global_tokens[0]: token -1 is out of range");
}

TEST_F(RuntimeForward, NegativeTokenCount) {
  Launch launch(2, 3, 5, 2, 1, 8);
  int64_t token = 0;
  EXPECT_EQ(attnrt_forward(kernel, &launch.qv, &launch.kv, &launch.vv, &launch.ov, &launch.lv,
                           &token, -1, 1),
            ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(attnrt_last_error(), "num_global_tokens: must be >= 0, got -1");
}

TEST_F(RuntimeForward, NullTokens) {
  Launch launch(2, 3, 5, 2, 1, 8);
  EXPECT_EQ(attnrt_forward(kernel, &launch.qv, &launch.kv, &launch.vv, &launch.ov, &launch.lv,
                           nullptr, 2, 1),
            ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(attnrt_last_error(), "global_tokens: is null, but num_global_tokens is 2");
}

TEST_F(RuntimeForward, TokensWithoutRuntimeGlobals) {
  load(kFixedCausalSpec, markerSource());
  Launch launch(1, 4, 6, 2, 1, 8);
  EXPECT_HAS(invalid(launch, {0}), "global_tokens: 1 tokens given, but the spec's mask has no "
                                   "runtime global list");
}

TEST_F(RuntimeForward, KernelFailure) {
  load(kRuntimeGlobalSpec, markerSource(7));
  Launch launch(2, 3, 5, 2, 1, 8);
  EXPECT_EQ(launch.run(kernel), ATTNRT_ERROR_KERNEL);
  EXPECT_STREQ(attnrt_last_error(), "kernel \"marker\": attnc_forward returned 7");
}

//===----------------------------------------------------------------------===//
// Schedule tables
//===----------------------------------------------------------------------===//

/// Checks a table against the brute-force predicate: exactly the non-empty
/// tiles, ascending; FULL iff every (clipped) pair is allowed; the bits of
/// PARTIAL tiles pair by pair, zero past the sequence ends.
void expectTableMatchesBruteForce(const mask::Mask &m, int64_t nq, int64_t nk, int64_t bm,
                                  int64_t bn, const std::vector<int64_t> &tokens) {
  SCOPED_TRACE(mask::toString(m) + " nq=" + std::to_string(nq) + " nk=" + std::to_string(nk) +
               " tile=" + std::to_string(bm) + "x" + std::to_string(bn));
  mask::Extent extent{nq, nk, &tokens};
  mask::Mask canonical = mask::canonicalize(m);
  runtime::ScheduleTable table = runtime::buildScheduleTable(canonical, extent, bm, bn);
  mask::Predicate predicate(canonical, extent);
  const int64_t rowTiles = (nq + bm - 1) / bm, colTiles = (nk + bn - 1) / bn;
  EXPECT_EQ(table.wordsPerRow, (bn + 63) / 64);
  ASSERT_EQ(table.rowOffsets.size(), static_cast<size_t>(rowTiles + 1));
  EXPECT_EQ(table.rowOffsets[0], 0);
  size_t partials = 0;
  for (int64_t r = 0; r < rowTiles; ++r) {
    int64_t e = table.rowOffsets[r];
    for (int64_t c = 0; c < colTiles; ++c) {
      int64_t allowed = 0, pairs = 0;
      for (int64_t i = r * bm; i < std::min(nq, (r + 1) * bm); ++i)
        for (int64_t k = c * bn; k < std::min(nk, (c + 1) * bn); ++k, ++pairs)
          allowed += predicate.allowed(i, k);
      if (allowed == 0) {
        EXPECT_TRUE(e == table.rowOffsets[r + 1] || table.colTiles[e] != c)
            << "empty tile " << r << "," << c << " listed";
        continue;
      }
      ASSERT_LT(e, table.rowOffsets[r + 1]) << "tile " << r << "," << c << " missing";
      ASSERT_EQ(table.colTiles[e], c) << "tile " << r << "," << c << " missing";
      EXPECT_EQ(table.full[e], allowed == pairs ? 1 : 0) << "tile " << r << "," << c;
      if (table.full[e]) {
        EXPECT_EQ(table.bitOffsets[e], -1);
      } else {
        ++partials;
        for (int64_t row = 0; row < bm; ++row)
          for (int64_t bit = 0; bit < bn; ++bit) {
            const uint64_t word =
                table.bits[table.bitOffsets[e] + row * table.wordsPerRow + bit / 64];
            const bool set = (word >> (bit % 64)) & 1;
            const int64_t i = r * bm + row, k = c * bn + bit;
            const bool expected = i < nq && k < nk && predicate.allowed(i, k);
            ASSERT_EQ(set, expected) << "row " << i << " key " << k;
          }
      }
      ++e;
    }
    EXPECT_EQ(e, table.rowOffsets[r + 1]) << "query tile " << r << " lists extra tiles";
  }
  EXPECT_EQ(table.bits.size(), partials * static_cast<size_t>(bm * table.wordsPerRow));
}

TEST(RuntimeSchedule, TablesMatchBruteForce) {
  using mask::Mask;
  const Mask longformer = Mask::unionOf({Mask::window(2, 1), Mask::globalTokens({0, 7})});
  const Mask dilated = Mask::unionOf({Mask::window(3, 3, 2), Mask::globalRuntime(4)});
  const Mask sparse = Mask::unionOf(
      {Mask::blockSparse(16, {{0}, {0, 1}, {2}, {1, 3}, {0, 4}, {5}, {}, {2, 7}, {8}, {9}}),
       Mask::intersectOf({Mask::causal(), Mask::globalRuntime(4)})});
  expectTableMatchesBruteForce(longformer, 23, 30, 4, 3, {});
  expectTableMatchesBruteForce(longformer, 30, 23, 8, 5, {});
  expectTableMatchesBruteForce(dilated, 37, 45, 8, 16, {3, 40, 3});
  expectTableMatchesBruteForce(sparse, 150, 140, 16, 70, {5, 99});
  expectTableMatchesBruteForce(sparse, 129, 129, 32, 128, {128});
  // A banded mask through a "table" schedule.
  expectTableMatchesBruteForce(Mask::window(5, 0), 40, 50, 8, 8, {});
}

TEST(RuntimeSchedule, NaiveKernelMatchesTheReference) {
  // Runtime globals around a dilated window, nq != nk, tiles that do not
  // divide the lengths, one bitmask word and more; then causal through a band.
  struct Case {
    std::string spec;
    int64_t blockM, blockN, nq, nk;
    std::vector<int64_t> tokens;
    bool maskedRows; ///< some rows see no key (p < 0 under the window or causal)
  };
  const std::string tableSpec = R"({"attnc": 1, "name": "naive", "dtype": "bf16",
    "head_dim": 16, "heads": {"query": 4, "kv": 2},
    "mask": {"union": [{"window": {"left": 3, "right": 2, "dilation": 2}},
                       {"global": {"runtime": {"max": 4}}}]}})";
  const std::string bandSpec = R"({"attnc": 1, "name": "naive", "dtype": "bf16",
    "head_dim": 16, "heads": {"query": 4, "kv": 2}, "mask": {"causal": {}}})";
  const Case cases[] = {{tableSpec, 8, 16, 37, 45, {3, 40}, false},
                        {tableSpec, 8, 16, 50, 20, {}, true},
                        {tableSpec, 16, 80, 70, 150, {0, 149, 77}, false},
                        {bandSpec, 8, 16, 30, 21, {}, true}};
  for (const Case &c : cases) {
    SCOPED_TRACE("nq=" + std::to_string(c.nq) + " nk=" + std::to_string(c.nk) +
                 " block_n=" + std::to_string(c.blockN));
    std::string source = naiveSource(c.spec, c.blockM, c.blockN);
    Json manifest = makeManifest(c.spec, source, c.blockM, c.blockN);
    auto package = attnrt::Package::fromMemory(manifest.dump(), source);
    ASSERT_TRUE(package) << package.status().message();
    attnrt_compile_options options = cacheOptions(ATTNRT_TEST_CACHE_DIR);
    auto kernel = attnrt::Kernel::create(*package, &options);
    ASSERT_TRUE(kernel) << kernel.status().message();
    Launch launch(2, c.nq, c.nk, 4, 2, 16, 7);
    attnrt::Status status =
        kernel->forward(launch.qv, launch.kv, launch.vv, launch.ov, launch.lv, c.tokens, 2);
    ASSERT_TRUE(status) << status.message();

    // The float64 reference on the same bf16 inputs.
    spec::LoadResult loaded = spec::loadSpecFromString(c.spec, "case.json");
    mask::Extent extent{c.nq, c.nk, &c.tokens};
    mask::Predicate predicate(mask::canonicalize(loaded.spec->mask), extent);
    const double scale = 1.0 / std::sqrt(16.0);
    int64_t maskedRows = 0;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t i = 0; i < c.nq; ++i) {
          const int64_t g = h / 2;
          std::vector<double> s(static_cast<size_t>(c.nk), -INFINITY);
          double m = -INFINITY;
          for (int64_t k = 0; k < c.nk; ++k) {
            if (!predicate.allowed(i, k))
              continue;
            double dot = 0;
            for (int64_t d = 0; d < 16; ++d)
              dot += double(attnc_cpu::bf16ToFloat(launch.q[((b * c.nq + i) * 4 + h) * 16 + d])) *
                     attnc_cpu::bf16ToFloat(launch.k[((b * c.nk + k) * 2 + g) * 16 + d]);
            s[k] = dot * scale;
            m = std::max(m, s[k]);
          }
          double l = 0;
          std::vector<double> out(16, 0.0);
          for (int64_t k = 0; k < c.nk; ++k) {
            if (s[k] == -INFINITY)
              continue;
            double w = std::exp(s[k] - m);
            l += w;
            for (int64_t d = 0; d < 16; ++d)
              out[d] += w * attnc_cpu::bf16ToFloat(launch.v[((b * c.nk + k) * 2 + g) * 16 + d]);
          }
          const float lse = launch.lse[(b * 4 + h) * c.nq + i];
          if (l == 0) {
            ++maskedRows;
            EXPECT_EQ(lse, -INFINITY);
          } else {
            EXPECT_NEAR(lse, m + std::log(l), 1e-4) << "row " << i;
          }
          for (int64_t d = 0; d < 16; ++d) {
            const float o = attnc_cpu::bf16ToFloat(launch.o[((b * c.nq + i) * 4 + h) * 16 + d]);
            ASSERT_NEAR(o, l == 0 ? 0.0 : out[d] / l, 1e-2)
                << "b " << b << " h " << h << " row " << i << " d " << d;
          }
        }
    EXPECT_EQ(maskedRows > 0, c.maskedRows);
  }
}

TEST(RuntimeSchedule, ConcurrentLaunchesShareOneKernel) {
  // Threads running one kernel at once, with lengths and token lists that
  // need different tables (more than the kernel keeps), give the results of
  // launches run one at a time.
  const std::string specText = R"({"attnc": 1, "name": "naive", "dtype": "bf16",
    "head_dim": 16, "heads": {"query": 4, "kv": 2},
    "mask": {"union": [{"window": {"left": 3, "right": 2, "dilation": 2}},
                       {"global": {"runtime": {"max": 4}}}]}})";
  std::string source = naiveSource(specText, 8, 16);
  auto package = attnrt::Package::fromMemory(makeManifest(specText, source, 8, 16).dump(), source);
  ASSERT_TRUE(package) << package.status().message();
  attnrt_compile_options options = cacheOptions(ATTNRT_TEST_CACHE_DIR);
  auto kernel = attnrt::Kernel::create(*package, &options);
  ASSERT_TRUE(kernel) << kernel.status().message();

  constexpr int kLaunches = 24;
  auto makeLaunch = [](int n) {
    return std::make_unique<Launch>(1, 20 + n % 6, 30 + n % 4, 4, 2, 16, n);
  };
  auto tokensOf = [](int n) { return std::vector<int64_t>{n % 3, 29 - n % 2}; };
  std::vector<std::unique_ptr<Launch>> serial, parallel;
  for (int n = 0; n < kLaunches; ++n) {
    serial.push_back(makeLaunch(n));
    ASSERT_TRUE(kernel->forward(serial[n]->qv, serial[n]->kv, serial[n]->vv, serial[n]->ov,
                                serial[n]->lv, tokensOf(n), 1));
    parallel.push_back(makeLaunch(n));
  }
  std::vector<std::thread> threads;
  std::vector<int> failures(kLaunches, 0);
  for (int n = 0; n < kLaunches; ++n)
    threads.emplace_back([&, n] {
      Launch &l = *parallel[n];
      failures[n] = !kernel->forward(l.qv, l.kv, l.vv, l.ov, l.lv, tokensOf(n), 1);
    });
  for (std::thread &t : threads)
    t.join();
  for (int n = 0; n < kLaunches; ++n) {
    EXPECT_EQ(failures[n], 0) << "launch " << n;
    EXPECT_EQ(parallel[n]->o, serial[n]->o) << "launch " << n;
    EXPECT_EQ(parallel[n]->lse, serial[n]->lse) << "launch " << n;
  }
}

} // namespace
