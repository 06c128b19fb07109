//===- AttnAttrs.cpp - Mask attributes of the attn dialect ----------------===//

#include "attnc/Dialect/Attn/AttnDialect.h"

#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace attnc;
using namespace attnc::attn;

//===----------------------------------------------------------------------===//
// Custom assembly: range lists and block layouts
//===----------------------------------------------------------------------===//

/// `0 : 16, 100 : 128` <-> flat bounds {0, 16, 100, 128}.
static ParseResult parseRangeList(AsmParser &parser, SmallVector<int64_t> &bounds) {
  return parser.parseCommaSeparatedList([&]() -> ParseResult {
    int64_t begin = 0, end = 0;
    if (parser.parseInteger(begin) || parser.parseColon() || parser.parseInteger(end))
      return failure();
    bounds.push_back(begin);
    bounds.push_back(end);
    return success();
  });
}

static void printRangeList(AsmPrinter &printer, ArrayRef<int64_t> bounds) {
  for (size_t i = 0; i + 1 < bounds.size(); i += 2)
    printer << (i ? ", " : "") << bounds[i] << " : " << bounds[i + 1];
}

/// `[[0], [0, 1], []]` <-> CSR row offsets {0, 1, 3, 3} and columns {0, 0, 1}.
static ParseResult parseLayout(AsmParser &parser, SmallVector<int64_t> &rowOffsets,
                               SmallVector<int64_t> &columns) {
  rowOffsets.push_back(0);
  return parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&]() -> ParseResult {
    if (parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&]() -> ParseResult {
          int64_t column = 0;
          if (parser.parseInteger(column))
            return failure();
          columns.push_back(column);
          return success();
        }))
      return failure();
    rowOffsets.push_back(columns.size());
    return success();
  });
}

static void printLayout(AsmPrinter &printer, ArrayRef<int64_t> rowOffsets,
                        ArrayRef<int64_t> columns) {
  printer << "[";
  for (size_t r = 0; r + 1 < rowOffsets.size(); ++r) {
    printer << (r ? ", " : "") << "[";
    llvm::interleaveComma(columns.slice(rowOffsets[r], rowOffsets[r + 1] - rowOffsets[r]),
                          printer);
    printer << "]";
  }
  printer << "]";
}

/// A band bound: an integer, `inf` or `-inf` (mask::kUnbounded and its negation).
static ParseResult parseBound(AsmParser &parser, int64_t &bound) {
  bool negative = succeeded(parser.parseOptionalMinus());
  if (succeeded(parser.parseOptionalKeyword("inf"))) {
    bound = negative ? -mask::kUnbounded : mask::kUnbounded;
    return success();
  }
  if (parser.parseInteger(bound))
    return failure();
  if (negative)
    bound = -bound;
  return success();
}

static void printBound(AsmPrinter &printer, int64_t bound) {
  if (bound == mask::kUnbounded)
    printer << "inf";
  else if (bound == -mask::kUnbounded)
    printer << "-inf";
  else
    printer << bound;
}

/// `[#attn.causal, #attn.window<...>]`; an empty list parses, so that the
/// verifier (not the parser) reports it.
static ParseResult parseMaskList(AsmParser &parser, SmallVector<Attribute> &children) {
  return parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&]() -> ParseResult {
    Attribute child;
    if (parser.parseAttribute(child))
      return failure();
    children.push_back(child);
    return success();
  });
}

static void printMaskList(AsmPrinter &printer, ArrayRef<Attribute> children) {
  printer << "[";
  llvm::interleaveComma(children, printer);
  printer << "]";
}

#include "attnc/Dialect/Attn/AttnAttrInterfaces.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "attnc/Dialect/Attn/AttnAttrs.cpp.inc"

void AttnDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "attnc/Dialect/Attn/AttnAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// Verifiers
//===----------------------------------------------------------------------===//

using EmitErrorFn = function_ref<InFlightDiagnostic()>;

