//===- AttnAttrs.td - Mask attributes of the attn dialect --*- tablegen -*-===//
//
// One attribute per mask primitive and composition. Each implements
// MaskAttrInterface, whose toMask() gives the MLIR-free mask::Mask tree that
// holds the one definition of the semantics (compiler/include/attnc/Mask).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_DIALECT_ATTN_ATTRS_TD
#define ATTNC_DIALECT_ATTN_ATTRS_TD

include "attnc/Dialect/Attn/AttnDialect.td"
include "mlir/IR/AttrTypeBase.td"

def Attn_MaskAttrInterface : AttrInterface<"MaskAttrInterface"> {
  let cppNamespace = "::attnc::attn";
  let description = [{
    A mask expression: which (query, key) pairs of an attention interact.
    `toMask` converts the attribute tree to the MLIR-free `mask::Mask`.
  }];
  let methods = [
    InterfaceMethod<"The mask as an MLIR-free mask::Mask tree.",
      "::attnc::mask::Mask", "toMask", (ins)>,
  ];
}

class Attn_MaskAttr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Attn_Dialect, name,
              traits # [DeclareAttrInterfaceMethods<Attn_MaskAttrInterface>]> {
  let mnemonic = attrMnemonic;
}

def Attn_FullAttr : Attn_MaskAttr<"Full", "full"> {
  let summary = "Every (query, key) pair interacts";
  let description = [{ Example: `#attn.full` }];
}

def Attn_EmptyAttr : Attn_MaskAttr<"Empty", "empty"> {
  let summary = "No pair interacts (every row is fully masked)";
  let description = [{
    Produced by attn-canonicalize-mask, e.g. for an intersection of disjoint
    masks. Every row yields O = 0 and LSE = -inf. Example: `#attn.empty`
  }];
}

def Attn_CausalAttr : Attn_MaskAttr<"Causal", "causal"> {
  let summary = "Key k interacts with query position p iff k <= p";
  let description = [{ Equal to a window with unbounded left and right 0. Example: `#attn.causal` }];
}

