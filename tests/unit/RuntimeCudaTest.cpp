//===- RuntimeCudaTest.cpp - libattnrt's CUDA target ----------------------===//
//
// The runtime's CUDA target against hand-written packages and a tiny
// hand-written kernel (a "copy" kernel: o = q, and an LSE that tells whether
// it read dynamic shared memory above 48 KiB and the schedule table). Runs
// everywhere: CUDA manifests (with the Hopper fields launch.arch, tile.mma
// and the backward kernels' block_m), the launch grids and architecture
// rules (LaunchGrid.h, TargetArch.h), the no-GPU message, and NVRTC (the
// register/spill report for sm_80 and sm_90, compile errors with their log
// and dumped source, sm_90a packages), which needs libnvrtc but no GPU. The launches
// (RuntimeCudaGpu.*) need a GPU and are skipped elsewhere with "no GPU: ...":
// results, schedule tables on the device, streams, the disk cache, and the
// device-pointer, alignment and stride checks.
//
//===----------------------------------------------------------------------===//

#include "LaunchGrid.h"
#include "Schedule.h"
#include "TargetArch.h"

#include "attnc/Mask/Tiles.h"
#include "attnc/Spec/Spec.h"
#include "attnc/runtime/attnrt.h"
#include "attnc/runtime/attnrt.hpp"
#include "attnc/runtime/hash.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <regex>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace attnc;
using Json = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

//===----------------------------------------------------------------------===//
// Packages written by hand
//===----------------------------------------------------------------------===//

/// Causal GQA: a "band" mask.
const char *kCausalSpec = R"({
  "attnc": 1, "name": "copy", "dtype": "bf16", "head_dim": 64,
  "heads": {"query": 4, "kv": 2},
  "mask": {"causal": {}}
})";

/// Runtime global tokens (at most 3) around a window: a "table" mask.
const char *kRuntimeGlobalSpec = R"({
  "attnc": 1, "name": "copy_table", "dtype": "bf16", "head_dim": 64,
  "heads": {"query": 4, "kv": 2},
  "mask": {"union": [{"window": {"left": 8, "right": 8}}, {"global": {"runtime": {"max": 3}}}]}
})";

/// Tile sizes and launch configuration of the copy kernel's packages.
constexpr int64_t kBlockM = 16, kBlockN = 32, kThreads = 64;
/// Dynamic shared memory: above the 48 KiB a kernel gets without opting in.
constexpr int64_t kSharedBytes = 64 * 1024;
/// What the copy kernel reads back from the last 16 bytes of shared memory.
constexpr float kSharedMarker = 7.0f;

/// The copy kernel: block (query tile, query head, batch) copies its rows of
/// q to o in 16-byte vectors, and writes to lse 1000 x (the kv tiles the
/// schedule table lists for its query tile, 0 without a table) + the value
/// thread 0 left in the last 16 bytes of dynamic shared memory (7), or -1
/// if the block size is not args.num_threads.
const char *kCopySource = R"(// Copy kernel of the runtime's CUDA tests.
#include "kernel_abi.h"

namespace {

constexpr int64_t kBlockM = @BLOCK_M@;
/// 16-byte vectors of dynamic shared memory (launch.shared_bytes / 16).
constexpr int64_t kSharedVectors = @SHARED_BYTES@ / 16;
/// bf16 elements per 16-byte vector.
constexpr int64_t kVectorElements = 8;

/// The address of element (b, n, h, 0) of a [B, N, H, D] view.
__device__ uint16_t *row(const attnc_tensor_view &t, int64_t b, int64_t n, int64_t h) {
  return static_cast<uint16_t *>(t.data) + b * t.strides[0] + n * t.strides[1] + h * t.strides[2];
}

} // namespace