LogicalResult WindowAttr::verify(EmitErrorFn emitError, int64_t left, int64_t right,
                                 int64_t dilation) {
  if (left < 0 || right < 0)
    return emitError() << "window bounds must be >= 0, got left = " << left
                       << ", right = " << right;
  if (dilation < 1)
    return emitError() << "window dilation must be >= 1, got " << dilation;
  return success();
}

LogicalResult GlobalTokensAttr::verify(EmitErrorFn emitError, ArrayRef<int64_t> tokens) {
  if (tokens.empty())
    return emitError() << "global token list must not be empty";
  for (int64_t t : tokens)
    if (t < 0)
      return emitError() << "global token must be >= 0, got " << t;
  return success();
}

LogicalResult GlobalRangesAttr::verify(EmitErrorFn emitError, ArrayRef<int64_t> bounds) {
  if (bounds.empty() || bounds.size() % 2)
    return emitError() << "global ranges need one or more begin : end pairs";
  for (size_t i = 0; i < bounds.size(); i += 2)
    if (bounds[i] < 0 || bounds[i] >= bounds[i + 1])
      return emitError() << "global range must satisfy 0 <= begin < end, got " << bounds[i]
                         << " : " << bounds[i + 1];
  return success();
}

LogicalResult GlobalStrideAttr::verify(EmitErrorFn emitError, int64_t stride, int64_t offset) {
  if (stride < 1)
    return emitError() << "global stride must be >= 1, got " << stride;
  if (offset < 0)
    return emitError() << "global offset must be >= 0, got " << offset;
  return success();
}

LogicalResult GlobalRuntimeAttr::verify(EmitErrorFn emitError, int64_t max) {
  if (max < 1)
    return emitError() << "runtime global token capacity must be >= 1, got " << max;
  return success();
}

LogicalResult BlockSparseAttr::verify(EmitErrorFn emitError, int64_t block,
                                      ArrayRef<int64_t> rowOffsets, ArrayRef<int64_t> columns) {
  if (block < 1)
    return emitError() << "block size must be >= 1, got " << block;
  if (rowOffsets.empty() || rowOffsets.front() != 0 ||
      rowOffsets.back() != static_cast<int64_t>(columns.size()))
    return emitError() << "block layout row offsets are malformed";
  for (size_t r = 0; r + 1 < rowOffsets.size(); ++r)
    if (rowOffsets[r] > rowOffsets[r + 1])
      return emitError() << "block layout row offsets must not decrease";
  for (int64_t c : columns)
    if (c < 0)
      return emitError() << "block layout column must be >= 0, got " << c;
  return success();
}

LogicalResult BigBirdAttr::verify(EmitErrorFn emitError, int64_t block, int64_t band,
                                  int64_t random, int64_t global, uint64_t) {
  if (block < 1)
    return emitError() << "bigbird block size must be >= 1, got " << block;
  if (band < 0 || random < 0 || global < 0)
    return emitError() << "bigbird band, random and global must be >= 0";
  if (band + random + global == 0)
    return emitError() << "bigbird needs at least one band, random or global block";
  return success();
}

static LogicalResult verifyChildren(EmitErrorFn emitError, StringRef what,
                                    ArrayRef<Attribute> children) {
  if (children.empty())
    return emitError() << what << " needs at least one mask";
  for (Attribute child : children)
    if (!isa<MaskAttrInterface>(child))
      return emitError() << what << " operand is not a mask attribute: " << child;
  return success();
}