def Attn_WindowAttr : Attn_MaskAttr<"Window", "window"> {
  let summary = "Sliding window, optionally dilated";
  let description = [{
    With delta = p - k: allowed iff `-right*dilation <= delta <= left*dilation`
    and `delta % dilation == 0`. `left` and `right` count attended keys on each
    side. Example: `#attn.window<left = 256, right = 256, dilation = 2>`
    (dilation 1 is elided).
  }];
  let parameters = (ins "int64_t":$left, "int64_t":$right,
                        DefaultValuedParameter<"int64_t", "1">:$dilation);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Attn_GlobalTokensAttr : Attn_MaskAttr<"GlobalTokens", "global_tokens"> {
  let summary = "Symmetric global tokens given as a list";
  let description = [{
    Allowed iff p or k is in the list (Longformer's global attention).
    Example: `#attn.global_tokens<[0, 17]>`
  }];
  let parameters = (ins ArrayRefParameter<"int64_t">:$tokens);
  let assemblyFormat = "`<` `[` $tokens `]` `>`";
  let genVerifyDecl = 1;
}

def Attn_GlobalRangesAttr : Attn_MaskAttr<"GlobalRanges", "global_ranges"> {
  let summary = "Symmetric global tokens given as half-open ranges";
  let description = [{
    Allowed iff p or k lies in one of the ranges [begin, end). The bounds are
    stored flat (begin0, end0, begin1, ...). Example:
    `#attn.global_ranges<[0 : 16, 100 : 128]>`
  }];
  let parameters = (ins ArrayRefParameter<"int64_t">:$bounds);
  let assemblyFormat = "`<` `[` custom<RangeList>($bounds) `]` `>`";
  let genVerifyDecl = 1;
}

def Attn_GlobalStrideAttr : Attn_MaskAttr<"GlobalStride", "global_stride"> {
  let summary = "Symmetric global tokens every `stride` positions from `offset`";
  let description = [{
    Token t is global iff t >= offset and (t - offset) % stride == 0.
    Example: `#attn.global_stride<stride = 512>` (offset 0 is elided).
  }];
  let parameters = (ins "int64_t":$stride, DefaultValuedParameter<"int64_t", "0">:$offset);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Attn_GlobalRuntimeAttr : Attn_MaskAttr<"GlobalRuntime", "global_runtime"> {
  let summary = "Symmetric global tokens whose list is given at launch";
  let description = [{
    Like `#attn.global_tokens`, with at most `max` tokens passed at launch.
    Example: `#attn.global_runtime<max = 64>`
  }];
  let parameters = (ins "int64_t":$max);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Attn_BlockSparseAttr : Attn_MaskAttr<"BlockSparse", "block_sparse"> {
  let summary = "Block-sparse layout: query block row r sees the listed key blocks";
  let description = [{
    Allowed iff the layout row of `p / block` lists `k / block`. Stored as
    CSR (row offsets, columns); printed as nested lists. Example:
    `#attn.block_sparse<block = 64, layout = [[0], [0, 1], []]>`
  }];
  let parameters = (ins "int64_t":$block,
                        ArrayRefParameter<"int64_t">:$rowOffsets,
                        ArrayRefParameter<"int64_t">:$columns);
  let assemblyFormat = [{
    `<` `block` `=` $block `,` `layout` `=` custom<Layout>($rowOffsets, $columns) `>`
  }];
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Number of query block rows in the layout.
    int64_t getNumRows() const { return getRowOffsets().size() - 1; }
    /// The key block columns of row r.
    ::llvm::ArrayRef<int64_t> getRow(int64_t r) const {
      return getColumns().slice(getRowOffsets()[r], getRowOffsets()[r + 1] - getRowOffsets()[r]);
    }
  }];
}

def Attn_BigBirdAttr : Attn_MaskAttr<"BigBird", "bigbird"> {
  let summary = "A BigBird block layout: band, random and global blocks";
  let description = [{
    The layout is generated for the key length (mask::expandBigBird): a band
    of `band` blocks on the diagonal, `random` seeded random blocks per row,
    and `global` leading blocks that see and are seen by every block.
    Example: `#attn.bigbird<block = 64, band = 3, random = 2, global = 1, seed = 0>`
  }];
  let parameters = (ins "int64_t":$block, "int64_t":$band, "int64_t":$random,
                        "int64_t":$global, "uint64_t":$seed);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Attn_UnionAttr : Attn_MaskAttr<"Union", "union"> {
  let summary = "A pair interacts iff any child mask allows it";
  let description = [{ Example: `#attn.union<[#attn.window<left = 256, right = 256>, #attn.global_tokens<[0]>]>` }];
  let parameters = (ins ArrayRefParameter<"::mlir::Attribute">:$children);
  let assemblyFormat = "`<` custom<MaskList>($children) `>`";
  let genVerifyDecl = 1;
}

def Attn_IntersectAttr : Attn_MaskAttr<"Intersect", "intersect"> {
  let summary = "A pair interacts iff every child mask allows it";
  let description = [{ Example: `#attn.intersect<[#attn.causal, #attn.window<left = 128, right = 128>]>` }];
  let parameters = (ins ArrayRefParameter<"::mlir::Attribute">:$children);
  let assemblyFormat = "`<` custom<MaskList>($children) `>`";
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// Tiling and block schedules (attached by attn-tile and attn-classify-blocks)
//===----------------------------------------------------------------------===//

def Attn_TileAttr : AttrDef<Attn_Dialect, "Tile"> {
  let mnemonic = "tile";
  let summary = "The tile configuration of a flash loop";
  let description = [{
    BLOCK_M query rows by BLOCK_N keys per step of the flash loop (powers of
    two from 16 to 256); on GPUs, `warps` warps share the BLOCK_M rows (16
    rows per mma row block) and `stages` kv tiles are in flight. `mma` is the
    CUDA forward's matrix instruction: "sync" (mma.sync m16n8k16, sm_80 and
    later) or "wgmma" (Hopper's warpgroup MMA, sm_90a only: whole warpgroups
    of 4 warps, one 64-row wgmma block per warpgroup, so block_m = 16 * warps,
    and block_n a multiple of 16 up to 256). The CPU target reads only the
    tile sides. Defaults (1 warp, 2 stages, mma "sync") are elided.
    Examples: `#attn.tile<block_m = 128, block_n = 64, warps = 8>`,
    `#attn.tile<block_m = 128, block_n = 128, warps = 8, mma = "wgmma">`
  }];
  let parameters = (ins "int64_t":$block_m, "int64_t":$block_n,
                        DefaultValuedParameter<"int64_t", "1">:$warps,
                        DefaultValuedParameter<"int64_t", "2">:$stages,
                        StringRefParameter<"the forward's MMA instruction", "\"sync\"">:$mma);
  let assemblyFormat = "`<` struct(params) `>`";
  let builders = [
    // An mma.sync tile (every tile but the Hopper forward's).
    AttrBuilder<(ins "int64_t":$block_m, "int64_t":$block_n, "int64_t":$warps,
                     "int64_t":$stages), [{
      return $_get($_ctxt, block_m, block_n, warps, stages, kMmaSync);
    }]>
  ];
  let extraClassDeclaration = [{
    /// The values of `mma`: mma.sync m16n8k16 (sm_80+), Hopper's wgmma (sm_90a).
    static constexpr ::llvm::StringLiteral kMmaSync = "sync", kMmaWgmma = "wgmma";
    /// Whether the CUDA forward runs the Hopper warpgroup (wgmma) mainloop.
    bool isWgmma() const { return getMma() == kMmaWgmma; }
  }];
  let genVerifyDecl = 1;
}

def Attn_BandScheduleAttr : AttrDef<Attn_Dialect, "BandSchedule"> {
  let mnemonic = "band_schedule";
  let summary = "A closed-form block schedule: the mask is a band of delta = p - k";
  let description = [{
    Pairs with `lo <= p - k <= hi` and `(p - k) % period == 0` are allowed.
    Each query tile visits the kv tiles the band touches, classified FULL or
    PARTIAL from the tile indices alone: O(1) memory, any sequence length.
    Example (causal): `#attn.band_schedule<lo = 0, hi = inf, period = 1>`
  }];
  let parameters = (ins "int64_t":$lo, "int64_t":$hi, "int64_t":$period);
  let assemblyFormat = [{
    `<` `lo` `=` custom<Bound>($lo) `,` `hi` `=` custom<Bound>($hi) `,` `period` `=` $period `>`
  }];
}

def Attn_TableScheduleAttr : AttrDef<Attn_Dialect, "TableSchedule"> {
  let mnemonic = "table_schedule";
  let summary = "A block schedule given as a table, built at compile time";
  let description = [{
    Per query tile, the list of kv tiles to visit with a FULL/PARTIAL flag
    (row offsets, column tile indices, flags), for masks without a closed
    form (block-sparse, global tokens, unions). The attribute records the
    table's shape; the table itself is rebuilt deterministically from the mask
    where it is emitted. Example:
    `#attn.table_schedule<row_tiles = 32, col_tiles = 64, full = 100, partial = 40>`
  }];
  let parameters = (ins "int64_t":$row_tiles, "int64_t":$col_tiles, "int64_t":$full,
                        "int64_t":$partial);
  let assemblyFormat = "`<` struct(params) `>`";
}

def Attn_LaunchScheduleAttr : AttrDef<Attn_Dialect, "LaunchSchedule"> {
  let mnemonic = "launch_schedule";
  let summary = "A table block schedule built at launch time";
  let description = [{
    For masks without a closed form whose lengths or global tokens are only
    known at launch: the runtime builds the table then. Example:
    `#attn.launch_schedule`
  }];
}

#endif // ATTNC_DIALECT_ATTN_ATTRS_TD
