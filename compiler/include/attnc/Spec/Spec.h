//===- Spec.h - The attention spec, loaded from JSON ------------*- C++ -*-===//
//
// The in-memory form of a spec file (specs/README.md is the reference). The
// loader is free of MLIR: tools turn a Spec into IR (compiler/Spec/SpecToIR),
// and MLIR-free consumers (tests, the GPU machine) read specs directly.
//
// Every diagnostic carries FILE:LINE:COL and the JSON pointer of the field:
//   longformer.json:7:15: error: /mask/union/0/window/dilation: must be >= 1, got 0
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_SPEC_SPEC_H
#define ATTNC_SPEC_SPEC_H

#include "attnc/Mask/Mask.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace attnc::spec {

/// A position in a spec file, 1-based.
struct Location {
  std::string file;
  int64_t line = 0;
  int64_t column = 0;
};

enum class DType { BF16, FP16 };
const char *dtypeName(DType t);

/// A mask node with the source location of its JSON object and the JSON
/// pointer it was read from; children mirror Mask::children.
struct LocatedMask {
  Location loc;
  std::string pointer;
  std::vector<LocatedMask> children;
};

struct Spec {
  int64_t formatVersion = 1;
  std::string name;
  DType dtype = DType::BF16;
  int64_t headDim = 0;
  int64_t queryHeads = 0;
  int64_t kvHeads = 0;
  std::optional<int64_t> seqLenQ;  ///< absent: given at launch
  std::optional<int64_t> seqLenKV; ///< absent: given at launch
  double scale = 0;                ///< 1/sqrt(headDim) when the spec has none
  bool scaleGiven = false;
  bool backward = false;
  bool deterministic = false; ///< backward: dQ without atomics, bitwise reproducible
  mask::Mask mask;
  LocatedMask maskLoc;     ///< where each mask node came from
  Location loc;            ///< the top-level object
  std::map<std::string, Location> fieldLocs; ///< JSON pointer -> location

  /// The location of a field by JSON pointer, else of the top-level object.
  Location locationOf(const std::string &pointer) const;
};

enum class Severity { Error, Warning };

struct Diagnostic {
  Severity severity = Severity::Error;
  Location loc;
  std::string pointer; ///< JSON pointer of the field ("" for the document)
  std::string message;
  /// "FILE:LINE:COL: error: POINTER: MESSAGE" (the pointer part omitted if empty).
  std::string format() const;
};

struct LoadResult {
  std::optional<Spec> spec; ///< set only when there is no error
  std::vector<Diagnostic> diagnostics;
  bool ok() const { return spec.has_value(); }
};

/// Parse and validate a spec from text. `fileName` appears in diagnostics
/// and anchors relative paths (block_sparse "file").
LoadResult loadSpecFromString(const std::string &text, const std::string &fileName);

/// Read a file and parse it. Missing, unreadable and directory paths give a
/// diagnostic naming the path.
LoadResult loadSpecFromFile(const std::string &path);

/// The spec written back as canonical JSON text (used in manifests).
std::string toJson(const Spec &spec);

} // namespace attnc::spec

#endif // ATTNC_SPEC_SPEC_H