LogicalResult TileAttr::verify(EmitErrorFn emitError, int64_t blockM, int64_t blockN,
                               int64_t warps, int64_t stages, StringRef mma) {
  // GPU warps own 16 rows each; a warpgroup is 4 warps, and one wgmma
  // instruction covers the warpgroup's 64 rows.
  constexpr int64_t kRowsPerWarp = 16, kWarpsPerGroup = 4;
  for (auto [name, size] : {std::pair{"block_m", blockM}, std::pair{"block_n", blockN}})
    if (size < 16 || size > 256 || (size & (size - 1)))
      return emitError() << "tile " << name << " must be a power of two in [16, 256], got "
                         << size;
  if (warps < 1 || (warps & (warps - 1)) || blockM % (kRowsPerWarp * warps))
    return emitError() << "tile warps must be a power of two with 16 * warps dividing block_m ("
                       << blockM << "), got " << warps;
  if (stages < 2 || stages > 8)
    return emitError() << "tile stages must be in [2, 8], got " << stages;
  if (mma != kMmaSync && mma != kMmaWgmma)
    return emitError() << "tile mma must be \"" << kMmaSync << "\" or \"" << kMmaWgmma
                       << "\", got \"" << mma << "\"";
  if (mma != kMmaWgmma)
    return success();
  if (warps % kWarpsPerGroup)
    return emitError() << "tile mma \"wgmma\" needs whole warpgroups: warps must be a multiple of "
                       << kWarpsPerGroup << ", got " << warps;
  if (blockM != kRowsPerWarp * warps)
    return emitError() << "tile mma \"wgmma\" needs one 64-row wgmma block per warpgroup: "
                          "block_m must be 16 * warps ("
                       << kRowsPerWarp * warps << "), got " << blockM;
  // wgmma's N (block_n keys) must be a multiple of 16 in [16, 256]: every
  // power of two in [16, 256], as checked above, is.
  return success();
}

LogicalResult UnionAttr::verify(EmitErrorFn emitError, ArrayRef<Attribute> children) {
  return verifyChildren(emitError, "union", children);
}

LogicalResult IntersectAttr::verify(EmitErrorFn emitError, ArrayRef<Attribute> children) {
  return verifyChildren(emitError, "intersect", children);
}

//===----------------------------------------------------------------------===//
// MaskAttrInterface: attribute -> mask::Mask
//===----------------------------------------------------------------------===//

mask::Mask FullAttr::toMask() const { return mask::Mask::full(); }
mask::Mask EmptyAttr::toMask() const { return mask::Mask::empty(); }
mask::Mask CausalAttr::toMask() const { return mask::Mask::causal(); }
mask::Mask WindowAttr::toMask() const {
  return mask::Mask::window(getLeft(), getRight(), getDilation());
}
mask::Mask GlobalTokensAttr::toMask() const {
  return mask::Mask::globalTokens(getTokens().vec());
}
mask::Mask GlobalRangesAttr::toMask() const {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (size_t i = 0; i + 1 < getBounds().size(); i += 2)
    ranges.emplace_back(getBounds()[i], getBounds()[i + 1]);
  return mask::Mask::globalRanges(std::move(ranges));
}
mask::Mask GlobalStrideAttr::toMask() const {
  return mask::Mask::globalStride(getStride(), getOffset());
}
mask::Mask GlobalRuntimeAttr::toMask() const { return mask::Mask::globalRuntime(getMax()); }
mask::Mask BlockSparseAttr::toMask() const {
  std::vector<std::vector<int64_t>> layout;
  for (int64_t r = 0; r < getNumRows(); ++r)
    layout.push_back(getRow(r).vec());
  return mask::Mask::blockSparse(getBlock(), std::move(layout));
}
mask::Mask BigBirdAttr::toMask() const {
  return mask::Mask::bigBird({getBlock(), getBand(), getRandom(), getGlobal(), getSeed()});
}

static std::vector<mask::Mask> childMasks(ArrayRef<Attribute> children) {
  std::vector<mask::Mask> masks;
  for (Attribute child : children)
    masks.push_back(cast<MaskAttrInterface>(child).toMask());
  return masks;
}
mask::Mask UnionAttr::toMask() const { return mask::Mask::unionOf(childMasks(getChildren())); }
mask::Mask IntersectAttr::toMask() const {
  return mask::Mask::intersectOf(childMasks(getChildren()));
}

//===----------------------------------------------------------------------===//
// mask::Mask -> attribute
//===----------------------------------------------------------------------===//

