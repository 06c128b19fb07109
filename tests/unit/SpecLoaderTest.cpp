//===- SpecLoaderTest.cpp - The spec loader: good specs and bad input -----===//
//
// Every bad input of the spec language gives one exact diagnostic,
// FILE:LINE:COL: error: POINTER: MESSAGE. The line and column numbers below
// were counted by hand from the test text, not copied from the loader: most
// cases edit one line of kBase, one field per line, so a column is the
// position of the offending token within that line. Then: good specs load to
// the expected fields and Mask trees, every example in specs/examples loads
// cleanly and survives toJson, and block layouts load from files.
//
//===----------------------------------------------------------------------===//

#include "attnc/Spec/Spec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace attnc::spec;
using attnc::mask::BigBirdParams;
using attnc::mask::Mask;
namespace fs = std::filesystem;

namespace {

using Messages = std::vector<std::string>;

/// A valid spec; tests replace its lines (1-based) to make bad ones.
const Messages kBase = {
    "{",
    "  \"attnc\": 1,",
    "  \"name\": \"t\",",
    "  \"dtype\": \"bf16\",",
    "  \"head_dim\": 64,",
    "  \"heads\": {\"query\": 8, \"kv\": 8},",
    "  \"mask\": {\"causal\": {}}",
    "}",
};

/// Line 6 with a sequence length of 256 added.
const char *kHeadsWithSeqLen =
    R"(  "heads": {"query": 8, "kv": 8}, "seq_len": {"q": 256, "kv": 256},)";

std::string joinLines(const Messages &lines) {
  std::string text;
  for (const std::string &line : lines)
    text += line + "\n";
  return text;
}

/// kBase with line `line` replaced by `text`.
std::string specWith(size_t line, const std::string &text) {
  Messages lines = kBase;
  lines.at(line - 1) = text;
  return joinLines(lines);
}

/// kBase with the mask line replaced, and seq_len 256 if asked.
std::string specWithMask(const std::string &maskLine, bool withSeqLen = false) {
  Messages lines = kBase;
  lines[6] = maskLine;
  if (withSeqLen)
    lines[5] = kHeadsWithSeqLen;
  return joinLines(lines);
}

Messages format(const LoadResult &result) {
  Messages out;
  for (const Diagnostic &d : result.diagnostics)
    out.push_back(d.format());
  return out;
}

/// The formatted diagnostics of a spec named spec.json; checks that a spec
/// comes back exactly when no diagnostic is an error.
Messages diagnose(const std::string &text) {
  LoadResult result = loadSpecFromString(text, "spec.json");
  bool hasError = std::any_of(result.diagnostics.begin(), result.diagnostics.end(),
                              [](const Diagnostic &d) { return d.severity == Severity::Error; });
  EXPECT_EQ(result.ok(), !hasError);
  return format(result);
}

/// The spec of a text that must load without any diagnostic.
Spec loadGood(const std::string &text) {
  LoadResult result = loadSpecFromString(text, "spec.json");
  EXPECT_EQ(format(result), Messages{});
  EXPECT_TRUE(result.ok());
  return result.ok() ? *result.spec : Spec{};
}

/// A fresh directory under the system's temp directory, removed afterwards.
class TempDir {
public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("attnc-spec-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string write(const std::string &name, const std::string &text) const {
    std::string file = (path_ / name).string();
    std::ofstream(file) << text;
    return file;
  }
  std::string path() const { return path_.string(); }

private:
  static inline int counter_ = 0;
  fs::path path_;
};

//===----------------------------------------------------------------------===//
// Syntax
//===----------------------------------------------------------------------===//

TEST(SpecSyntax, TruncatedJson) {
  // The seven first lines, no closing brace: the end is 7:25.
  Messages lines(kBase.begin(), kBase.begin() + 7);
  std::string text = joinLines(lines);
  text.pop_back();
  EXPECT_EQ(diagnose(text),
            Messages{"spec.json:7:25: error: syntax error while parsing object - unexpected end "
                     "of input; expected '}'"});
  // Cut inside a string.
  EXPECT_EQ(diagnose("{\n  \"attnc\": 1,\n  \"name\": \"t"),
            Messages{"spec.json:3:13: error: syntax error while parsing value - invalid string: "
                     "missing closing quote"});
  EXPECT_EQ(diagnose(""), Messages{"spec.json:1:1: error: the spec is empty: expected a JSON object"});
}

TEST(SpecSyntax, TrailingGarbage) {
  EXPECT_EQ(diagnose(joinLines(kBase) + "garbage"),
            Messages{"spec.json:9:1: error: syntax error while parsing value - invalid literal; "
                     "expected end of input"});
  EXPECT_EQ(diagnose(specWith(8, "}}")),
            Messages{"spec.json:8:2: error: syntax error while parsing value - unexpected '}'; "
                     "expected end of input"});
}

TEST(SpecSyntax, DuplicateKey) {
  EXPECT_EQ(
      diagnose(specWith(5, R"(  "head_dim": 64, "head_dim": 64,)")),
      Messages{"spec.json:5:19: error: /head_dim: duplicate key \"head_dim\" (first at 5:3)"});
}

TEST(SpecSyntax, NumberOverflow) {
  EXPECT_EQ(diagnose(specWith(5, R"(  "head_dim": 64, "scale": 1e400,)")),
            Messages{"spec.json:5:28: error: number overflow parsing '1e400'"});
}

TEST(SpecSyntax, NestingLimit) {
  // Under the root object, array 512 would be the 513th level: refused. The
  // first bracket is at column 10, so that one is at column 521.
  std::string text = "{\"mask\": " + std::string(600, '[') + std::string(600, ']') + "}";
  EXPECT_EQ(diagnose(text),
            Messages{"spec.json:1:521: error: arrays and objects nest deeper than 512 levels"});
}

//===----------------------------------------------------------------------===//
// Top-level fields
//===----------------------------------------------------------------------===//

TEST(SpecFields, UnknownKeyListsAllowedKeys) {
  EXPECT_EQ(diagnose(specWith(5, R"(  "head_dim": 64, "causal": true,)")),
            Messages{"spec.json:5:19: error: /causal: unknown key \"causal\" (allowed: attnc, "
                     "name, dtype, head_dim, heads, seq_len, scale, mask, backward, deterministic)"});
  EXPECT_EQ(
      diagnose(specWithMask(R"(  "mask": {"window": {"left": 4, "right": 0, "dilaton": 2}})")),
      Messages{"spec.json:7:46: error: /mask/window/dilaton: unknown key \"dilaton\" "
               "(allowed: left, right, dilation)"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"full": {"x": 1}})")),
            Messages{"spec.json:7:21: error: /mask/full/x: unknown key \"x\" (allowed: none)"});
  // Keys with / and ~ are escaped in the pointer.
  EXPECT_EQ(diagnose(specWith(5, R"(  "head_dim": 64, "a/b~c": 1,)")),
            Messages{"spec.json:5:19: error: /a~1b~0c: unknown key \"a/b~c\" (allowed: attnc, "
                     "name, dtype, head_dim, heads, seq_len, scale, mask, backward, deterministic)"});
}

