//===- Error.h - Failures and warnings inside libattnrt ---------*- C++ -*-===//
//
// Inside the library a failure is thrown as an Error carrying its C API status
// and a message that names the argument, field or file at fault. CApi.cpp
// catches every exception at the API boundary and turns it into the status and
// the thread's last-error message: no exception crosses the C API.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_ERROR_H
#define ATTNC_RUNTIME_LIB_ERROR_H

#include "attnc/runtime/attnrt.h"

#include <exception>
#include <string>

namespace attnc::runtime {

/// A failure of a runtime call: its status and readable message.
class Error : public std::exception {
public:
  Error(attnrt_status status, std::string message)
      : status_(status), message_(std::move(message)) {}
  attnrt_status status() const { return status_; }
  const char *what() const noexcept override { return message_.c_str(); }

private:
  attnrt_status status_;
  std::string message_;
};

/// Throws Error(status, message).
[[noreturn]] void fail(attnrt_status status, std::string message);

/// Prints "attnrt: warning: MESSAGE" to stderr the first time `key` is warned
/// about in this process; later warnings with the same key are dropped.
void warnOnce(const std::string &key, const std::string &message);

/// Prints "attnrt: MESSAGE" to stderr (the verbose option's trace).
void note(const std::string &message);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_ERROR_H
