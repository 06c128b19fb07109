//===- AttnOps.td - Ops of the attn dialect ----------------*- tablegen -*-===//

#ifndef ATTNC_DIALECT_ATTN_OPS_TD
#define ATTNC_DIALECT_ATTN_OPS_TD

include "attnc/Dialect/Attn/AttnDialect.td"
include "attnc/Dialect/Attn/AttnAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/IR/OpAsmInterface.td"

def Attn_HalfTensor : RankedTensorOf<[BF16, F16], [HasAnyRankOfPred<[4]>]>;
def Attn_LseTensor : RankedTensorOf<[F32], [HasAnyRankOfPred<[3]>]>;

def Attn_AttentionOp : Attn_Op<"attention", [Pure]> {
  let summary = "Masked multi-head attention: O = softmax(scale * Q K^T + mask) V";
  let description = [{
    Q is [B, Nq, Hq, D]; K and V are [B, Nk, Hkv, D]; O is like Q and LSE
    (the natural-log log-sum-exp of each row, float32) is [B, Hq, Nq]. Query
    head h reads kv head h / (Hq / Hkv). Batch and sequence lengths may be
    dynamic (given at launch); heads and D are static. A fully masked row
    gives O = 0 and LSE = -inf. `backward` asks for gradient kernels too.
    attn-tile attaches `tile`, attn-classify-blocks `schedule`.
    `residues(d)` (from attn-plan-layout) means the mask holds within each of
    the d residue classes p = k (mod d) of positions, re-indexed p -> p / d:
    the launch runs the loop once per class on strided views.

    Example:
    ```mlir
    %o, %lse = attn.attention %q, %k, %v
        mask(#attn.union<[#attn.window<left = 256, right = 256>, #attn.global_tokens<[0]>]>)
        heads(16, 16) scale(0.088388347648309) backward
        : tensor<?x4096x16x128xbf16>, tensor<?x4096x16x128xbf16>, tensor<?x4096x16x128xbf16>
        -> tensor<?x4096x16x128xbf16>, tensor<?x16x4096xf32>
    ```
  }];
  let arguments = (ins Attn_HalfTensor:$query, Attn_HalfTensor:$key, Attn_HalfTensor:$value,
                       Attn_MaskAttrInterface:$mask,
                       I64Attr:$query_heads, I64Attr:$kv_heads,
                       F64Attr:$scale, UnitAttr:$backward,
                       OptionalAttr<Attn_TileAttr>:$tile,
                       OptionalAttr<AnyAttrOf<[Attn_BandScheduleAttr, Attn_TableScheduleAttr,
                                               Attn_LaunchScheduleAttr]>>:$schedule,
                       OptionalAttr<I64Attr>:$residue_classes);
  let results = (outs Attn_HalfTensor:$output, Attn_LseTensor:$lse);
  let assemblyFormat = [{
    $query `,` $key `,` $value
    `mask` `(` $mask `)`
    `heads` `(` $query_heads `,` $kv_heads `)`
    `scale` `(` $scale `)`
    (`backward` $backward^)?
    (`residues` `(` $residue_classes^ `)`)?
    (`tile` `(` $tile^ `)`)?
    (`schedule` `(` $schedule^ `)`)?
    attr-dict `:` type($query) `,` type($key) `,` type($value)
    `->` type($output) `,` type($lse)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// The flash loop (attn-lower-to-loops)
//
// One attn.flash_loop computes every (batch, query head, query tile) of an
// attention with the body region; the body loads its Q tile, walks the kv
// tiles of its schedule with attn.kv_loop (online softmax carried in
// iter_args) and yields its O and LSE tiles. Tiles are f32 tensors: inputs
// are converted on load, outputs rounded on store.
//===----------------------------------------------------------------------===//

def Attn_F32Tile : RankedTensorOf<[F32]>;

def Attn_FlashLoopOp : Attn_Op<"flash_loop", [SingleBlock,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmBlockArgumentNames", "getAsmResultNames"]>]> {
  let summary = "The fused flash-attention loop nest over (batch, query head, query tile)";
  let description = [{
    Computes the same O and LSE as the attn.attention it replaces. The body
    block takes (batch, query head, query tile) indices and yields the
    (BLOCK_M, HEAD_DIM) output tile and the (BLOCK_M) LSE tile of that grid
    point. Rows past the query length are computed and dropped.

    ```mlir
    %o, %lse = attn.flash_loop %q, %k, %v mask(#attn.causal) heads(16, 4) scale(0.125)
        tile(<block_m = 128, block_n = 64>) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
        : tensor<?x?x16x64xbf16>, ... -> tensor<?x?x16x64xbf16>, tensor<?x16x?xf32> {
    ^bb0(%b: index, %h: index, %qt: index):
      ...
      attn.tile_yield %o_tile, %lse_tile : tensor<128x64xf32>, tensor<128xf32>
    }
    ```
  }];
  let arguments = (ins Attn_HalfTensor:$query, Attn_HalfTensor:$key, Attn_HalfTensor:$value,
                       Attn_MaskAttrInterface:$mask,
                       I64Attr:$query_heads, I64Attr:$kv_heads, F64Attr:$scale,
                       Attn_TileAttr:$tile,
                       AnyAttrOf<[Attn_BandScheduleAttr, Attn_TableScheduleAttr,
                                  Attn_LaunchScheduleAttr]>:$schedule,
                       OptionalAttr<I64Attr>:$residue_classes);
  let results = (outs Attn_HalfTensor:$output, Attn_LseTensor:$lse);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $query `,` $key `,` $value
    `mask` `(` $mask `)`
    `heads` `(` $query_heads `,` $kv_heads `)`
    `scale` `(` $scale `)`
    (`residues` `(` $residue_classes^ `)`)?
    `tile` `(` $tile `)`
    `schedule` `(` $schedule `)`
    attr-dict `:` type($query) `,` type($key) `,` type($value)
    `->` type($output) `,` type($lse) $body
  }];
  let hasVerifier = 1;
}

def Attn_TileYieldOp : Attn_Op<"tile_yield", [Pure, Terminator, HasParent<"FlashLoopOp">]> {
  let summary = "The O tile (BLOCK_M, HEAD_DIM) and LSE tile (BLOCK_M) of one grid point";
  let arguments = (ins Attn_F32Tile:$output, Attn_F32Tile:$lse);
  let assemblyFormat = "$output `,` $lse attr-dict `:` type($output) `,` type($lse)";
}

def Attn_LoadTileOp : Attn_Op<"load_tile", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>, Pure]> {
  let summary = "Load a (rows, HEAD_DIM) tile of Q, K or V as f32, zero past the sequence end";
  let description = [{
    Rows [tile * rows, (tile + 1) * rows) of sequence dimension 1 at batch
    `batch` and head `head`, converted to f32 and multiplied by `scale`
    (the Q tile carries scale * log2(e) so that S lands in the log2 domain).

    `%q_tile = attn.load_tile %q[%b, %qt, %h] scale(0.18) : tensor<?x?x16x64xbf16> -> tensor<128x64xf32>`
  }];
  let arguments = (ins Attn_HalfTensor:$source, Index:$batch, Index:$tile, Index:$head,
                       DefaultValuedAttr<F64Attr, "1.0">:$scale);
  let results = (outs Attn_F32Tile:$result);
  let assemblyFormat = [{
    $source `[` $batch `,` $tile `,` $head `]` (`scale` `(` $scale^ `)`)? attr-dict
    `:` type($source) `->` type($result)
  }];
}