TEST(SpecFields, ColumnsAfterEscapesAndMultibyteText) {
  // "a\"b\\" spans columns 11-18; columns count bytes, and é takes two.
  EXPECT_EQ(diagnose(specWith(3, R"(  "name": "a\"b\\", "zz": 1,)")),
            Messages{"spec.json:3:21: error: /zz: unknown key \"zz\" (allowed: attnc, name, "
                     "dtype, head_dim, heads, seq_len, scale, mask, backward, deterministic)"});
  EXPECT_EQ(diagnose(specWith(3, "  \"name\": \"\xC3\xA9\", \"zz\": 1,")),
            Messages{"spec.json:3:17: error: /zz: unknown key \"zz\" (allowed: attnc, name, "
                     "dtype, head_dim, heads, seq_len, scale, mask, backward, deterministic)"});
  EXPECT_EQ(diagnose(specWith(5, "\t\"head_dim\":\t7,")),
            Messages{"spec.json:5:14: error: /head_dim: must be a multiple of 8 between 8 and "
                     "256, got 7"});
}

TEST(SpecFields, MissingRequiredKey) {
  EXPECT_EQ(diagnose(specWith(3, "")),
            Messages{"spec.json:1:1: error: missing required key \"name\""});
  EXPECT_EQ(diagnose(specWith(6, R"(  "heads": {"query": 8},)")),
            Messages{"spec.json:6:12: error: /heads: missing required key \"kv\""});
}

TEST(SpecFields, NotAnObject) {
  EXPECT_EQ(diagnose("[1, 2]"),
            Messages{"spec.json:1:1: error: must be an object, got array of 2 elements"});
}

TEST(SpecFields, FormatVersion) {
  EXPECT_EQ(diagnose(specWith(2, R"(  "attnc": 2,)")),
            Messages{"spec.json:2:12: error: /attnc: unsupported format version 2 (supported: 1)"});
  EXPECT_EQ(diagnose(specWith(2, R"(  "attnc": "1",)")),
            Messages{"spec.json:2:12: error: /attnc: must be an integer, got string \"1\""});
}

TEST(SpecFields, WrongTypes) {
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"window": {"left": "256", "right": 0}})")),
            Messages{"spec.json:7:31: error: /mask/window/left: must be an integer, got string "
                     "\"256\""});
  EXPECT_EQ(diagnose(specWith(3, R"(  "name": 3,)")),
            Messages{"spec.json:3:11: error: /name: must be a string, got number 3"});
  EXPECT_EQ(diagnose(specWith(6, R"(  "heads": [8, 8],)")),
            Messages{"spec.json:6:12: error: /heads: must be an object, got array of 2 elements"});
  EXPECT_EQ(diagnose(specWith(5, R"(  "head_dim": 64, "backward": 1,)")),
            Messages{"spec.json:5:31: error: /backward: must be a boolean, got number 1"});
  EXPECT_EQ(diagnose(specWith(5, R"(  "head_dim": 64, "scale": "0.1",)")),
            Messages{"spec.json:5:28: error: /scale: must be a number, got string \"0.1\""});
  EXPECT_EQ(diagnose(specWith(5, R"(  "head_dim": null,)")),
            Messages{"spec.json:5:15: error: /head_dim: must be an integer, got null"});
}

