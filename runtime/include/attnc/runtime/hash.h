//===- hash.h - Content hashes of packages and cache entries ----*- C++ -*-===//
//
// FNV-1a, 64-bit: stable across platforms and versions, used for the spec and
// source hashes of a manifest, cache keys and cache-entry checksums. Not a
// cryptographic hash: it detects corruption and changes, not attacks.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_HASH_H
#define ATTNC_RUNTIME_HASH_H

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace attnc {

/// FNV-1a of `data`, continuing from `seed` (pass a previous hash to chain).
inline uint64_t fnv1a64(std::string_view data, uint64_t seed = 0xcbf29ce484222325ull) {
  uint64_t h = seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

/// "fnv1a64:" followed by 16 lower-case hex digits, as manifests write it.
inline std::string hashString(std::string_view data) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "fnv1a64:%016llx",
                static_cast<unsigned long long>(fnv1a64(data)));
  return buf;
}

} // namespace attnc

#endif // ATTNC_RUNTIME_HASH_H