def Attn_KvLoopOp : Attn_Op<"kv_loop", [SingleBlock, AllTypesMatch<["init_args", "results"]>,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmBlockArgumentNames", "getAsmResultNames"]>]> {
  let summary = "For each kv tile the schedule lists for query tile `qtile`";
  let description = [{
    Runs the body once per scheduled kv tile, in ascending order, with the
    tile index and whether it is PARTIAL (needs the mask); EMPTY tiles are
    never visited. `iter_args` carry the online-softmax state (m, l, O).
    The schedule is the band's closed form or the launch-time table.

    ```mlir
    %m, %l, %acc = attn.kv_loop %qt schedule(#attn.band_schedule<...>)
        iter_args(%m0, %l0, %acc0) : tensor<128xf32>, tensor<128xf32>, tensor<128x64xf32> {
    ^bb0(%kt: index, %partial: i1, %m_i: tensor<128xf32>, %l_i: ..., %acc_i: ...):
      ...
      attn.yield %m_new, %l_new, %acc_new : ...
    }
    ```
  }];
  let arguments = (ins Index:$qtile,
                       AnyAttrOf<[Attn_BandScheduleAttr, Attn_TableScheduleAttr,
                                  Attn_LaunchScheduleAttr]>:$schedule,
                       Variadic<AnyType>:$init_args);
  let results = (outs Variadic<AnyType>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $qtile `schedule` `(` $schedule `)` `iter_args` `(` $init_args `)` attr-dict
    `:` type($init_args) $body
  }];
  let hasVerifier = 1;
}

def Attn_YieldOp : Attn_Op<"yield", [Pure, Terminator, ReturnLike, HasParent<"KvLoopOp">]> {
  let summary = "Yield the loop-carried values of attn.kv_loop";
  let arguments = (ins Variadic<AnyType>:$values);
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
}

def Attn_QKOp : Attn_Op<"qk", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>, Pure]> {
  let summary = "S = Q K^T for a (BLOCK_M, D) Q tile and a (BLOCK_N, D) K tile";
  let arguments = (ins Attn_F32Tile:$q, Attn_F32Tile:$k);
  let results = (outs Attn_F32Tile:$s);
  let assemblyFormat = "$q `,` $k attr-dict `:` type($q) `,` type($k) `->` type($s)";
}

