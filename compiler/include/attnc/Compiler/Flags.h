//===- Flags.h - Command-line values shared by attnc's tools ----*- C++ -*-===//
//
// The parsers of --tile, --seq-len and --global-tokens, shared by attnc and
// attnc-run so that both accept and reject exactly the same text. Each
// returns "" on success or a message naming the flag and what is expected.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_COMPILER_FLAGS_H
#define ATTNC_COMPILER_FLAGS_H

#include <cstdint>
#include <string>
#include <vector>

namespace attnc {

/// --tile=MxN: powers of two in [16, 256].
std::string parseTileFlag(const std::string &text, int64_t &blockM, int64_t &blockN);

/// --seq-len=NQ[,NKV]: positive integers; NKV defaults to NQ.
std::string parseSeqLenFlag(const std::string &text, int64_t &nq, int64_t &nk);

/// --global-tokens=T1,T2,...: non-negative integers.
std::string parseTokensFlag(const std::string &text, std::vector<int64_t> &tokens);

} // namespace attnc

#endif // ATTNC_COMPILER_FLAGS_H
