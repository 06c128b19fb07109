//===- Flags.cpp - Command-line values shared by attnc's tools ------------===//
//
// Plain C++ (no LLVM): attnc links it through libattnc, and the MLIR-free
// attnc-run of the GPU machine links the same library, AttncFlags.
//
//===----------------------------------------------------------------------===//

#include "attnc/Compiler/Flags.h"

#include <cerrno>
#include <cstdlib>

namespace attnc {

namespace {

/// `text` without leading and trailing whitespace (llvm::StringRef::trim).
std::string trim(const std::string &text) {
  const char *space = " \t\n\v\f\r";
  size_t begin = text.find_first_not_of(space);
  if (begin == std::string::npos)
    return "";
  return text.substr(begin, text.find_last_not_of(space) - begin + 1);
}

/// Parses all of the trimmed `text` as a base-10 integer (an optional '-',
/// then digits); false on anything else.
bool parseInteger(const std::string &text, int64_t &value) {
  const std::string t = trim(text);
  size_t digits = t.size() > 0 && t[0] == '-' ? 1 : 0;
  if (digits == t.size())
    return false;
  for (size_t i = digits; i < t.size(); ++i)
    if (t[i] < '0' || t[i] > '9')
      return false;
  errno = 0;
  long long parsed = std::strtoll(t.c_str(), nullptr, 10);
  if (errno != 0)
    return false;
  value = parsed;
  return true;
}

/// Parses a positive decimal integer; false on anything else.
bool parsePositive(const std::string &text, int64_t &value) {
  return parseInteger(text, value) && value > 0;
}

/// `text` split at the first `separator` (the second part empty if none).
std::pair<std::string, std::string> splitOnce(const std::string &text, char separator) {
  size_t at = text.find(separator);
  if (at == std::string::npos)
    return {text, ""};
  return {text.substr(0, at), text.substr(at + 1)};
}

} // namespace

std::string parseTileFlag(const std::string &text, int64_t &blockM, int64_t &blockN) {
  auto [m, n] = splitOnce(text, 'x');
  if (!parsePositive(m, blockM) || !parsePositive(n, blockN))
    return "--tile=" + text + ": expected MxN, e.g. 128x64";
  for (int64_t size : {blockM, blockN})
    if (size < 16 || size > 256 || (size & (size - 1)))
      return "--tile=" + text + ": tile sides must be powers of two in [16, 256]";
  return "";
}

std::string parseSeqLenFlag(const std::string &text, int64_t &nq, int64_t &nk) {
  auto [first, second] = splitOnce(text, ',');
  if (!parsePositive(first, nq) || (!second.empty() && !parsePositive(second, nk)))
    return "--seq-len=" + text + ": expected NQ or NQ,NKV with positive integers";
  if (second.empty())
    nk = nq;
  return "";
}

std::string parseTokensFlag(const std::string &text, std::vector<int64_t> &tokens) {
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos)
      end = text.size();
    const std::string part = text.substr(begin, end - begin);
    begin = end + 1;
    if (part.empty())
      continue;
    int64_t t = 0;
    if (!parseInteger(part, t) || t < 0)
      return "--global-tokens=" + text + ": expected non-negative integers, got '" + part + "'";
    tokens.push_back(t);
  }
  return "";
}

} // namespace attnc
