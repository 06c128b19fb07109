//===- Output.h - All-or-nothing output files -------------------*- C++ -*-===//

#ifndef ATTNC_COMPILER_OUTPUT_H
#define ATTNC_COMPILER_OUTPUT_H

#include <string>

namespace attnc {

/// Writes `contents` to `path` ("-" is standard output) atomically: a
/// temporary file in the same directory, flushed and renamed over the path,
/// so a failure leaves no partial output. On failure returns false and sets
/// `error` to a message naming the path.
bool writeFileAtomically(const std::string &path, const std::string &contents,
                         std::string &error);

} // namespace attnc

#endif // ATTNC_COMPILER_OUTPUT_H