TEST(SpecFields, IntegersRejectFloatsAndOutOfRange) {
  EXPECT_EQ(diagnose(specWith(5, R"(  "head_dim": 64.5,)")),
            Messages{"spec.json:5:15: error: /head_dim: must be an integer, got number 64.5"});
  EXPECT_EQ(diagnose(specWith(5, R"(  "head_dim": 64.0,)")),
            Messages{"spec.json:5:15: error: /head_dim: must be an integer, got number 64.0"});
  EXPECT_EQ(diagnose(specWith(5, R"(  "head_dim": 9223372036854775808,)")),
            Messages{"spec.json:5:15: error: /head_dim: must be <= 9223372036854775807, got "
                     "9223372036854775808"});
  EXPECT_EQ(diagnose(specWith(5, R"(  "head_dim": 100000000000000000000,)")),
            Messages{"spec.json:5:15: error: /head_dim: must be <= 9223372036854775807, got "
                     "100000000000000000000"});
  EXPECT_EQ(diagnose(specWithMask(
                R"(  "mask": {"window": {"left": -100000000000000000000, "right": 0}})")),
            Messages{"spec.json:7:31: error: /mask/window/left: must be >= 0, got "
                     "-100000000000000000000"});
}

TEST(SpecFields, HeadDim) {
  for (const char *bad : {"0", "7", "264"})
    EXPECT_EQ(diagnose(specWith(5, std::string("  \"head_dim\": ") + bad + ",")),
              Messages{std::string("spec.json:5:15: error: /head_dim: must be a multiple of 8 "
                                   "between 8 and 256, got ") +
                       bad});
  EXPECT_EQ(loadGood(specWith(5, R"(  "head_dim": 8,)")).headDim, 8);
  EXPECT_EQ(loadGood(specWith(5, R"(  "head_dim": 256,)")).headDim, 256);
}

TEST(SpecFields, Dtype) {
  EXPECT_EQ(diagnose(specWith(4, R"(  "dtype": "fp64",)")),
            Messages{"spec.json:4:12: error: /dtype: must be \"bf16\" or \"fp16\", got \"fp64\""});
  EXPECT_EQ(diagnose(specWith(4, R"(  "dtype": 16,)")),
            Messages{"spec.json:4:12: error: /dtype: must be \"bf16\" or \"fp16\", got number 16"});
  EXPECT_EQ(loadGood(specWith(4, R"(  "dtype": "fp16",)")).dtype, DType::FP16);
}

TEST(SpecFields, Heads) {
  EXPECT_EQ(diagnose(specWith(6, R"(  "heads": {"query": 12, "kv": 8},)")),
            Messages{"spec.json:6:22: error: /heads/query: must be a multiple of heads.kv (8), "
                     "got 12"});
  EXPECT_EQ(diagnose(specWith(6, R"(  "heads": {"query": 8, "kv": 0},)")),
            Messages{"spec.json:6:31: error: /heads/kv: must be >= 1, got 0"});
}