MaskAttrInterface attnc::attn::maskToAttr(MLIRContext *ctx, const mask::Mask &m) {
  using mask::Kind;
  auto children = [&]() {
    SmallVector<Attribute> attrs;
    for (const mask::Mask &child : m.children)
      attrs.push_back(maskToAttr(ctx, child));
    return attrs;
  };
  switch (m.kind) {
  case Kind::Empty:
    return EmptyAttr::get(ctx);
  case Kind::Full:
    return FullAttr::get(ctx);
  case Kind::Causal:
    return CausalAttr::get(ctx);
  case Kind::Window:
    return WindowAttr::get(ctx, m.left, m.right, m.dilation);
  case Kind::GlobalTokens:
    // An empty token list allows no pair; the attribute needs one token.
    if (m.tokens.empty())
      return EmptyAttr::get(ctx);
    return GlobalTokensAttr::get(ctx, m.tokens);
  case Kind::GlobalRanges: {
    if (m.ranges.empty())
      return EmptyAttr::get(ctx);
    SmallVector<int64_t> bounds;
    for (auto [begin, end] : m.ranges) {
      bounds.push_back(begin);
      bounds.push_back(end);
    }
    return GlobalRangesAttr::get(ctx, bounds);
  }
  case Kind::GlobalStride:
    return GlobalStrideAttr::get(ctx, m.stride, m.offset);
  case Kind::GlobalRuntime:
    return GlobalRuntimeAttr::get(ctx, m.runtimeMax);
  case Kind::BlockSparse: {
    SmallVector<int64_t> rowOffsets{0}, columns;
    for (const std::vector<int64_t> &row : m.layout) {
      columns.append(row.begin(), row.end());
      rowOffsets.push_back(columns.size());
    }
    return BlockSparseAttr::get(ctx, m.block, rowOffsets, columns);
  }
  case Kind::BigBird:
    return BigBirdAttr::get(ctx, m.bigbird.block, m.bigbird.band, m.bigbird.random,
                            m.bigbird.global, m.bigbird.seed);
  case Kind::Union:
    return UnionAttr::get(ctx, children());
  case Kind::Intersect:
    return IntersectAttr::get(ctx, children());
  }
  llvm_unreachable("unknown mask kind");
}

//===----------------------------------------------------------------------===//
// Checks against the key length
//===----------------------------------------------------------------------===//

LogicalResult attnc::attn::verifyMaskForKeyLength(MaskAttrInterface mask, int64_t nk,
                                                  EmitErrorFn emitError) {
  int64_t numBlocks = 0;
  return TypeSwitch<Attribute, LogicalResult>(mask)
      .Case([&](GlobalTokensAttr a) -> LogicalResult {
        for (int64_t t : a.getTokens())
          if (t >= nk)
            return emitError() << "global token " << t << " is out of range for kv length "
                               << nk;
        return success();
      })
      .Case([&](GlobalRangesAttr a) -> LogicalResult {
        for (size_t i = 1; i < a.getBounds().size(); i += 2)
          if (a.getBounds()[i] > nk)
            return emitError() << "global range end " << a.getBounds()[i]
                               << " is out of range for kv length " << nk;
        return success();
      })
      .Case([&](BlockSparseAttr a) -> LogicalResult {
        numBlocks = (nk + a.getBlock() - 1) / a.getBlock();
        if (a.getNumRows() > numBlocks)
          return emitError() << "block layout has " << a.getNumRows()
                             << " rows, more than the " << numBlocks
                             << " blocks of kv length " << nk;
        for (int64_t c : a.getColumns())
          if (c >= numBlocks)
            return emitError() << "block layout column " << c << " is out of range: kv length "
                               << nk << " has " << numBlocks << " blocks";
        return success();
      })
      .Case<UnionAttr, IntersectAttr>([&](auto a) -> LogicalResult {
        for (Attribute child : a.getChildren())
          if (failed(verifyMaskForKeyLength(cast<MaskAttrInterface>(child), nk, emitError)))
            return failure();
        return success();
      })
      .Default([](Attribute) { return success(); });
}