extern "C" __global__ void attnc_forward_kernel(const __grid_constant__ attnc_forward_args args) {
  extern __shared__ uint4 shared[]; // (kSharedVectors) 16-byte vectors
  const int64_t tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  if (threadIdx.x == 0)
    shared[kSharedVectors - 1] = make_uint4(7, 7, 7, 7);
  __syncthreads();
  const float marker = static_cast<float>(shared[kSharedVectors - 1].x);
  const attnc_schedule_table &table = args.schedule;
  const int64_t listed =
      table.row_offsets ? table.row_offsets[tile + 1] - table.row_offsets[tile] : 0;
  const int64_t vectors = args.q.shape[3] / kVectorElements;
  for (int64_t i = tile * kBlockM; i < (tile + 1) * kBlockM && i < args.nq; ++i) {
    const uint4 *source = reinterpret_cast<const uint4 *>(row(args.q, b, i, h));
    uint4 *target = reinterpret_cast<uint4 *>(row(args.o, b, i, h));
    for (int64_t c = threadIdx.x; c < vectors; c += blockDim.x)
      target[c] = source[c];
    if (threadIdx.x == 0) {
      float *lse = static_cast<float *>(args.lse.data);
      lse[b * args.lse.strides[0] + h * args.lse.strides[1] + i * args.lse.strides[2]] =
          blockDim.x == static_cast<unsigned>(args.num_threads) ? 1000.0f * listed + marker
                                                                 : -1.0f;
    }
  }
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

/// The copy kernel's source for the packages here.
std::string copySource() {
  return substitute(kCopySource, {{"BLOCK_M", kBlockM}, {"SHARED_BYTES", kSharedBytes}});
}

/// The capacity of a mask's runtime global list, as the emitter records it.
int64_t runtimeCapacity(const mask::Mask &m) {
  int64_t capacity = m.kind == mask::Kind::GlobalRuntime ? m.runtimeMax : 0;
  for (const mask::Mask &child : m.children)
    capacity = std::max(capacity, runtimeCapacity(child));
  return capacity;
}

/// The manifest attnc --emit=package writes for a CUDA kernel of a spec
/// (runtime/README.md, format version 1 with the CUDA fields).
Json makeCudaManifest(const std::string &specText, const std::string &source) {
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
  m["target"] = "cuda";
  m["name"] = s.name;
  m["spec"] = Json::parse(spec::toJson(s));
  m["spec_hash"] = hashString(m["spec"].dump());
  m["source"] = {{"file", "kernel.cu"}, {"hash", hashString(source)}};
  m["entry"] = ATTNC_CUDA_FORWARD_SYMBOL;
  m["dtype"] = dtype;
  m["head_dim"] = s.headDim;
  m["heads"] = {{"query", s.queryHeads}, {"kv", s.kvHeads}};
  m["seq_len"] = {{"q", s.seqLenQ ? Json(*s.seqLenQ) : Json()},
                  {"kv", s.seqLenKV ? Json(*s.seqLenKV) : Json()}};
  m["tile"] = {{"block_m", kBlockM}, {"block_n", kBlockN}};
  if (std::optional<mask::Band> band = mask::bandOf(canonical))
    m["schedule"] = {
        {"kind", "band"}, {"lo", band->lo}, {"hi", band->hi}, {"period", band->period}};
  else
    m["schedule"] = {{"kind", "table"}};
  m["runtime_global_tokens"] = runtimeCapacity(s.mask);
  m["launch"] = {{"grid", {"query_tiles", "heads.query", "batch"}},
                 {"query_tiles", "ceil(seq_len.q / tile.block_m)"},
                 {"threads_per_block", kThreads},
                 {"shared_bytes", kSharedBytes}};
  auto tensor = [&](const char *name, const char *length, int64_t heads) {
    return Json{{"name", name}, {"dtype", dtype}, {"shape", {"batch", length, heads, s.headDim}}};
  };
  m["arguments"] = Json::array(
      {tensor("q", "seq_len.q", s.queryHeads),
       tensor("k", "seq_len.kv", s.kvHeads),
       tensor("v", "seq_len.kv", s.kvHeads),
       tensor("o", "seq_len.q", s.queryHeads),
       {{"name", "lse"}, {"dtype", "fp32"}, {"shape", {"batch", s.queryHeads, "seq_len.q"}}}});
  return m;
}

/// Threads of a Hopper warpgroup: the block size of the wgmma packages here
/// (wgmma instructions are issued by whole warpgroups).
constexpr int64_t kWarpgroupThreads = 128;

/// makeCudaManifest's manifest for a Hopper wgmma forward, as attnc --arch
/// sm_90a writes it: tile.mma "wgmma" and launch.arch "sm_90a".
Json makeWgmmaManifest(const std::string &specText, const std::string &source) {
  Json m = makeCudaManifest(specText, source);
  m["tile"]["mma"] = "wgmma";
  m["launch"]["threads_per_block"] = kWarpgroupThreads;
  m["launch"]["arch"] = "sm_90a";
  return m;
}

/// Adds a CUDA backward section to `m` (runtime/README.md, "Backward"): dQ by
/// the separate pass (`deterministic`) or atomics, dkdv tiles of
/// kBackwardBlockN keys, no group split.
constexpr int64_t kBackwardBlockN = 64;
void addCudaBackward(Json &m, bool deterministic) {
  const Json queryGrid = {"query_tiles", "heads.query", "batch"};
  auto kernel = [](const char *entry, const Json &grid, int64_t threads, int64_t shared) {
    return Json{{"entry", entry}, {"grid", grid}, {"threads_per_block", threads},
                {"shared_bytes", shared}};
  };
  Json kernels;
  kernels["preprocess"] = kernel(ATTNC_CUDA_BACKWARD_PREPROCESS_SYMBOL, queryGrid, 128, 0);
  kernels["dkdv"] = kernel(ATTNC_CUDA_BACKWARD_DKDV_SYMBOL, {"kv_tiles", "heads.kv", "batch"},
                           256, 65536);
  kernels["dkdv"]["block_n"] = kBackwardBlockN;
  kernels["dkdv"]["group_splits"] = 1;
  if (deterministic)
    kernels["dq"] = kernel(ATTNC_CUDA_BACKWARD_DQ_SYMBOL, queryGrid, 128, 49152);
  else
    kernels["dq_convert"] = kernel(ATTNC_CUDA_BACKWARD_DQ_CONVERT_SYMBOL, queryGrid, 128, 0);
  m["backward"] = {{"dq", deterministic ? "separate" : "atomic"}, {"kernels", kernels}};
}

/// The copy kernel with a wgmma.fence first: PTX that exists only for the
/// arch-specific Hopper target sm_90a (ptxas rejects it for sm_90).
std::string wgmmaCopySource() {
  std::string source = copySource();
  const std::string body = "  extern __shared__ uint4 shared[];";
  const size_t at = source.find(body);
  EXPECT_NE(at, std::string::npos);
  source.insert(at, "  // Hopper's warpgroup MMA fence: sm_90a only.\n"
                    "  asm volatile(\"wgmma.fence.sync.aligned;\\n\" ::: \"memory\");\n");
  return source;
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

/// A directory of the test's own under $TMPDIR (else /tmp), removed at the end.
class Scratch {
public:
  Scratch() {
    const char *base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/attnrt-cuda-test-XXXXXX";
    EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
    path_ = pattern;
  }
  ~Scratch() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

/// The files of a directory (names), sorted; none if it does not exist.
std::vector<std::string> filesIn(const std::string &dir) {
  std::vector<std::string> names;
  std::error_code ignored;
  for (const auto &entry : fs::directory_iterator(dir, ignored))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

/// Loads a package from memory, expecting success.
attnrt_package *fromMemory(const Json &manifest, const std::string &source) {
  attnrt_package *package = nullptr;
  EXPECT_EQ(attnrt_package_from_memory(manifest.dump().c_str(), source.c_str(), &package),
            ATTNRT_OK)
      << attnrt_last_error();
  return package;
}

/// Loads a manifest expecting a package error; returns the message.
std::string manifestError(const Json &manifest, const std::string &source) {
  attnrt_package *package = nullptr;
  EXPECT_EQ(attnrt_package_from_memory(manifest.dump().c_str(), source.c_str(), &package),
            ATTNRT_ERROR_PACKAGE)
      << attnrt_last_error();
  EXPECT_EQ(package, nullptr);
  return attnrt_last_error();
}

/// Compile options for a cache directory (`dir` must outlive them).
attnrt_compile_options cacheOptions(const char *dir) {
  attnrt_compile_options options{};
  options.cache_dir = dir;
  return options;
}

/// The path after "the source with line numbers: " in an NVRTC failure.
std::string dumpedPath(const std::string &message) {
  const std::string label = "the source with line numbers: ";
  size_t at = message.find(label);
  if (at == std::string::npos)
    return "";
  std::string path = message.substr(at + label.size());
  return path.substr(0, path.find('\n'));
}

//===----------------------------------------------------------------------===//
// The GPU, through the driver API (dlopen'ed, as the runtime does)
//===----------------------------------------------------------------------===//

using CUresult = int;
using CUdeviceptr = unsigned long long;

/// The driver calls the GPU tests make, and whether there is a GPU to make them on.
struct Gpu {
  bool present = false;
  std::string why; ///< why not, for GTEST_SKIP
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGet)(int *, int);
  CUresult (*cuDeviceGetAttribute)(int *, int, int);
  CUresult (*cuDevicePrimaryCtxRetain)(void **, int);
  CUresult (*cuCtxSetCurrent)(void *);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*cuStreamCreate)(void **, unsigned);
  CUresult (*cuStreamSynchronize)(void *);
  CUresult (*cuStreamDestroy)(void *);
};

/// Finds the GPU once: libcuda.so.1, cuInit, a device; makes device 0's
/// primary context current on the test's thread (as cudaSetDevice(0) would).
const Gpu &gpu() {
  static const Gpu found = [] {
    Gpu g;
    void *library = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
      g.why = "libcuda.so.1 not found";
      return g;
    }
    auto load = [&](auto &slot, const char *name) {
      slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(::dlsym(library, name));
      return slot != nullptr;
    };
    if (!(load(g.cuInit, "cuInit") && load(g.cuDeviceGetCount, "cuDeviceGetCount") &&
          load(g.cuDeviceGet, "cuDeviceGet") &&
          load(g.cuDeviceGetAttribute, "cuDeviceGetAttribute") &&
          load(g.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain") &&
          load(g.cuCtxSetCurrent, "cuCtxSetCurrent") && load(g.cuMemAlloc, "cuMemAlloc_v2") &&
          load(g.cuMemFree, "cuMemFree_v2") && load(g.cuMemcpyHtoD, "cuMemcpyHtoD_v2") &&
          load(g.cuMemcpyDtoH, "cuMemcpyDtoH_v2") && load(g.cuStreamCreate, "cuStreamCreate") &&
          load(g.cuStreamSynchronize, "cuStreamSynchronize") &&
          load(g.cuStreamDestroy, "cuStreamDestroy_v2"))) {
      g.why = "libcuda.so.1 lacks a driver function the tests call";
      return g;
    }
    int count = 0, device = 0;
    void *context = nullptr;
    if (CUresult r = g.cuInit(0)) {
      g.why = "cuInit failed with CUDA error " + std::to_string(r);
    } else if (g.cuDeviceGetCount(&count) != 0 || count == 0) {
      g.why = "no CUDA device";
    } else if (g.cuDeviceGet(&device, 0) || g.cuDevicePrimaryCtxRetain(&context, device) ||
               g.cuCtxSetCurrent(context)) {
      g.why = "device 0's primary context cannot be made current";
    } else {
      g.present = true;
    }
    return g;
  }();
  return found;
}

#define REQUIRE_GPU()                                                                              \
  do {                                                                                             \
    if (!gpu().present)                                                                            \
      GTEST_SKIP() << "no GPU: " << gpu().why;                                                     \
  } while (0)

/// Device memory for `bytes`, freed at the end.
class DeviceBuffer {
public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    EXPECT_EQ(gpu().cuMemAlloc(&pointer_, bytes), 0);
  }
  ~DeviceBuffer() { gpu().cuMemFree(pointer_); }
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;

  void *get() const { return reinterpret_cast<void *>(pointer_); }
  size_t bytes() const { return bytes_; }
  template <typename T> void upload(const std::vector<T> &host) {
    ASSERT_EQ(host.size() * sizeof(T), bytes_);
    ASSERT_EQ(gpu().cuMemcpyHtoD(pointer_, host.data(), bytes_), 0);
  }
  template <typename T> std::vector<T> download() const {
    std::vector<T> host(bytes_ / sizeof(T));
    EXPECT_EQ(gpu().cuMemcpyDtoH(host.data(), pointer_, bytes_), 0);
    return host;
  }

private:
  CUdeviceptr pointer_ = 0;
  size_t bytes_;
};

/// Contiguous bf16 tensors (lse fp32) of one launch on the device; q holds
/// seeded random bit patterns of finite bf16 values, o and lse are zeroed.
struct DeviceLaunch {
  int64_t batch, nq, nk, hq, hkv, dim;
  std::vector<uint16_t> q;
  DeviceBuffer dq, dk, dv, dout, dlse;
  attnc_tensor_view qv, kv, vv, ov, lv;

  DeviceLaunch(int64_t batch, int64_t nq, int64_t nk, int64_t hq, int64_t hkv, int64_t dim)
      : batch(batch), nq(nq), nk(nk), hq(hq), hkv(hkv), dim(dim),
        q(static_cast<size_t>(batch * nq * hq * dim)), dq(q.size() * 2),
        dk(static_cast<size_t>(batch * nk * hkv * dim) * 2), dv(dk.bytes()), dout(dq.bytes()),
        dlse(static_cast<size_t>(batch * hq * nq) * 4) {
    std::mt19937 rng(7);
    for (uint16_t &x : q)
      x = static_cast<uint16_t>(rng() & 0x3fff); // sign 0, exponent < 0x7f: finite
    dq.upload(q);
    dout.upload(std::vector<uint16_t>(q.size(), 0));
    dlse.upload(std::vector<float>(static_cast<size_t>(batch * hq * nq), 0.0f));
    qv = attnrt::contiguousView(dq.get(), ATTNC_DTYPE_BF16, {batch, nq, hq, dim});
    kv = attnrt::contiguousView(dk.get(), ATTNC_DTYPE_BF16, {batch, nk, hkv, dim});
    vv = attnrt::contiguousView(dv.get(), ATTNC_DTYPE_BF16, {batch, nk, hkv, dim});
    ov = attnrt::contiguousView(dout.get(), ATTNC_DTYPE_BF16, {batch, nq, hq, dim});
    lv = attnrt::contiguousView(dlse.get(), ATTNC_DTYPE_FP32, {batch, hq, nq});
  }

  attnrt_status run(attnrt_kernel *kernel, const std::vector<int64_t> &tokens = {}) {
    return attnrt_forward(kernel, &qv, &kv, &vv, &ov, &lv, tokens.empty() ? nullptr : tokens.data(),
                          static_cast<int64_t>(tokens.size()), 0);
  }
  std::vector<uint16_t> o() const { return dout.download<uint16_t>(); }
  std::vector<float> lse() const { return dlse.download<float>(); }
};

} // namespace