TEST(SpecFields, SeqLen) {
  EXPECT_EQ(diagnose(specWith(6, R"(  "heads": {"query": 8, "kv": 8}, "seq_len": {"q": 0},)")),
            Messages{"spec.json:6:52: error: /seq_len/q: must be >= 1, got 0"});
  EXPECT_EQ(diagnose(specWith(6, R"(  "heads": {"query": 8, "kv": 8}, "seq_len": {"kv": 9},)")),
            Messages{"spec.json:6:46: error: /seq_len: missing required key \"q\""});
  Spec selfAttention =
      loadGood(specWith(6, R"(  "heads": {"query": 8, "kv": 8}, "seq_len": {"q": 128},)"));
  EXPECT_EQ(selfAttention.seqLenQ, 128);
  EXPECT_EQ(selfAttention.seqLenKV, 128);
}

TEST(SpecFields, Scale) {
  EXPECT_EQ(diagnose(specWith(5, R"(  "head_dim": 64, "scale": 0,)")),
            Messages{"spec.json:5:28: error: /scale: must be > 0, got 0"});
  EXPECT_EQ(diagnose(specWith(5, R"(  "head_dim": 64, "scale": -1.5e-3,)")),
            Messages{"spec.json:5:28: error: /scale: must be > 0, got -1.5e-3"});
  Spec given = loadGood(specWith(5, R"(  "head_dim": 64, "scale": 2,)"));
  EXPECT_EQ(given.scale, 2.0);
  EXPECT_TRUE(given.scaleGiven);
}

TEST(SpecFields, ErrorsAreCollected) {
  Messages lines = kBase;
  lines[3] = R"(  "dtype": "fp64",)";
  lines[4] = R"(  "head_dim": 7,)";
  EXPECT_EQ(diagnose(joinLines(lines)),
            (Messages{"spec.json:4:12: error: /dtype: must be \"bf16\" or \"fp16\", got \"fp64\"",
                      "spec.json:5:15: error: /head_dim: must be a multiple of 8 between 8 and "
                      "256, got 7"}));
}

//===----------------------------------------------------------------------===//
// Masks
//===----------------------------------------------------------------------===//

TEST(SpecMask, NegativeWindow) {
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"window": {"left": -1, "right": 0}})")),
            Messages{"spec.json:7:31: error: /mask/window/left: must be >= 0, got -1"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"window": {"left": 4, "right": -2}})")),
            Messages{"spec.json:7:43: error: /mask/window/right: must be >= 0, got -2"});
}

TEST(SpecMask, DilationZero) {
  EXPECT_EQ(
      diagnose(specWithMask(R"(  "mask": {"window": {"left": 256, "right": 256, "dilation": 0}})")),
      Messages{"spec.json:7:62: error: /mask/window/dilation: must be >= 1, got 0"});
  // The pointer runs through union elements.
  EXPECT_EQ(
      diagnose(specWithMask(
          R"(  "mask": {"union": [{"causal": {}}, {"window": {"left": 1, "right": 1, "dilation": 0}}]})")),
      Messages{"spec.json:7:85: error: /mask/union/1/window/dilation: must be >= 1, got 0"});
}

TEST(SpecMask, IssueExample) {
  // The example of the error format in issue 2, to the column.
  std::string text = R"({
  "attnc": 1, "name": "longformer", "dtype": "bf16", "head_dim": 64,
  "heads": {"query": 12, "kv": 12},
  "mask": {"union": [{"window": {
  "left": 256,
  "right": 256,
  "dilation": 0}}, {"global": {"tokens": [0]}}]}
}
)";
  EXPECT_EQ(format(loadSpecFromString(text, "longformer.json")),
            Messages{"longformer.json:7:15: error: /mask/union/0/window/dilation: must be >= 1, "
                     "got 0"});
}

TEST(SpecMask, EmptyUnionAndIntersect) {
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"union": []})")),
            Messages{"spec.json:7:21: error: /mask/union: must list at least one mask"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"intersect": []})")),
            Messages{"spec.json:7:25: error: /mask/intersect: must list at least one mask"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"union": {}})")),
            Messages{"spec.json:7:21: error: /mask/union: must be an array of masks, got object"});
}

TEST(SpecMask, ExactlyOneKind) {
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"causal": {}, "full": {}})")),
            Messages{"spec.json:7:11: error: /mask: must have exactly one key, the mask kind (one "
                     "of full, causal, window, global, block_sparse, union, intersect), got 2"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"windw": {}})")),
            Messages{"spec.json:7:12: error: /mask/windw: unknown mask kind \"windw\" (allowed: "
                     "full, causal, window, global, block_sparse, union, intersect)"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": "causal")")),
            Messages{"spec.json:7:11: error: /mask: must be an object, got string \"causal\""});
}

