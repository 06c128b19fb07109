//===- Flags.cpp - Command-line values shared by attnc's tools ------------===//

#include "attnc/Compiler/Flags.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

namespace attnc {

namespace {

/// Parses a positive decimal integer; false on anything else.
bool parsePositive(llvm::StringRef text, int64_t &value) {
  return !text.trim().getAsInteger(10, value) && value > 0;
}

} // namespace

std::string parseTileFlag(const std::string &text, int64_t &blockM, int64_t &blockN) {
  auto [m, n] = llvm::StringRef(text).split('x');
  if (!parsePositive(m, blockM) || !parsePositive(n, blockN))
    return "--tile=" + text + ": expected MxN, e.g. 128x64";
  for (int64_t size : {blockM, blockN})
    if (size < 16 || size > 256 || (size & (size - 1)))
      return "--tile=" + text + ": tile sides must be powers of two in [16, 256]";
  return "";
}

std::string parseSeqLenFlag(const std::string &text, int64_t &nq, int64_t &nk) {
  auto [first, second] = llvm::StringRef(text).split(',');
  if (!parsePositive(first, nq) || (!second.empty() && !parsePositive(second, nk)))
    return "--seq-len=" + text + ": expected NQ or NQ,NKV with positive integers";
  if (second.empty())
    nk = nq;
  return "";
}

std::string parseTokensFlag(const std::string &text, std::vector<int64_t> &tokens) {
  llvm::SmallVector<llvm::StringRef> parts;
  llvm::StringRef(text).split(parts, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef part : parts) {
    int64_t t = 0;
    if (part.trim().getAsInteger(10, t) || t < 0)
      return "--global-tokens=" + text + ": expected non-negative integers, got '" + part.str() +
             "'";
    tokens.push_back(t);
  }
  return "";
}

} // namespace attnc