//===----------------------------------------------------------------------===//
// Packages: the CUDA manifest
//===----------------------------------------------------------------------===//

TEST(RuntimeCudaPackage, LoadsFromDirectoryAndMemory) {
  Scratch scratch;
  const std::string source = copySource();
  Json manifest = makeCudaManifest(kCausalSpec, source);
  fs::create_directories(scratch / "pkg");
  writeText(scratch / "pkg/manifest.json", manifest.dump(2));
  writeText(scratch / "pkg/kernel.cu", source);
  attnrt_package *package = nullptr;
  ASSERT_EQ(attnrt_package_load((scratch / "pkg").c_str(), &package), ATTNRT_OK)
      << attnrt_last_error();
  EXPECT_STREQ(attnrt_package_target(package), "cuda");
  EXPECT_EQ(std::string(attnrt_package_spec_json(package)), manifest["spec"].dump());
  attnrt_package_free(package);

  auto fromMemory =
      attnrt::Package::fromMemory(makeCudaManifest(kRuntimeGlobalSpec, source).dump(), source);
  ASSERT_TRUE(fromMemory) << fromMemory.status().message();
  EXPECT_EQ(fromMemory->target(), "cuda");
  EXPECT_STREQ(attnrt_package_target(nullptr), "");
}

TEST(RuntimeCudaPackage, EntryPointOfTheTarget) {
  const std::string source = copySource();
  Json m = makeCudaManifest(kCausalSpec, source);
  m["entry"] = "attnc_forward";
  EXPECT_HAS(manifestError(m, source), "entry: expected \"attnc_forward_kernel\" (the CUDA kernel "
                                       "ABI's entry point), got \"attnc_forward\"");
}

TEST(RuntimeCudaPackage, LaunchConfigurationIsChecked) {
  const std::string source = copySource();
  Json m = makeCudaManifest(kCausalSpec, source);
  m["launch"].erase("threads_per_block");
  EXPECT_HAS(manifestError(m, source), "missing required field launch.threads_per_block");
  m = makeCudaManifest(kCausalSpec, source);
  m["launch"]["threads_per_block"] = 2048;
  EXPECT_HAS(manifestError(m, source),
             "launch.threads_per_block: at most 1024 threads per CUDA block, got 2048");
  m = makeCudaManifest(kCausalSpec, source);
  m["launch"]["threads_per_block"] = 0;
  EXPECT_HAS(manifestError(m, source), "launch.threads_per_block: must be >= 1, got 0");
  m = makeCudaManifest(kCausalSpec, source);
  m["launch"]["shared_bytes"] = -1;
  EXPECT_HAS(manifestError(m, source), "launch.shared_bytes: must be >= 0, got -1");
  m = makeCudaManifest(kCausalSpec, source);
  m["launch"]["shared_bytes"] = "64K";
  EXPECT_HAS(manifestError(m, source), "launch.shared_bytes: expected an integer, got string");
  m = makeCudaManifest(kCausalSpec, source);
  m["launch"]["grid"] = {"batch", "heads.query", "query_tiles"};
  EXPECT_HAS(manifestError(m, source),
             "launch.grid: expected [\"query_tiles\",\"heads.query\",\"batch\"]");
  m = makeCudaManifest(kCausalSpec, source);
  m["launch"]["query_tiles"] = "ceil(seq_len.q / 64)";
  EXPECT_HAS(manifestError(m, source),
             "launch.query_tiles: expected \"ceil(seq_len.q / tile.block_m)\"");
}

//===----------------------------------------------------------------------===//
// Packages: the Hopper fields (launch.arch, tile.mma, backward block_m)
//===----------------------------------------------------------------------===//

TEST(RuntimeCudaPackage, LaunchArchAndMmaLoad) {
  const std::string source = copySource();
  // A Hopper wgmma forward, and the other architectures launch.arch may name.
  for (const char *arch : {"sm_90a", "sm_80", "sm_90", "sm_100a", "sm_120"}) {
    Json m = makeWgmmaManifest(kCausalSpec, source);
    m["launch"]["arch"] = arch;
    if (std::string(arch) != "sm_90a")
      m["tile"]["mma"] = "sync";
    attnrt_package *package = fromMemory(m, source);
    EXPECT_NE(package, nullptr) << arch;
    attnrt_package_free(package);
  }
  // A portable package written before the fields existed, and one with "sync".
  Json m = makeCudaManifest(kCausalSpec, source);
  m["tile"]["mma"] = "sync";
  attnrt_package_free(fromMemory(m, source));
}

TEST(RuntimeCudaPackage, LaunchArchIsChecked) {
  const std::string source = copySource();
  Json m = makeWgmmaManifest(kCausalSpec, source);
  m["launch"]["arch"] = 90;
  EXPECT_HAS(manifestError(m, source), "launch.arch: expected a string, got number 90");
  for (const char *bad : {"hopper", "sm_90f", "sm_9", "sm_1000", "compute_90a", "SM_90A", "sm_9x",
                          "sm_90aa", ""}) {
    m["launch"]["arch"] = bad;
    EXPECT_HAS(manifestError(m, source),
               std::string("launch.arch: expected a GPU architecture \"sm_XY\" with an optional "
                           "'a' (\"sm_90a\"), got \"") +
                   bad + "\"");
  }
  // CPU packages have no GPU architecture.
  Json cpu = makeCudaManifest(kCausalSpec, "");
  cpu["target"] = "cpu";
  cpu["entry"] = ATTNC_FORWARD_SYMBOL;
  cpu["source"]["file"] = "kernel.cpp";
  cpu["launch"]["arch"] = "sm_90a";
  EXPECT_HAS(manifestError(cpu, ""),
             "launch.arch: a cpu package has no GPU architecture, got string \"sm_90a\"");
}