TEST(SpecMask, GlobalTokenOutOfRange) {
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"global": {"tokens": [0, 256]}})", true)),
            Messages{"spec.json:7:37: error: /mask/global/tokens/1: must be < seq_len.kv (256), "
                     "got 256"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"global": {"tokens": [0, -1]}})")),
            Messages{"spec.json:7:37: error: /mask/global/tokens/1: must be >= 0, got -1"});
  // Without seq_len any position is accepted.
  loadGood(specWithMask(R"(  "mask": {"global": {"tokens": [0, 256]}})"));
}

TEST(SpecMask, DuplicateGlobalTokenIsAWarning) {
  std::string text = specWithMask(R"(  "mask": {"global": {"tokens": [0, 5, 0]}})");
  EXPECT_EQ(diagnose(text), Messages{"spec.json:7:40: warning: /mask/global/tokens/2: duplicate "
                                     "global token 0 (first at index 0)"});
  LoadResult result = loadSpecFromString(text, "spec.json");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.diagnostics.at(0).severity, Severity::Warning);
  EXPECT_EQ(result.spec->mask, Mask::globalTokens({0, 5, 0}));
}

TEST(SpecMask, GlobalRanges) {
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"global": {"ranges": [[0, 300]]}})", true)),
            Messages{"spec.json:7:38: error: /mask/global/ranges/0/1: must be <= seq_len.kv "
                     "(256), got 300"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"global": {"ranges": [[5, 5]]}})")),
            Messages{"spec.json:7:38: error: /mask/global/ranges/0/1: must be > begin (5), got 5"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"global": {"ranges": [[1, 2, 3]]}})")),
            Messages{"spec.json:7:34: error: /mask/global/ranges/0: must be a [begin, end] pair, "
                     "got array of 3 elements"});
}

TEST(SpecMask, GlobalForms) {
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"global": {"tokens": [0], "stride": 64}})")),
            Messages{"spec.json:7:38: error: /mask/global/stride: cannot be combined with "
                     "\"tokens\" (a global mask has exactly one of tokens, ranges, stride, "
                     "runtime)"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"global": {}})")),
            Messages{"spec.json:7:22: error: /mask/global: must have one of tokens, ranges, "
                     "stride, runtime"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"global": {"tokens": [0], "offset": 1}})")),
            Messages{"spec.json:7:38: error: /mask/global/offset: is only allowed with "
                     "\"stride\""});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"global": {"stride": 0}})")),
            Messages{"spec.json:7:33: error: /mask/global/stride: must be >= 1, got 0"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"global": {"runtime": {"max": 0}}})")),
            Messages{"spec.json:7:42: error: /mask/global/runtime/max: must be >= 1, got 0"});
}

TEST(SpecMask, BlockLayoutOutOfRange) {
  EXPECT_EQ(diagnose(specWithMask(
                R"(  "mask": {"block_sparse": {"block": 64, "layout": [[0], [0, 4]]}})", true)),
            Messages{"spec.json:7:62: error: /mask/block_sparse/layout/1/1: must be < "
                     "ceil(seq_len.kv / block) = 4, got 4"});
  EXPECT_EQ(diagnose(specWithMask(
                R"(  "mask": {"block_sparse": {"block": 64, "layout": [[0], [0], [0], [0], [0]]}})",
                true)),
            Messages{"spec.json:7:52: error: /mask/block_sparse/layout: must have at most "
                     "ceil(seq_len.kv / block) = 4 rows, got 5"});
  // ceil(256 / 100) = 3 blocks.
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"block_sparse": {"block": 100, "layout": [[3]]}})",
                                  true)),
            Messages{"spec.json:7:55: error: /mask/block_sparse/layout/0/0: must be < "
                     "ceil(seq_len.kv / block) = 3, got 3"});
}

TEST(SpecMask, BlockSparseForms) {
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"block_sparse": {"block": 64}})")),
            Messages{"spec.json:7:28: error: /mask/block_sparse: must have one of layout, file, "
                     "bigbird"});
  EXPECT_EQ(diagnose(specWithMask(R"(  "mask": {"block_sparse": {"block": 0, "layout": [[0]]}})")),
            Messages{"spec.json:7:38: error: /mask/block_sparse/block: must be >= 1, got 0"});
  EXPECT_EQ(
      diagnose(specWithMask(
          R"(  "mask": {"block_sparse": {"block": 64, "bigbird": {"band": 3, "random": 2, "global": 1}}})")),
      Messages{"spec.json:7:53: error: /mask/block_sparse/bigbird: missing required key "
               "\"seed\""});
}