def Attn_MaskTileOp : Attn_Op<"mask_tile", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>, Pure, AllTypesMatch<["s", "result"]>]> {
  let summary = "S = allowed(p, k) ? S : -inf, on PARTIAL tiles only";
  let description = [{
    When `partial` is true, sets every score of the (qtile, ktile) tile whose
    pair the mask forbids (or that lies past the key length) to -inf; on FULL
    tiles only the columns past the key length are cleared.
    attn-prepare-for-emission sets `form`: "band" (the closed-form predicate
    of the band schedule) or "bitmask" (the launch-time table's bits).
  }];
  let arguments = (ins Attn_F32Tile:$s, Index:$qtile, Index:$ktile, I1:$partial,
                       OptionalAttr<StrAttr>:$form);
  let results = (outs Attn_F32Tile:$result);
  let assemblyFormat = [{
    $s `tile` `(` $qtile `,` $ktile `)` `if` `(` $partial `)` attr-dict `:` type($s)
  }];
}

def Attn_RowMaxOp : Attn_Op<"row_max", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>, Pure, AllTypesMatch<["m", "result"]>]> {
  let summary = "m_new = max(m, rowmax(S))";
  let arguments = (ins Attn_F32Tile:$s, Attn_F32Tile:$m);
  let results = (outs Attn_F32Tile:$result);
  let assemblyFormat = "$s `,` $m attr-dict `:` type($s) `,` type($m)";
}

def Attn_Exp2DiffOp : Attn_Op<"exp2_diff", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>, Pure, AllTypesMatch<["s", "result"]>]> {
  let summary = "P = exp2(S - m_new) per row (0 where S = -inf or m_new = -inf)";
  let arguments = (ins Attn_F32Tile:$s, Attn_F32Tile:$m);
  let results = (outs Attn_F32Tile:$result);
  let assemblyFormat = "$s `,` $m attr-dict `:` type($s) `,` type($m)";
}

def Attn_RescaleOp : Attn_Op<"rescale", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>, Pure, AllTypesMatch<["m_old", "m_new", "alpha"]>]> {
  let summary = "alpha = exp2(m_old - m_new), 0 where m_old = -inf";
  let arguments = (ins Attn_F32Tile:$m_old, Attn_F32Tile:$m_new);
  let results = (outs Attn_F32Tile:$alpha);
  let assemblyFormat = "$m_old `,` $m_new attr-dict `:` type($m_old)";
}

def Attn_RowSumUpdateOp : Attn_Op<"row_sum_update", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>, Pure,
    AllTypesMatch<["l", "alpha", "result"]>]> {
  let summary = "l_new = alpha * l + rowsum(P)";
  let arguments = (ins Attn_F32Tile:$l, Attn_F32Tile:$alpha, Attn_F32Tile:$p);
  let results = (outs Attn_F32Tile:$result);
  let assemblyFormat = "$l `,` $alpha `,` $p attr-dict `:` type($l) `,` type($p)";
}

def Attn_PVUpdateOp : Attn_Op<"pv_update", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>, Pure, AllTypesMatch<["acc", "result"]>]> {
  let summary = "O_new = alpha * O + P V";
  let arguments = (ins Attn_F32Tile:$acc, Attn_F32Tile:$alpha, Attn_F32Tile:$p,
                       Attn_F32Tile:$v);
  let results = (outs Attn_F32Tile:$result);
  let assemblyFormat = [{
    $acc `,` $alpha `,` $p `,` $v attr-dict
    `:` type($acc) `,` type($alpha) `,` type($p) `,` type($v)
  }];
}

def Attn_FinalizeOp : Attn_Op<"finalize", [Pure, AllTypesMatch<["acc", "output"]>,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>,
    AllTypesMatch<["m", "l", "lse"]>]> {
  let summary = "O = acc / l and LSE = (m + log2 l) * ln 2; O = 0, LSE = -inf where l = 0";
  let arguments = (ins Attn_F32Tile:$m, Attn_F32Tile:$l, Attn_F32Tile:$acc);
  let results = (outs Attn_F32Tile:$output, Attn_F32Tile:$lse);
  let assemblyFormat = [{
    $m `,` $l `,` $acc attr-dict `:` type($m) `,` type($acc)
  }];
}

def Attn_FillOp : Attn_Op<"fill", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>, Pure]> {
  let summary = "A tile filled with one value (the online-softmax initial state)";
  let arguments = (ins F32Attr:$value);
  let results = (outs Attn_F32Tile:$result);
  let assemblyFormat = "$value attr-dict `:` type($result)";
}

#endif // ATTNC_DIALECT_ATTN_OPS_TD