TEST(RuntimeCudaPackage, TileMmaIsChecked) {
  const std::string source = copySource();
  Json m = makeWgmmaManifest(kCausalSpec, source);
  m["tile"]["mma"] = "mfma";
  EXPECT_HAS(manifestError(m, source), "tile.mma: expected \"sync\" or \"wgmma\", got \"mfma\"");
  m["tile"]["mma"] = 1;
  EXPECT_HAS(manifestError(m, source), "tile.mma: expected a string, got number 1");
  // wgmma is sm_90a code: launch.arch must say so.
  m = makeWgmmaManifest(kCausalSpec, source);
  m["launch"].erase("arch");
  EXPECT_HAS(manifestError(m, source), "tile.mma: \"wgmma\" (Hopper warpgroup MMA) needs "
                                       "launch.arch \"sm_90a\", got none (a portable kernel)");
  m["launch"]["arch"] = "sm_90";
  EXPECT_HAS(manifestError(m, source), "tile.mma: \"wgmma\" (Hopper warpgroup MMA) needs "
                                       "launch.arch \"sm_90a\", got \"sm_90\"");
  Json cpu = makeCudaManifest(kCausalSpec, "");
  cpu["target"] = "cpu";
  cpu["entry"] = ATTNC_FORWARD_SYMBOL;
  cpu["source"]["file"] = "kernel.cpp";
  cpu["tile"]["mma"] = "wgmma";
  EXPECT_HAS(manifestError(cpu, ""),
             "tile.mma: \"wgmma\" is a Hopper GPU instruction; cpu packages use \"sync\"");
}

TEST(RuntimeCudaPackage, BackwardQueryKernelsMayNameTheirBlockM) {
  const std::string source = copySource();
  // Band schedule (causal): the backward of a wgmma forward keeps 64-row
  // tiles while the forward's are kBlockM; absent, block_m is tile.block_m.
  for (bool deterministic : {true, false}) {
    const char *dq = deterministic ? "dq" : "dq_convert";
    Json m = makeWgmmaManifest(kCausalSpec, source);
    addCudaBackward(m, deterministic);
    attnrt_package *package = fromMemory(m, source);
    EXPECT_EQ(attnrt_package_has_backward(package), 1);
    attnrt_package_free(package);
    m["backward"]["kernels"]["preprocess"]["block_m"] = 64;
    m["backward"]["kernels"][dq]["block_m"] = 64;
    package = fromMemory(m, source);
    EXPECT_EQ(attnrt_package_deterministic(package), deterministic ? 1 : 0);
    attnrt_package_free(package);

    m["backward"]["kernels"][dq]["block_m"] = 0;
    EXPECT_HAS(manifestError(m, source),
               std::string("backward.kernels.") + dq + ".block_m: must be >= 1, got 0");
    m["backward"]["kernels"][dq]["block_m"] = "64";
    EXPECT_HAS(manifestError(m, source), std::string("backward.kernels.") + dq +
                                             ".block_m: expected an integer, got string");
    m["backward"]["kernels"][dq]["block_m"] = 64;
    m["backward"]["kernels"]["preprocess"]["block_m"] = -16;
    EXPECT_HAS(manifestError(m, source),
               "backward.kernels.preprocess.block_m: must be >= 1, got -16");
  }
  // A table schedule with the deterministic dQ kernel: it walks the
  // forward's table, so every backward tile side must repeat the forward's.
  Json m = makeCudaManifest(kRuntimeGlobalSpec, source);
  addCudaBackward(m, true);
  m["backward"]["kernels"]["dkdv"]["block_n"] = kBlockN;
  m["backward"]["kernels"]["dq"]["block_m"] = kBlockM;
  attnrt_package_free(fromMemory(m, source));
  const std::string why = ") with a table schedule and dq \"separate\": the dQ kernel walks "
                          "the forward's table";
  m["backward"]["kernels"]["dq"]["block_m"] = 64;
  EXPECT_HAS(manifestError(m, source),
             "backward.kernels.dq.block_m: 64 must equal tile.block_m (16" + why);
  m["backward"]["kernels"]["dq"]["block_m"] = kBlockM;
  m["backward"]["kernels"]["preprocess"]["block_m"] = 64;
  EXPECT_HAS(manifestError(m, source),
             "backward.kernels.preprocess.block_m: 64 must equal tile.block_m (16" + why);
  m["backward"]["kernels"]["preprocess"]["block_m"] = kBlockM;
  m["backward"]["kernels"]["dkdv"]["block_n"] = 2 * kBlockN;
  EXPECT_HAS(manifestError(m, source), "backward.kernels.dkdv.block_n: " +
                                           std::to_string(2 * kBlockN) +
                                           " must equal tile.block_n (" +
                                           std::to_string(kBlockN) + why);
  // With atomic dQ the backward builds a table of its own tiles: any sides.
  Json atomic = makeCudaManifest(kRuntimeGlobalSpec, source);
  addCudaBackward(atomic, false);
  atomic["backward"]["kernels"]["dkdv"]["block_n"] = 2 * kBlockN;
  atomic["backward"]["kernels"]["preprocess"]["block_m"] = 64;
  atomic["backward"]["kernels"]["dq_convert"]["block_m"] = 64;
  attnrt_package_free(fromMemory(atomic, source));
}

//===----------------------------------------------------------------------===//
// Launch grids (LaunchGrid.h) and architectures (TargetArch.h), without a GPU
//===----------------------------------------------------------------------===//

/// A package as the loader leaves a wgmma forward with a backward: forward
/// tiles of 128 query rows, query-grid backward kernels of 64.
runtime::PackageData wgmmaPackageData() {
  runtime::PackageData p;
  p.name = "wg";
  p.target = runtime::Target::Cuda;
  p.queryHeads = 8;
  p.kvHeads = 2;
  p.blockM = 128;
  p.blockN = 128;
  p.mma = runtime::Mma::Wgmma;
  p.arch = "sm_90a";
  p.hasBackward = true;
  p.preprocess.blockM = 64;
  p.dq.blockM = 64;
  p.dqConvert.blockM = 64;
  p.dkdv.blockN = 128;
  p.dkdv.groupSplits = 2;
  return p;
}

TEST(RuntimeCudaLaunch, QueryGridKernelsTileByTheirOwnBlockM) {
  runtime::PackageData p = wgmmaPackageData();
  const int64_t batch = 3, nq = 1000, nk = 700;
  const runtime::Grid forward = runtime::forwardGrid(p, batch, nq);
  EXPECT_EQ(forward.x, 8); // ceil(1000 / 128)
  EXPECT_EQ(forward.y, 8);
  EXPECT_EQ(forward.z, 3);
  for (bool deterministic : {true, false}) {
    p.deterministic = deterministic;
    const runtime::BackwardGrids grids = runtime::backwardGrids(p, batch, nq, nk);
    EXPECT_EQ(grids.preprocess.x, 16); // ceil(1000 / 64)
    EXPECT_EQ(grids.preprocess.y, 8);
    EXPECT_EQ(grids.preprocess.z, 3);
    EXPECT_EQ(grids.dq.x, 16);
    EXPECT_EQ(grids.dq.y, 8);
    EXPECT_EQ(grids.dkdv.x, 6); // ceil(700 / 128)
    EXPECT_EQ(grids.dkdv.y, 4); // 2 kv heads x 2 splits
    EXPECT_EQ(grids.dkdvConvert.x, 6);
    EXPECT_EQ(grids.dkdvConvert.y, 2);
    EXPECT_EQ(grids.dkdvConvert.z, 3);
  }
  // Without block_m (packages of mma.sync forwards) the kernels tile by
  // tile.block_m; each query kernel by its own.
  p.preprocess.blockM = 0;
  p.dq.blockM = 32;
  p.deterministic = true;
  runtime::BackwardGrids grids = runtime::backwardGrids(p, batch, nq, nk);
  EXPECT_EQ(grids.preprocess.x, 8);
  EXPECT_EQ(grids.dq.x, 32); // ceil(1000 / 32)
  p.deterministic = false;
  p.dqConvert.blockM = 0;
  EXPECT_EQ(runtime::backwardGrids(p, batch, nq, nk).dq.x, 8);
  // Empty residue classes launch nothing.
  grids = runtime::backwardGrids(p, batch, 0, 0);
  EXPECT_EQ(grids.preprocess.x, 0);
  EXPECT_EQ(grids.dkdv.x, 0);
  EXPECT_EQ(runtime::forwardGrid(p, batch, 1).x, 1);
  EXPECT_EQ(runtime::forwardGrid(p, batch, 128).x, 1);
  EXPECT_EQ(runtime::forwardGrid(p, batch, 129).x, 2);
}

