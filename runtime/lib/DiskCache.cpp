//===- DiskCache.cpp - The on-disk cache of compiled kernels --------------===//

#include "DiskCache.h"

#include "Error.h"
#include "Files.h"

#include "attnc/runtime/hash.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace attnc::runtime {

namespace {

constexpr std::string_view kTrailerMagic = "ATTNCSUM";
constexpr size_t kTrailerSize = 8 + 8 + kTrailerMagic.size();
/// Longest name prefix kept in entry file names.
constexpr size_t kMaxNamePrefix = 64;

void putLE64(std::string &out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out += static_cast<char>((v >> (8 * i)) & 0xff);
}

uint64_t getLE64(std::string_view in) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(in[static_cast<size_t>(i)]);
  return v;
}

/// The value of environment variable `name` if set and not empty.
const char *env(const char *name) {
  const char *value = std::getenv(name);
  return value && *value ? value : nullptr;
}

/// mkdir -p; returns 0 or errno.
int makeDirectories(const std::string &dir) {
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    std::string prefix = dir.substr(0, slash);
    if (::mkdir(prefix.c_str(), 0777) != 0 && errno != EEXIST)
      return errno;
    if (slash == std::string::npos)
      break;
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0)
    return errno;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

} // namespace

std::string resolveCacheDir(const char *optionDir) {
  if (optionDir && *optionDir)
    return optionDir;
  if (const char *dir = env("ATTNC_CACHE_DIR"))
    return dir;
  if (const char *xdg = env("XDG_CACHE_HOME"))
    return std::string(xdg) + "/attnc";
  if (const char *home = env("HOME"))
    return std::string(home) + "/.cache/attnc";
  return "";
}

std::string prepareCacheDir(const std::string &dir) {
  if (int err = makeDirectories(dir))
    return "cannot create it: " + errorText(err);
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    return "cannot write there: " + errorText(errno);
  return "";
}

uint64_t cacheKey(const std::vector<std::string_view> &parts) {
  uint64_t h = fnv1a64("attnc-kernel-cache-key");
  for (std::string_view part : parts) {
    h = fnv1a64(std::to_string(part.size()) + ":", h);
    h = fnv1a64(part, h);
  }
  return h;
}

std::string safeFileName(const std::string &name) {
  std::string prefix;
  for (char c : name.substr(0, kMaxNamePrefix)) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
    prefix += plain ? c : '_';
  }
  return prefix;
}

std::string entryFileName(const std::string &name, const std::string &target, uint64_t key,
                          const std::string &extension) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(key));
  return safeFileName(name) + "-" + target + "-" + hex + extension;
}

std::string sealEntry(std::string_view object) {
  std::string entry(object);
  putLE64(entry, object.size());
  putLE64(entry, fnv1a64(object));
  entry += kTrailerMagic;
  return entry;
}

std::string checkEntry(std::string_view entry) {
  if (entry.size() < kTrailerSize ||
      entry.substr(entry.size() - kTrailerMagic.size()) != kTrailerMagic)
    return "no checksum trailer (truncated or not written by attnrt)";
  std::string_view trailer = entry.substr(entry.size() - kTrailerSize);
  uint64_t size = getLE64(trailer);
  uint64_t sum = getLE64(trailer.substr(8));
  std::string_view object = entry.substr(0, entry.size() - kTrailerSize);
  if (size != object.size())
    return "the trailer records " + std::to_string(size) + " bytes, the file holds " +
           std::to_string(object.size());
  if (fnv1a64(object) != sum)
    return "checksum mismatch";
  return "";
}

std::string_view entryObject(std::string_view entry) {
  return entry.substr(0, entry.size() - kTrailerSize);
}

std::string publishEntry(const std::string &dir, const std::string &fileName,
                         std::string_view bytes) {
  std::string temp = dir + "/." + fileName + ".tmp-XXXXXX";
  int fd = ::mkstemp(temp.data());
  if (fd < 0)
    return "cannot create a temporary file in " + dir + ": " + errorText(errno);
  int err = writeAll(fd, bytes);
  if (err == 0 && ::fchmod(fd, 0644) != 0)
    err = errno;
  if (err == 0 && ::fsync(fd) != 0)
    err = errno;
  if (::close(fd) != 0 && err == 0)
    err = errno;
  std::string entry = dir + "/" + fileName;
  if (err == 0 && ::rename(temp.c_str(), entry.c_str()) != 0)
    err = errno;
  if (err != 0) {
    ::unlink(temp.c_str());
    return "cannot write " + entry + ": " + errorText(err);
  }
  // Make the rename itself durable; failing to is no reason to give up.
  int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
  return "";
}

bool lookupCacheEntry(const char *optionDir, const std::string &fileName, bool verbose,
                      const std::string &fallback,
                      const std::function<std::string(const std::string &, std::string_view)> &load,
                      CacheSlot &slot) {
  slot.dir = resolveCacheDir(optionDir);
  slot.unusable = slot.dir.empty() ? "no cache directory: set ATTNC_CACHE_DIR, XDG_CACHE_HOME "
                                     "or HOME"
                                   : prepareCacheDir(slot.dir);
  slot.entry = slot.dir + "/" + fileName;
  if (!slot.unusable.empty()) {
    warnOnce("dir:" + slot.dir, "cache directory \"" + slot.dir + "\" is not usable (" +
                                    slot.unusable + "); " + fallback);
    return false;
  }
  std::string bytes, problem;
  int err = readFile(slot.entry, bytes);
  if (err == 0) {
    std::string corruption = checkEntry(bytes);
    problem = corruption.empty() ? "" : "corrupt: " + corruption;
    if (problem.empty()) {
      std::string refused = load(slot.entry, entryObject(bytes));
      if (refused.empty()) {
        if (verbose)
          note("cache hit: " + slot.entry);
        return true;
      }
      problem = "cannot be loaded: " + refused;
    }
  } else if (err != ENOENT) {
    problem = "cannot be read: " + errorText(err);
  }
  if (!problem.empty())
    warnOnce("entry:" + slot.entry,
             "cache entry " + slot.entry + " " + problem + "; rebuilding it");
  else if (verbose)
    note("cache miss: " + slot.entry);
  return false;
}

} // namespace attnc::runtime
