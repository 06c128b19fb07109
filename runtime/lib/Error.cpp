//===- Error.cpp - Failures and warnings inside libattnrt -----------------===//

#include "Error.h"

#include <cstdio>
#include <mutex>
#include <set>

namespace attnc::runtime {

void fail(attnrt_status status, std::string message) { throw Error(status, std::move(message)); }

void warnOnce(const std::string &key, const std::string &message) {
  static std::mutex mutex;
  static std::set<std::string> warned;
  std::lock_guard<std::mutex> lock(mutex);
  if (warned.insert(key).second)
    std::fprintf(stderr, "attnrt: warning: %s\n", message.c_str());
}

void note(const std::string &message) { std::fprintf(stderr, "attnrt: %s\n", message.c_str()); }

} // namespace attnc::runtime