/// The backward's table tile (table schedules): the query-grid kernels' rows
/// by the dK/dV kernel's keys; the forward's tile for CPU packages and
/// packages without a backward.
TEST(RuntimeCudaLaunch, BackwardTableTileIsTheDkdvKernels) {
  runtime::PackageData p = wgmmaPackageData();
  EXPECT_EQ(runtime::backwardTableTile(p), std::make_pair(int64_t{64}, int64_t{128}));
  p.preprocess.blockM = 0; // no block_m: the forward's rows
  EXPECT_EQ(runtime::backwardTableTile(p), std::make_pair(int64_t{128}, int64_t{128}));
  p.dkdv.blockN = 64;
  EXPECT_EQ(runtime::backwardTableTile(p), std::make_pair(int64_t{128}, int64_t{64}));
  p.hasBackward = false;
  EXPECT_EQ(runtime::backwardTableTile(p), std::make_pair(int64_t{128}, int64_t{128}));
  p.hasBackward = true;
  p.target = runtime::Target::Cpu;
  EXPECT_EQ(runtime::backwardTableTile(p), std::make_pair(int64_t{128}, int64_t{128}));
}

TEST(RuntimeCudaArch, LaunchArchNames) {
  EXPECT_EQ(runtime::archNumber("sm_90a"), 90);
  EXPECT_EQ(runtime::archNumber("sm_80"), 80);
  EXPECT_EQ(runtime::archNumber("sm_100f"), 100);
  EXPECT_EQ(runtime::archNumber("sm_9"), -1);
  EXPECT_EQ(runtime::archNumber("sm_90b"), -1);
  EXPECT_EQ(runtime::archNumber("compute_90"), -1);
  EXPECT_TRUE(runtime::isLaunchArch("sm_90a"));
  EXPECT_TRUE(runtime::isLaunchArch("sm_120"));
  EXPECT_FALSE(runtime::isLaunchArch("sm_100f"));
  EXPECT_FALSE(runtime::isLaunchArch("sm_a"));
  EXPECT_EQ(runtime::computeCapability(90), "9.0");
  EXPECT_EQ(runtime::computeCapability(120), "12.0");
}

TEST(RuntimeCudaArch, Sm90aNeedsComputeCapability90) {
  const runtime::PackageData p = wgmmaPackageData();
  runtime::DeviceArch onH100 = runtime::archForDevice(p, "sm_90");
  EXPECT_EQ(onH100.arch, "sm_90a");
  EXPECT_EQ(onH100.problem, "");
  for (const char *other : {"sm_80", "sm_89", "sm_100", "sm_120"}) {
    runtime::DeviceArch elsewhere = runtime::archForDevice(p, other);
    EXPECT_EQ(elsewhere.arch, "");
    EXPECT_EQ(elsewhere.problem, std::string("kernel \"wg\" uses Hopper wgmma (launch.arch sm_90a) "
                                             "and needs a compute capability 9.0 GPU; this one "
                                             "is ") +
                                     other + "; rebuild the package without --arch sm_90a");
  }
  // Explicit architectures (attnrt_nvrtc_check, attnrt_nvrtc_compile).
  EXPECT_EQ(runtime::archArgumentProblem(p, "sm_90a"), "");
  EXPECT_EQ(runtime::archArgumentProblem(p, "sm_80"),
            "arch: the package's kernel needs sm_90a (launch.arch), got sm_80");
  EXPECT_EQ(runtime::archArgumentProblem(p, "sm_90"),
            "arch: the package's kernel needs sm_90a (launch.arch), got sm_90");
}

TEST(RuntimeCudaArch, PortableAndPlainArchs) {
  runtime::PackageData p = wgmmaPackageData();
  p.mma = runtime::Mma::Sync;
  p.arch = "";
  for (const char *device : {"sm_80", "sm_90", "sm_120"}) {
    EXPECT_EQ(runtime::archForDevice(p, device).arch, device);
    EXPECT_EQ(runtime::archArgumentProblem(p, device), "");
  }
  EXPECT_EQ(runtime::archArgumentProblem(p, "sm_90a"), "");
  // A plain launch.arch is the oldest architecture the kernel runs on.
  p.arch = "sm_90";
  EXPECT_EQ(runtime::archForDevice(p, "sm_100").arch, "sm_100");
  EXPECT_EQ(runtime::archForDevice(p, "sm_90").arch, "sm_90");
  EXPECT_EQ(runtime::archForDevice(p, "sm_86").problem,
            "kernel \"wg\" needs a compute capability 9.0 or newer GPU (launch.arch sm_90); this "
            "one is sm_86");
  EXPECT_EQ(runtime::archArgumentProblem(p, "sm_90a"), "");
  EXPECT_EQ(runtime::archArgumentProblem(p, "sm_100f"), "");
  EXPECT_EQ(runtime::archArgumentProblem(p, "sm_80"),
            "arch: the package's kernel needs sm_90 or newer (launch.arch), got sm_80");
  // Other arch-specific targets than Hopper's name no wgmma.
  p.arch = "sm_100a";
  EXPECT_EQ(runtime::archForDevice(p, "sm_90").problem,
            "kernel \"wg\" uses sm_100a-specific instructions (launch.arch sm_100a) and needs a "
            "compute capability 10.0 GPU; this one is sm_90; rebuild the package without --arch "
            "sm_100a");
}

//===----------------------------------------------------------------------===//
// Kernel creation: a clear message without a GPU
//===----------------------------------------------------------------------===//

TEST(RuntimeCudaKernel, CreationNeedsAGpu) {
  Scratch scratch;
  const std::string source = copySource();
  attnrt_package *package = fromMemory(makeCudaManifest(kCausalSpec, source), source);
  ASSERT_NE(package, nullptr);
  const std::string cache = scratch / "cache";
  attnrt_compile_options options = cacheOptions(cache.c_str());
  attnrt_kernel *kernel = nullptr;
  attnrt_status status = attnrt_kernel_create(package, &options, &kernel);
  if (gpu().present) {
    EXPECT_EQ(status, ATTNRT_OK) << attnrt_last_error();
  } else {
    EXPECT_EQ(status, ATTNRT_ERROR_UNSUPPORTED) << attnrt_last_error();
    EXPECT_EQ(kernel, nullptr);
    const std::string message = attnrt_last_error();
    EXPECT_TRUE(message.find("no CUDA driver (libcuda.so.1 not found)") == 0 ||
                message.find("no GPU: cuInit failed: ") == 0)
        << message;
    EXPECT_HAS(message, "cannot run CUDA kernel \"copy\" on this machine");
    EXPECT_TRUE(filesIn(cache).empty());
    std::cout << "[ no GPU  ] " << message << "\n";
  }
  attnrt_kernel_free(kernel);
  attnrt_package_free(package);
}

//===----------------------------------------------------------------------===//
// NVRTC without a GPU: attnrt_nvrtc_check
//===----------------------------------------------------------------------===//

/// A fixture with the copy kernel's package (table schedule).
class RuntimeCudaNvrtc : public ::testing::Test {
protected:
  void SetUp() override {
    package = fromMemory(makeCudaManifest(kRuntimeGlobalSpec, copySource()), copySource());
    ASSERT_NE(package, nullptr);
  }
  void TearDown() override { attnrt_package_free(package); }

  /// attnrt_nvrtc_check, skipping the test when there is no NVRTC on a
  /// machine the build found no CUDA toolkit on.
  attnrt_status check(const attnrt_package *p, const char *arch, attnrt_nvrtc_report &report) {
    attnrt_status status = attnrt_nvrtc_check(p, arch, &report);
    if (status == ATTNRT_ERROR_UNSUPPORTED && !ATTNRT_TEST_HAVE_CUDA_TOOLKIT)
      skipped = attnrt_last_error();
    return status;
  }

  attnrt_package *package = nullptr;
  std::string skipped;
};

TEST_F(RuntimeCudaNvrtc, ReportsRegistersAndNoSpillsForSm80AndSm90) {
  for (const char *arch : {"sm_80", "sm_90"}) {
    attnrt_nvrtc_report report{};
    attnrt_status status = check(package, arch, report);
    if (!skipped.empty())
      GTEST_SKIP() << "no NVRTC: " << skipped;
    ASSERT_EQ(status, ATTNRT_OK) << attnrt_last_error();
    EXPECT_STREQ(report.arch, arch);
    EXPECT_GE(report.nvrtc_major, 12);
    EXPECT_GT(report.registers, 0);
    EXPECT_LE(report.registers, 255);
    EXPECT_EQ(report.stack_frame_bytes, 0);
    EXPECT_EQ(report.spill_store_bytes, 0);
    EXPECT_EQ(report.spill_load_bytes, 0);
    EXPECT_GT(report.cubin_bytes, 0);
    std::cout << "[ nvrtc   ] copy kernel, " << report.arch << " (NVRTC " << report.nvrtc_major
              << "." << report.nvrtc_minor << "): " << report.registers << " registers, "
              << report.stack_frame_bytes << " bytes stack frame, " << report.spill_store_bytes
              << " bytes spill stores, " << report.spill_load_bytes << " bytes spill loads\n";
  }
}

