//===- RuntimeTestHelper.cpp - A child process for the runtime tests -----===//
//
// Loads a package, creates its kernel with a given cache directory and runs
// it once, so that RuntimeTest can race two processes on one cache key and
// run as an unprivileged user. Linked with attnrt_static, so that a copy runs
// from any directory.
//
//   RuntimeTestHelper PACKAGE_DIR CACHE_DIR [CXX [GO_FILE]]
//
// CXX ("" for the default) is the compiler command; with GO_FILE it waits
// until that file exists before it starts. Prints "from_cache=0|1" and exits
// 0 when the kernel ran and wrote the marker kernels' value to lse[0].
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/attnrt.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

namespace {

/// The value the tests' marker kernels write to lse[0].
constexpr float kMarker = 1234.5f;

int failWith(const std::string &message) {
  std::fprintf(stderr, "RuntimeTestHelper: %s\n", message.c_str());
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 3 || argc > 5)
    return failWith("usage: RuntimeTestHelper PACKAGE_DIR CACHE_DIR [CXX [GO_FILE]]");
  if (argc == 5) {
    struct stat st;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (::stat(argv[4], &st) != 0) {
      if (std::chrono::steady_clock::now() > deadline)
        return failWith(std::string("no ") + argv[4] + " after 60 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  auto package = attnrt::Package::load(argv[1]);
  if (!package)
    return failWith(package.status().message());
  attnrt_compile_options options{};
  options.cache_dir = argv[2];
  options.cxx = argc >= 4 && *argv[3] ? argv[3] : nullptr;
  auto kernel = attnrt::Kernel::create(*package, &options);
  if (!kernel)
    return failWith(kernel.status().message());

  // One small launch shaped after the spec: B = 1, Nq = 3, Nk = 5.
  nlohmann::json spec = nlohmann::json::parse(package->specJson());
  const int64_t hq = spec["heads"]["query"], hkv = spec["heads"]["kv"], d = spec["head_dim"];
  const int64_t b = 1, nq = 3, nk = 5;
  std::vector<uint16_t> q(b * nq * hq * d), k(b * nk * hkv * d), v(k.size()), o(q.size());
  std::vector<float> lse(b * hq * nq);
  attnc_tensor_view qv = attnrt::contiguousView(q.data(), ATTNC_DTYPE_BF16, {b, nq, hq, d});
  attnc_tensor_view kv = attnrt::contiguousView(k.data(), ATTNC_DTYPE_BF16, {b, nk, hkv, d});
  attnc_tensor_view vv = attnrt::contiguousView(v.data(), ATTNC_DTYPE_BF16, {b, nk, hkv, d});
  attnc_tensor_view ov = attnrt::contiguousView(o.data(), ATTNC_DTYPE_BF16, {b, nq, hq, d});
  attnc_tensor_view lv = attnrt::contiguousView(lse.data(), ATTNC_DTYPE_FP32, {b, hq, nq});
  attnrt::Status status = kernel->forward(qv, kv, vv, ov, lv);
  if (!status)
    return failWith(status.message());
  if (lse[0] != kMarker)
    return failWith("the kernel did not write the marker to lse[0]");
  std::printf("from_cache=%d\n", kernel->fromCache() ? 1 : 0);
  return 0;
}
