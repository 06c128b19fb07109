//===- DiskCache.h - The on-disk cache of compiled kernels ------*- C++ -*-===//
//
// Where the cache lives, what its keys hash, and how an entry is sealed with
// a checksum, checked on read and published atomically. runtime/README.md
// ("Cache") documents the layout.
//
// An entry `<cache>/<name>-<target>-<key>.so` (CPU) or `.cubin` (CUDA, the
// target naming the architecture: "cuda-sm90") is the compiled object
// followed by a 24-byte trailer: the object's length and its FNV-1a 64 (both
// 64-bit little-endian), then the magic "ATTNCSUM". The dynamic loader ignores
// bytes past the ELF contents, so a sealed shared object is loaded as it is
// (a cubin is handed to the driver without its trailer); one file and one
// rename publish the object and its checksum together.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_DISKCACHE_H
#define ATTNC_RUNTIME_LIB_DISKCACHE_H

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace attnc::runtime {

/// The cache directory: `optionDir` if given, else $ATTNC_CACHE_DIR, else
/// $XDG_CACHE_HOME/attnc, else $HOME/.cache/attnc; "" when none applies.
std::string resolveCacheDir(const char *optionDir);

/// Creates `dir` and its parents if needed and checks that entries can be
/// written there; returns "" or why the directory is unusable.
std::string prepareCacheDir(const std::string &dir);

/// The cache key: FNV-1a 64 over each part, length-prefixed so that no two
/// lists of parts hash the same text.
uint64_t cacheKey(const std::vector<std::string_view> &parts);

/// `name` reduced to [A-Za-z0-9_.-] (others become '_'), at most 64 characters:
/// the readable part of file names made from a kernel's name.
std::string safeFileName(const std::string &name);

/// "<name>-<target>-<16 hex digits><extension>", the name reduced by safeFileName.
std::string entryFileName(const std::string &name, const std::string &target, uint64_t key,
                          const std::string &extension = ".so");

/// The object of a well-formed sealed entry (checkEntry passed): the entry
/// without its trailer.
std::string_view entryObject(std::string_view entry);

/// The compiled object followed by its trailer.
std::string sealEntry(std::string_view object);

/// "" if `entry` is a well-formed sealed entry, else what is wrong with it.
std::string checkEntry(std::string_view entry);

/// Publishes `bytes` as `dir`/`fileName`: a temporary file in `dir`, written,
/// fsynced, renamed over the entry, and the directory fsynced. Readers see
/// the old entry or the new one, never a partial file. Returns "" or the
/// reason it failed (nothing is left behind then).
std::string publishEntry(const std::string &dir, const std::string &fileName,
                         std::string_view bytes);

/// Where a kernel's cache entry lives, and whether the cache can be used.
struct CacheSlot {
  std::string dir;      ///< the cache directory ("" when none resolves)
  std::string entry;    ///< dir + "/" + the entry's file name
  std::string unusable; ///< why the directory cannot be used ("" when it can)
};

/// Looks up `fileName` in the cache directory chosen by `optionDir`: on a
/// valid entry calls `load(entryPath, object)`, whose non-empty result says
/// why the object cannot be loaded, and returns true when it loaded. A
/// corrupt, unreadable or unloadable entry is a miss, warned about once; an
/// unusable directory is warned about once with `fallback` (what happens
/// instead). Fills `slot` for publishing the rebuilt entry.
bool lookupCacheEntry(const char *optionDir, const std::string &fileName, bool verbose,
                      const std::string &fallback,
                      const std::function<std::string(const std::string &, std::string_view)> &load,
                      CacheSlot &slot);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_DISKCACHE_H