TEST_F(RuntimeCudaNvrtc, SpillsAreReported) {
  // A per-thread array indexed at run time lives in local memory: a stack
  // frame the report must show (spills proper need register pressure that
  // ptxas versions resolve differently).
  const std::string source = R"(#include "kernel_abi.h"
extern "C" __global__ void attnc_forward_kernel(const __grid_constant__ attnc_forward_args args) {
  float local[64];
  for (int i = 0; i < 64; ++i)
    local[i] = static_cast<const float *>(args.lse.data)[i + threadIdx.x];
  local[args.nk % 64] += 1.0f;
  static_cast<float *>(args.lse.data)[threadIdx.x] = local[args.nq % 64];
}
)";
  attnrt_package *stack = fromMemory(makeCudaManifest(kCausalSpec, source), source);
  ASSERT_NE(stack, nullptr);
  attnrt_nvrtc_report report{};
  attnrt_status status = check(stack, "sm_90", report);
  if (!skipped.empty())
    GTEST_SKIP() << "no NVRTC: " << skipped;
  EXPECT_EQ(status, ATTNRT_OK) << attnrt_last_error();
  EXPECT_GE(report.stack_frame_bytes, 256);
  attnrt_package_free(stack);
}

TEST_F(RuntimeCudaNvrtc, SyntaxErrorGivesTheLogAndTheDumpedSource) {
  const std::string broken = "#include \"kernel_abi.h\"\n"
                             "extern \"C\" __global__ void attnc_forward_kernel(\n"
                             "    const __grid_constant__ attnc_forward_args args) {\n"
                             "  int x = 1\n"
                             "}\n";
  attnrt_package *bad = fromMemory(makeCudaManifest(kCausalSpec, broken), broken);
  ASSERT_NE(bad, nullptr);
  attnrt_nvrtc_report report{};
  attnrt_status status = check(bad, "sm_90", report);
  if (!skipped.empty())
    GTEST_SKIP() << "no NVRTC: " << skipped;
  EXPECT_EQ(status, ATTNRT_ERROR_COMPILE);
  const std::string message = attnrt_last_error();
  EXPECT_HAS(message, "kernel.cu: NVRTC ");
  EXPECT_HAS(message, "failed (NVRTC_ERROR_COMPILATION) on kernel \"copy\"");
  EXPECT_HAS(message, "--gpu-architecture=sm_90 -std=c++17 -lineinfo -I");
  EXPECT_HAS(message, "kernel.cu(5): error"); // NVRTC's own diagnostic, at the brace
  const std::string path = dumpedPath(message);
  ASSERT_FALSE(path.empty()) << message;
  EXPECT_TRUE(fs::exists(path)) << path;
  EXPECT_HAS(readText(path), "    4    int x = 1\n    5  }\n");
  fs::remove(path);
  attnrt_package_free(bad);
}

TEST_F(RuntimeCudaNvrtc, DumpSourceNamesTheFileOnStderr) {
  ::setenv("ATTNC_DUMP_SOURCE", "1", 1);
  testing::internal::CaptureStderr();
  attnrt_nvrtc_report report{};
  attnrt_status status = check(package, "sm_80", report);
  std::string err = testing::internal::GetCapturedStderr();
  ::unsetenv("ATTNC_DUMP_SOURCE");
  if (!skipped.empty())
    GTEST_SKIP() << "no NVRTC: " << skipped;
  ASSERT_EQ(status, ATTNRT_OK) << attnrt_last_error();
  std::smatch match;
  ASSERT_TRUE(std::regex_search(err, match,
                                std::regex("attnrt: kernel.cu of kernel \"copy_table\" with line "
                                           "numbers \\(ATTNC_DUMP_SOURCE=1\\): (\\S+)")))
      << err;
  const std::string path = match[1];
  EXPECT_HAS(readText(path), "    1  // Copy kernel of the runtime's CUDA tests.\n");
  fs::remove(path);
}

TEST_F(RuntimeCudaNvrtc, MissingEntryPoint) {
  const std::string source =
      "#include \"kernel_abi.h\"\n"
      "__global__ void forward(const __grid_constant__ attnc_forward_args) {}\n";
  attnrt_package *noEntry = fromMemory(makeCudaManifest(kCausalSpec, source), source);
  ASSERT_NE(noEntry, nullptr);
  attnrt_nvrtc_report report{};
  attnrt_status status = check(noEntry, "sm_90", report);
  if (!skipped.empty())
    GTEST_SKIP() << "no NVRTC: " << skipped;
  EXPECT_EQ(status, ATTNRT_ERROR_PACKAGE);
  EXPECT_HAS(attnrt_last_error(),
             "kernel.cu: the kernel NVRTC compiled for sm_90 has no entry point "
             "attnc_forward_kernel");
  attnrt_package_free(noEntry);
}