TEST(SpecMask, GoodMasksBuildTheirTrees) {
  Spec spec = loadGood(specWithMask(
      R"(  "mask": {"union": [{"window": {"left": 4, "right": 0, "dilation": 2}}, )"
      R"({"global": {"tokens": [3, 1]}}, {"global": {"ranges": [[0, 2], [8, 9]]}}, )"
      R"({"global": {"stride": 16}}, {"global": {"stride": 16, "offset": 3}}, )"
      R"({"global": {"runtime": {"max": 8}}}, {"block_sparse": {"block": 4, "layout": [[0], [], [1, 0]]}}, )"
      R"({"block_sparse": {"block": 64, "bigbird": {"band": 3, "random": 2, "global": 1, "seed": 7}}}, )"
      R"({"intersect": [{"causal": {}}, {"full": {}}, {"window": {"left": 1, "right": 2}}]}]})"));
  BigBirdParams bigbird;
  bigbird.block = 64;
  bigbird.band = 3;
  bigbird.random = 2;
  bigbird.global = 1;
  bigbird.seed = 7;
  Mask expected = Mask::unionOf({
      Mask::window(4, 0, 2),
      Mask::globalTokens({3, 1}),
      Mask::globalRanges({{0, 2}, {8, 9}}),
      Mask::globalStride(16, 0),
      Mask::globalStride(16, 3),
      Mask::globalRuntime(8),
      Mask::blockSparse(4, {{0}, {}, {1, 0}}),
      Mask::bigBird(bigbird),
      Mask::intersectOf({Mask::causal(), Mask::full(), Mask::window(1, 2, 1)}),
  });
  EXPECT_EQ(spec.mask, expected) << toString(spec.mask);

  // maskLoc mirrors the tree: "mask": { is at 7:11, the union's elements follow.
  EXPECT_EQ(spec.maskLoc.pointer, "/mask");
  EXPECT_EQ(spec.maskLoc.loc.line, 7);
  EXPECT_EQ(spec.maskLoc.loc.column, 11);
  ASSERT_EQ(spec.maskLoc.children.size(), 9u);
  EXPECT_EQ(spec.maskLoc.children[0].pointer, "/mask/union/0");
  EXPECT_EQ(spec.maskLoc.children[0].loc.column, 22);
  const LocatedMask &intersect = spec.maskLoc.children[8];
  EXPECT_EQ(intersect.pointer, "/mask/union/8");
  ASSERT_EQ(intersect.children.size(), 3u);
  EXPECT_EQ(intersect.children[2].pointer, "/mask/union/8/intersect/2");
  EXPECT_TRUE(intersect.children[2].children.empty());
}

//===----------------------------------------------------------------------===//
// Good specs, locations, examples, toJson
//===----------------------------------------------------------------------===//

TEST(SpecGood, FieldsDefaultsAndLocations) {
  Spec spec = loadGood(joinLines(kBase));
  EXPECT_EQ(spec.formatVersion, 1);
  EXPECT_EQ(spec.name, "t");
  EXPECT_EQ(spec.dtype, DType::BF16);
  EXPECT_EQ(spec.headDim, 64);
  EXPECT_EQ(spec.queryHeads, 8);
  EXPECT_EQ(spec.kvHeads, 8);
  EXPECT_FALSE(spec.seqLenQ.has_value());
  EXPECT_FALSE(spec.seqLenKV.has_value());
  EXPECT_EQ(spec.scale, 0.125);
  EXPECT_FALSE(spec.scaleGiven);
  EXPECT_FALSE(spec.backward);
  EXPECT_EQ(spec.mask, Mask::causal());

  EXPECT_EQ(spec.loc.file, "spec.json");
  EXPECT_EQ(spec.loc.line, 1);
  EXPECT_EQ(spec.loc.column, 1);
  Location kv = spec.locationOf("/heads/kv");
  EXPECT_EQ(kv.file, "spec.json");
  EXPECT_EQ(kv.line, 6);
  EXPECT_EQ(kv.column, 31);
  Location causal = spec.locationOf("/mask/causal");
  EXPECT_EQ(causal.line, 7);
  EXPECT_EQ(causal.column, 22);
  Location absent = spec.locationOf("/no/such/field");
  EXPECT_EQ(absent.line, 1);
  EXPECT_EQ(absent.column, 1);
}

