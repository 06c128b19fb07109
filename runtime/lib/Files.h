//===- Files.h - Whole-file reads and writes with errno results -*- C++ -*-===//
//
// POSIX file helpers that report failures as errno values, so that callers
// decide whether a failure is an error (a missing package file), a cache miss
// (a missing entry) or a warning (an unwritable cache directory).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_FILES_H
#define ATTNC_RUNTIME_LIB_FILES_H

#include <string>
#include <string_view>

namespace attnc::runtime {

/// Reads the whole file at `path` into `out`; returns 0 or the errno of the failure.
int readFile(const std::string &path, std::string &out);

/// Writes all of `bytes` to `fd`, retrying short writes; returns 0 or errno.
int writeAll(int fd, std::string_view bytes);

/// Creates (or truncates) `path` with mode 0644 and writes `bytes`; returns 0 or errno.
int writeFile(const std::string &path, std::string_view bytes);

/// strerror(err) as a string.
std::string errorText(int err);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_FILES_H