TEST_F(RuntimeCudaNvrtc, BadArguments) {
  attnrt_nvrtc_report report{};
  EXPECT_EQ(attnrt_nvrtc_check(package, "sm90", &report), ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_HAS(attnrt_last_error(), "arch: expected a GPU architecture sm_XY");
  EXPECT_EQ(attnrt_nvrtc_check(package, "compute_90", &report), ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(attnrt_nvrtc_check(nullptr, "sm_90", &report), ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(attnrt_last_error(), "package: is null");
  EXPECT_EQ(attnrt_nvrtc_check(package, "sm_90", nullptr), ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(attnrt_last_error(), "out: is null");

  // A CPU package is not NVRTC's.
  Json cpu = makeCudaManifest(kCausalSpec, "");
  cpu["target"] = "cpu";
  cpu["entry"] = ATTNC_FORWARD_SYMBOL;
  cpu["source"]["file"] = "kernel.cpp";
  attnrt_package *cpuPackage = fromMemory(cpu, "");
  ASSERT_NE(cpuPackage, nullptr);
  EXPECT_STREQ(attnrt_package_target(cpuPackage), "cpu");
  EXPECT_EQ(attnrt_nvrtc_check(cpuPackage, "sm_90", &report), ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_HAS(attnrt_last_error(), "attnrt_nvrtc_check compiles CUDA packages; kernel \"copy\" "
                                  "targets cpu");
  attnrt_package_free(cpuPackage);
}

TEST_F(RuntimeCudaNvrtc, CppLayer) {
  auto p =
      attnrt::Package::fromMemory(makeCudaManifest(kCausalSpec, copySource()).dump(), copySource());
  ASSERT_TRUE(p) << p.status().message();
  auto report = p->nvrtcCheck("sm_90");
  if (!report && report.status().code() == ATTNRT_ERROR_UNSUPPORTED &&
      !ATTNRT_TEST_HAVE_CUDA_TOOLKIT)
    GTEST_SKIP() << "no NVRTC: " << report.status().message();
  ASSERT_TRUE(report) << report.status().message();
  EXPECT_GT(report->registers, 0);
  auto bad = p->nvrtcCheck("sm9");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.status().code(), ATTNRT_ERROR_INVALID_ARGUMENT);
}

TEST_F(RuntimeCudaNvrtc, Sm90aPackagesCompileOnlyForSm90a) {
  const std::string source = wgmmaCopySource();
  attnrt_package *hopper = fromMemory(makeWgmmaManifest(kCausalSpec, source), source);
  ASSERT_NE(hopper, nullptr);
  attnrt_nvrtc_report report{};
  attnrt_status status = check(hopper, "sm_90a", report);
  if (!skipped.empty())
    GTEST_SKIP() << "no NVRTC: " << skipped;
  ASSERT_EQ(status, ATTNRT_OK) << attnrt_last_error();
  EXPECT_STREQ(report.arch, "sm_90a");
  EXPECT_GT(report.registers, 0);
  EXPECT_EQ(report.spill_store_bytes, 0);
  std::cout << "[ nvrtc   ] copy kernel with wgmma.fence, sm_90a: " << report.registers
            << " registers\n";
  // Any other architecture is refused before NVRTC runs, naming the argument.
  for (const char *arch : {"sm_80", "sm_90", "sm_100a"}) {
    EXPECT_EQ(check(hopper, arch, report), ATTNRT_ERROR_INVALID_ARGUMENT) << arch;
    EXPECT_EQ(attnrt_last_error(),
              std::string("arch: the package's kernel needs sm_90a (launch.arch), got ") + arch);
  }

  // attnrt_nvrtc_compile (attnc --emit=ptx|cubin --arch) follows the same rule.
  attnrt_nvrtc_output out{};
  ASSERT_EQ(attnrt_nvrtc_compile(hopper, "sm_90a", ATTNRT_NVRTC_PTX, 0, &out), ATTNRT_OK)
      << attnrt_last_error();
  const std::string ptx(out.data, out.size);
  EXPECT_HAS(ptx, ".target sm_90a");
  EXPECT_HAS(ptx, "wgmma.fence.sync.aligned");
  attnrt_nvrtc_output_release(&out);
  EXPECT_EQ(attnrt_nvrtc_compile(hopper, "sm_80", ATTNRT_NVRTC_CUBIN, 0, &out),
            ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(attnrt_last_error(),
               "arch: the package's kernel needs sm_90a (launch.arch), got sm_80");
  EXPECT_EQ(out.data, nullptr);
  attnrt_package_free(hopper);

  // The source really needs sm_90a: as a portable package, sm_90 fails in ptxas.
  attnrt_package *portable = fromMemory(makeCudaManifest(kCausalSpec, source), source);
  ASSERT_NE(portable, nullptr);
  EXPECT_EQ(check(portable, "sm_90", report), ATTNRT_ERROR_COMPILE);
  const std::string message = attnrt_last_error();
  EXPECT_HAS(message, "wgmma");
  fs::remove(dumpedPath(message));
  attnrt_package_free(portable);
}

TEST_F(RuntimeCudaNvrtc, PortablePackagesCompileForSm90aToo) {
  attnrt_nvrtc_report report{};
  attnrt_status status = check(package, "sm_90a", report);
  if (!skipped.empty())
    GTEST_SKIP() << "no NVRTC: " << skipped;
  ASSERT_EQ(status, ATTNRT_OK) << attnrt_last_error();
  EXPECT_STREQ(report.arch, "sm_90a");
  EXPECT_EQ(report.spill_store_bytes, 0);
}

//===----------------------------------------------------------------------===//
// attnrt_forward_async on CPU kernels: runs to completion, ignores the stream
//===----------------------------------------------------------------------===//

TEST(RuntimeCudaCpu, ForwardAsyncRunsCpuKernels) {
  const std::string source = R"(#include "kernel_abi.h"
extern "C" int attnc_forward(const attnc_forward_args *args) {
  ((float *)args->lse.data)[0] = 1234.5f;
  return 0;
}
)";
  Json m = makeCudaManifest(kCausalSpec, source);
  m["target"] = "cpu";
  m["entry"] = ATTNC_FORWARD_SYMBOL;
  m["source"]["file"] = "kernel.cpp";
  m["launch"] = {{"grid", {"batch", "heads.query", "query_tiles"}},
                 {"query_tiles", "ceil(seq_len.q / tile.block_m)"}};
  auto package = attnrt::Package::fromMemory(m.dump(), source);
  ASSERT_TRUE(package) << package.status().message();
  Scratch scratch;
  const std::string cache = scratch / "cache";
  attnrt_compile_options options = cacheOptions(cache.c_str());
  auto kernel = attnrt::Kernel::create(*package, &options);
  ASSERT_TRUE(kernel) << kernel.status().message();
  std::vector<uint16_t> q(2 * 3 * 4 * 64), k(2 * 5 * 2 * 64), v(k.size()), o(q.size());
  std::vector<float> lse(2 * 4 * 3);
  attnc_tensor_view qv = attnrt::contiguousView(q.data(), ATTNC_DTYPE_BF16, {2, 3, 4, 64});
  attnc_tensor_view kv = attnrt::contiguousView(k.data(), ATTNC_DTYPE_BF16, {2, 5, 2, 64});
  attnc_tensor_view vv = attnrt::contiguousView(v.data(), ATTNC_DTYPE_BF16, {2, 5, 2, 64});
  attnc_tensor_view ov = attnrt::contiguousView(o.data(), ATTNC_DTYPE_BF16, {2, 3, 4, 64});
  attnc_tensor_view lv = attnrt::contiguousView(lse.data(), ATTNC_DTYPE_FP32, {2, 4, 3});
  void *someStream = reinterpret_cast<void *>(0x1);
  attnrt::Status status = kernel->forwardAsync(qv, kv, vv, ov, lv, someStream);
  ASSERT_TRUE(status) << status.message();
  EXPECT_EQ(lse[0], 1234.5f);
  // The C API's checks are attnrt_forward's.
  qv.rank = 3;
  EXPECT_EQ(attnrt_forward_async(kernel->get(), &qv, &kv, &vv, &ov, &lv, nullptr, 0, 1, nullptr),
            ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_HAS(attnrt_last_error(), "q: expected 4 dimensions");
  EXPECT_EQ(attnrt_forward_async(nullptr, &qv, &kv, &vv, &ov, &lv, nullptr, 0, 1, nullptr),
            ATTNRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(attnrt_last_error(), "kernel: is null");
}

//===----------------------------------------------------------------------===//
// On a GPU: launches (skipped without one)
//===----------------------------------------------------------------------===//

/// A fixture with the copy kernel of a spec, compiled into a scratch cache.
class RuntimeCudaGpu : public ::testing::Test {
protected:
  void SetUp() override { REQUIRE_GPU(); }
  void TearDown() override {
    attnrt_kernel_free(kernel);
    attnrt_package_free(package);
  }

  /// Loads and compiles the copy kernel of `specText`.
  void create(const char *specText, const std::string &source = copySource()) {
    package = fromMemory(makeCudaManifest(specText, source), source);
    ASSERT_NE(package, nullptr);
    attnrt_compile_options options = cacheOptions(cache.c_str());
    ASSERT_EQ(attnrt_kernel_create(package, &options, &kernel), ATTNRT_OK) << attnrt_last_error();
  }

  /// Runs `launch`, expecting an invalid argument; returns the message.
  std::string invalid(DeviceLaunch &launch) {
    EXPECT_EQ(launch.run(kernel), ATTNRT_ERROR_INVALID_ARGUMENT);
    return attnrt_last_error();
  }

  Scratch scratch;
  const std::string cache = scratch / "cache";
  attnrt_package *package = nullptr;
  attnrt_kernel *kernel = nullptr;
};

TEST_F(RuntimeCudaGpu, CopyKernelRunsWithLargeSharedMemory) {
  create(kCausalSpec);
  DeviceLaunch launch(2, 100, 130, 4, 2, 64);
  ASSERT_EQ(launch.run(kernel), ATTNRT_OK) << attnrt_last_error();
  EXPECT_EQ(launch.o(), launch.q);
  for (float x : launch.lse())
    ASSERT_EQ(x, kSharedMarker); // no table; block size and 64 KiB of shared memory
}

TEST_F(RuntimeCudaGpu, ScheduleTablesLiveOnTheDevice) {
  create(kRuntimeGlobalSpec);
  const spec::LoadResult loaded = spec::loadSpecFromString(kRuntimeGlobalSpec, "spec.json");
  const mask::Mask canonical = mask::canonicalize(loaded.spec->mask);
  for (const std::vector<int64_t> &tokens :
       std::vector<std::vector<int64_t>>{{3, 70}, {}, {3, 70}}) {
    DeviceLaunch launch(1, 90, 120, 4, 2, 64);
    ASSERT_EQ(launch.run(kernel, tokens), ATTNRT_OK) << attnrt_last_error();
    std::vector<int64_t> sorted = tokens;
    mask::Extent extent{launch.nq, launch.nk, &sorted};
    runtime::ScheduleTable table = runtime::buildScheduleTable(canonical, extent, kBlockM, kBlockN);
    const std::vector<float> lse = launch.lse();
    for (int64_t h = 0; h < launch.hq; ++h)
      for (int64_t i = 0; i < launch.nq; ++i) {
        const int64_t tile = i / kBlockM;
        const float listed =
            static_cast<float>(table.rowOffsets[tile + 1] - table.rowOffsets[tile]);
        ASSERT_EQ(lse[h * launch.nq + i], 1000.0f * listed + kSharedMarker)
            << "head " << h << ", row " << i << ", tokens " << tokens.size();
      }
    EXPECT_EQ(launch.o(), launch.q);
  }
}

TEST_F(RuntimeCudaGpu, AsyncOnAStream) {
  create(kCausalSpec);
  void *stream = nullptr;
  ASSERT_EQ(gpu().cuStreamCreate(&stream, 0), 0);
  DeviceLaunch launch(1, 33, 33, 4, 2, 64);
  ASSERT_EQ(attnrt_forward_async(kernel, &launch.qv, &launch.kv, &launch.vv, &launch.ov, &launch.lv,
                                 nullptr, 0, 0, stream),
            ATTNRT_OK)
      << attnrt_last_error();
  ASSERT_EQ(gpu().cuStreamSynchronize(stream), 0);
  EXPECT_EQ(launch.o(), launch.q);
  attnrt::Status status = attnrt::Status::fromCall(attnrt_forward_async(
      kernel, &launch.qv, &launch.kv, &launch.vv, &launch.ov, &launch.lv, nullptr, 0, 0, nullptr));
  EXPECT_TRUE(status) << status.message();
  gpu().cuStreamSynchronize(nullptr);
  gpu().cuStreamDestroy(stream);
}

TEST_F(RuntimeCudaGpu, LaunchFromAThreadWithoutAContext) {
  // The runtime makes the kernel's context current for the call and
  // restores the thread's (none) afterwards.
  create(kCausalSpec);
  DeviceLaunch launch(1, 40, 40, 4, 2, 64);
  attnrt_status status = ATTNRT_ERROR_IO;
  std::string message;
  std::thread worker([&] {
    status = launch.run(kernel);
    message = attnrt_last_error();
  });
  worker.join();
  ASSERT_EQ(status, ATTNRT_OK) << message;
  EXPECT_EQ(launch.o(), launch.q);
}

TEST_F(RuntimeCudaGpu, HostPointerRejected) {
  create(kCausalSpec);
  DeviceLaunch launch(1, 8, 8, 4, 2, 64);
  std::vector<uint16_t> host(launch.q);
  launch.qv.data = host.data();
  EXPECT_EQ(invalid(launch), "q: host pointer given, expected device memory (cudaMalloc)");
  launch.qv.data = launch.dq.get();
  std::vector<float> hostLse(4 * 8);
  launch.lv.data = hostLse.data();
  EXPECT_EQ(invalid(launch), "lse: host pointer given, expected device memory (cudaMalloc)");
}

TEST_F(RuntimeCudaGpu, MisalignedPointerRejected) {
  create(kCausalSpec);
  DeviceLaunch launch(1, 8, 8, 4, 2, 64);
  launch.kv.data = static_cast<char *>(launch.dk.get()) + 2;
  EXPECT_HAS(invalid(launch), "k: data must be 16-byte aligned");
}

TEST_F(RuntimeCudaGpu, StridesMustBeWholeVectors) {
  create(kCausalSpec);
  DeviceLaunch launch(1, 8, 8, 4, 2, 64);
  launch.vv.shape[1] = 4; // room for a padded row stride within the buffer
  launch.kv.shape[1] = 4;
  launch.vv.strides[1] = 2 * 64 + 4;
  launch.vv.strides[0] = 4 * launch.vv.strides[1];
  EXPECT_HAS(invalid(launch), "v: stride 132 of dimension 1 (seq_len.kv) must be a multiple of "
                              "8 elements (16 bytes)");
}

TEST_F(RuntimeCudaGpu, DiskCacheHoldsTheCubin) {
  create(kCausalSpec);
  EXPECT_EQ(attnrt_kernel_from_cache(kernel), 0);
  std::vector<std::string> files = filesIn(cache);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(std::regex_match(files[0], std::regex("copy-cuda-sm[0-9]+-[0-9a-f]{16}\\.cubin")))
      << files[0];
  const std::string entry = cache + "/" + files[0];
  std::string bytes = readText(entry);
  EXPECT_EQ(bytes.substr(0, 4), "\x7f"
                                "ELF");
  EXPECT_EQ(bytes.substr(bytes.size() - 8), "ATTNCSUM");

  attnrt_kernel *again = nullptr;
  attnrt_compile_options options = cacheOptions(cache.c_str());
  ASSERT_EQ(attnrt_kernel_create(package, &options, &again), ATTNRT_OK) << attnrt_last_error();
  EXPECT_EQ(attnrt_kernel_from_cache(again), 1);
  attnrt_kernel_free(again);

  // A flipped byte is a miss: rebuilt, with a warning.
  bytes[bytes.size() / 2] ^= 0x20;
  writeText(entry, bytes);
  testing::internal::CaptureStderr();
  ASSERT_EQ(attnrt_kernel_create(package, &options, &again), ATTNRT_OK) << attnrt_last_error();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(attnrt_kernel_from_cache(again), 0);
  EXPECT_HAS(err, "cache entry " + entry + " corrupt: checksum mismatch; rebuilding it");
  DeviceLaunch launch(1, 20, 20, 4, 2, 64);
  ASSERT_EQ(launch.run(again), ATTNRT_OK) << attnrt_last_error();
  EXPECT_EQ(launch.o(), launch.q);
  attnrt_kernel_free(again);
}

TEST_F(RuntimeCudaGpu, CompileErrorCachesNothing) {
  const std::string broken = "#include \"kernel_abi.h\"\nthis is not CUDA\n";
  package = fromMemory(makeCudaManifest(kCausalSpec, broken), broken);
  ASSERT_NE(package, nullptr);
  attnrt_compile_options options = cacheOptions(cache.c_str());
  EXPECT_EQ(attnrt_kernel_create(package, &options, &kernel), ATTNRT_ERROR_COMPILE);
  const std::string message = attnrt_last_error();
  EXPECT_HAS(message, "kernel.cu(2): error");
  const std::string path = dumpedPath(message);
  EXPECT_TRUE(fs::exists(path)) << message;
  fs::remove(path);
  EXPECT_TRUE(filesIn(cache).empty());
}

TEST_F(RuntimeCudaGpu, Sm90aKernelRunsOnlyOnComputeCapability90) {
  const std::string source = wgmmaCopySource();
  package = fromMemory(makeWgmmaManifest(kCausalSpec, source), source);
  ASSERT_NE(package, nullptr);
  int device = 0, major = 0, minor = 0;
  ASSERT_EQ(gpu().cuDeviceGet(&device, 0), 0);
  constexpr int kComputeCapabilityMajor = 75, kComputeCapabilityMinor = 76; // CUdevice_attribute
  ASSERT_EQ(gpu().cuDeviceGetAttribute(&major, kComputeCapabilityMajor, device), 0);
  ASSERT_EQ(gpu().cuDeviceGetAttribute(&minor, kComputeCapabilityMinor, device), 0);
  attnrt_compile_options options = cacheOptions(cache.c_str());
  attnrt_status status = attnrt_kernel_create(package, &options, &kernel);
  if (major != 9 || minor != 0) {
    EXPECT_EQ(status, ATTNRT_ERROR_UNSUPPORTED);
    EXPECT_EQ(attnrt_last_error(),
              "kernel \"copy\" uses Hopper wgmma (launch.arch sm_90a) and needs a compute "
              "capability 9.0 GPU; this one is sm_" +
                  std::to_string(major) + std::to_string(minor) +
                  "; rebuild the package without --arch sm_90a");
    EXPECT_TRUE(filesIn(cache).empty());
    return;
  }
  ASSERT_EQ(status, ATTNRT_OK) << attnrt_last_error();
  // Compiled for sm_90a, and cached under that name.
  std::vector<std::string> files = filesIn(cache);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(std::regex_match(files[0], std::regex("copy-cuda-sm90a-[0-9a-f]{16}\\.cubin")))
      << files[0];
  DeviceLaunch launch(2, 100, 130, 4, 2, 64);
  ASSERT_EQ(launch.run(kernel), ATTNRT_OK) << attnrt_last_error();
  EXPECT_EQ(launch.o(), launch.q);
  for (float x : launch.lse())
    ASSERT_EQ(x, kSharedMarker);
  // The same source as a portable package is compiled for sm_90, which
  // has no wgmma: ptxas fails, and nothing more is cached.
  attnrt_package *portable = fromMemory(makeCudaManifest(kCausalSpec, source), source);
  attnrt_kernel *other = nullptr;
  EXPECT_EQ(attnrt_kernel_create(portable, &options, &other), ATTNRT_ERROR_COMPILE);
  fs::remove(dumpedPath(attnrt_last_error()));
  attnrt_kernel_free(other);
  attnrt_package_free(portable);
  EXPECT_EQ(filesIn(cache).size(), 1u);
}