TEST(SpecGood, AsymmetricLengthsAndBackward) {
  Messages lines = kBase;
  lines[5] = R"(  "heads": {"query": 32, "kv": 8}, "seq_len": {"q": 1024, "kv": 4096},)";
  lines[6] = R"(  "mask": {"global": {"tokens": [4095]}}, "backward": true)";
  Spec spec = loadGood(joinLines(lines));
  EXPECT_EQ(spec.queryHeads, 32);
  EXPECT_EQ(spec.kvHeads, 8);
  EXPECT_EQ(spec.seqLenQ, 1024);
  EXPECT_EQ(spec.seqLenKV, 4096);
  EXPECT_TRUE(spec.backward);
}

TEST(SpecGood, ToJsonIsCanonical) {
  Spec spec = loadGood(specWithMask(R"(  "mask": {"window": {"left": 4, "right": 0}})"));
  EXPECT_EQ(
      toJson(spec),
      R"({"attnc":1,"name":"t","dtype":"bf16","head_dim":64,"heads":{"query":8,"kv":8},)"
      R"("scale":0.125,"mask":{"window":{"left":4,"right":0,"dilation":1}},"backward":false})");
}

/// Loading toJson's output gives the same spec.
void expectRoundTrip(const Spec &spec) {
  LoadResult again = loadSpecFromString(toJson(spec), "canonical.json");
  ASSERT_TRUE(again.ok()) << toJson(spec) << "\n" << format(again).at(0);
  EXPECT_EQ(again.spec->name, spec.name);
  EXPECT_EQ(again.spec->dtype, spec.dtype);
  EXPECT_EQ(again.spec->headDim, spec.headDim);
  EXPECT_EQ(again.spec->queryHeads, spec.queryHeads);
  EXPECT_EQ(again.spec->kvHeads, spec.kvHeads);
  EXPECT_EQ(again.spec->seqLenQ, spec.seqLenQ);
  EXPECT_EQ(again.spec->seqLenKV, spec.seqLenKV);
  EXPECT_EQ(again.spec->scale, spec.scale);
  EXPECT_EQ(again.spec->backward, spec.backward);
  EXPECT_EQ(again.spec->mask, spec.mask);
  EXPECT_EQ(toJson(*again.spec), toJson(spec));
}

TEST(SpecGood, EveryExampleLoadsCleanly) {
  std::vector<fs::path> files;
  for (const fs::directory_entry &entry : fs::directory_iterator(ATTNC_SPECS_DIR))
    if (entry.path().extension() == ".json")
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  EXPECT_GE(files.size(), 11u);
  for (const fs::path &file : files) {
    SCOPED_TRACE(file.string());
    LoadResult result = loadSpecFromFile(file.string());
    EXPECT_EQ(format(result), Messages{});
    ASSERT_TRUE(result.ok());
    expectRoundTrip(*result.spec);
  }
}

TEST(SpecGood, ExampleTrees) {
  LoadResult longformer = loadSpecFromFile(std::string(ATTNC_SPECS_DIR) + "/longformer.json");
  ASSERT_TRUE(longformer.ok());
  EXPECT_EQ(longformer.spec->mask,
            Mask::unionOf({Mask::window(256, 256, 1), Mask::globalTokens({0})}));
  LoadResult gqa = loadSpecFromFile(std::string(ATTNC_SPECS_DIR) + "/gqa.json");
  ASSERT_TRUE(gqa.ok());
  EXPECT_EQ(gqa.spec->queryHeads, 32);
  EXPECT_EQ(gqa.spec->kvHeads, 8);
  EXPECT_EQ(gqa.spec->mask, Mask::causal());
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

TEST(SpecFiles, MissingPath) {
  LoadResult result = loadSpecFromFile("/nonexistent/attnc/spec.json");
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(format(result), Messages{"/nonexistent/attnc/spec.json: error: cannot read spec file: "
                                     "No such file or directory"});
  EXPECT_EQ(result.diagnostics.at(0).loc.line, 0);
}

TEST(SpecFiles, DirectoryPath) {
  TempDir dir;
  LoadResult result = loadSpecFromFile(dir.path());
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(format(result),
            Messages{dir.path() + ": error: cannot read spec file: Is a directory"});
}

TEST(SpecFiles, UnreadablePath) {
  TempDir dir;
  std::string path = dir.write("spec.json", joinLines(kBase));
  fs::permissions(path, fs::perms::none);
  if (::access(path.c_str(), R_OK) == 0)
    GTEST_SKIP() << "this user can read a file with mode 000 (root?)";
  LoadResult result = loadSpecFromFile(path);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(format(result), Messages{path + ": error: cannot read spec file: Permission denied"});
}

TEST(SpecFiles, ErrorsNameTheFile) {
  TempDir dir;
  std::string path = dir.write("bad.json", specWith(5, R"(  "head_dim": 7,)"));
  EXPECT_EQ(format(loadSpecFromFile(path)),
            Messages{path + ":5:15: error: /head_dim: must be a multiple of 8 between 8 and 256, "
                            "got 7"});
}

TEST(SpecFiles, LayoutFile) {
  TempDir dir;
  dir.write("rows.json", "[[0], [0, 1]]\n");
  dir.write("object.json", "{\n  \"layout\": [[1], [0]]\n}\n");
  std::string spec = dir.write(
      "spec.json", specWithMask(R"(  "mask": {"union": [{"block_sparse": {"block": 64, "file": )"
                                R"("rows.json"}}, {"block_sparse": {"block": 64, "file": )"
                                R"("object.json"}}]})",
                                true));
  LoadResult result = loadSpecFromFile(spec);
  ASSERT_TRUE(result.ok()) << format(result).at(0);
  EXPECT_EQ(result.spec->mask, Mask::unionOf({Mask::blockSparse(64, {{0}, {0, 1}}),
                                              Mask::blockSparse(64, {{1}, {0}})}));
  // toJson inlines the layouts.
  EXPECT_NE(toJson(*result.spec).find(R"("layout":[[0],[0,1]])"), std::string::npos);
  expectRoundTrip(*result.spec);
}

TEST(SpecFiles, LayoutFileErrors) {
  TempDir dir;
  auto specFor = [&](const std::string &layoutFile) {
    return dir.write("spec.json",
                     specWithMask(R"(  "mask": {"block_sparse": {"block": 64, "file": ")" +
                                      layoutFile + R"("}})",
                                  true));
  };
  // Errors inside the layout file name that file, its lines and pointers.
  std::string layout = dir.write("layout.json", "{\n  \"layout\": [[0],\n             [4]]\n}\n");
  EXPECT_EQ(format(loadSpecFromFile(specFor("layout.json"))),
            Messages{layout + ":3:15: error: /layout/1/0: must be < ceil(seq_len.kv / block) = 4, "
                              "got 4"});
  std::string broken = dir.write("broken.json", "[[0],\n [1\n");
  EXPECT_EQ(format(loadSpecFromFile(specFor("broken.json"))),
            Messages{broken + ":3:1: error: syntax error while parsing array - unexpected end of "
                              "input; expected ']'"});
  std::string extra = dir.write("extra.json", "{\"layout\": [[0]], \"rows\": 1}");
  EXPECT_EQ(format(loadSpecFromFile(specFor("extra.json"))),
            Messages{extra + ":1:19: error: /rows: unknown key \"rows\" (allowed: layout)"});
  std::string scalar = dir.write("scalar.json", "7");
  EXPECT_EQ(format(loadSpecFromFile(specFor("scalar.json"))),
            Messages{scalar + ":1:1: error: must be a layout (an array of rows) or an object "
                              "{\"layout\": [...]}, got number 7"});
  // A missing layout file is reported at the "file" field of the spec.
  std::string spec = specFor("missing.json");
  EXPECT_EQ(format(loadSpecFromFile(spec)),
            Messages{spec + ":7:50: error: /mask/block_sparse/file: cannot read layout file \"" +
                     (fs::path(dir.path()) / "missing.json").string() +
                     "\": No such file or directory"});
}

TEST(SpecDiagnostic, Format) {
  Diagnostic d;
  d.loc = {"a.json", 3, 4};
  d.pointer = "/x";
  d.message = "bad";
  EXPECT_EQ(d.format(), "a.json:3:4: error: /x: bad");
  d.severity = Severity::Warning;
  d.pointer.clear();
  EXPECT_EQ(d.format(), "a.json:3:4: warning: bad");
  d.loc = {"a.json", 0, 0};
  EXPECT_EQ(d.format(), "a.json: warning: bad");
  EXPECT_STREQ(dtypeName(DType::BF16), "bf16");
  EXPECT_STREQ(dtypeName(DType::FP16), "fp16");
}

} // namespace
