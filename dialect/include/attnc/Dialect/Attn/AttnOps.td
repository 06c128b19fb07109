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
                       F64Attr:$scale, UnitAttr:$backward, UnitAttr:$deterministic,
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
    (`deterministic` $deterministic^)?
    (`residues` `(` $residue_classes^ `)`)?
    (`tile` `(` $tile^ `)`)?
    (`schedule` `(` $schedule^ `)`)?
    attr-dict `:` type($query) `,` type($key) `,` type($value)
    `->` type($output) `,` type($lse)
  }];
  let hasVerifier = 1;
}

def Attn_F32Tensor3 : RankedTensorOf<[F32], [HasAnyRankOfPred<[3]>]>;
def Attn_F32Tensor4 : RankedTensorOf<[F32], [HasAnyRankOfPred<[4]>]>;

def Attn_AttentionGradOp : Attn_Op<"attention_grad", [Pure]> {
  let summary = "The gradients dQ, dK, dV of attn.attention, recomputing P from the saved LSE";
  let description = [{
    The backward pass of the attn.attention with the same mask, heads and
    scale, planned by attn-schedule-recompute. Its operands are what the
    forward saved (its inputs Q, K, V, its output O and the float32
    log-sum-exp LSE [B, Hq, Nq]) and dO = dL/dO; no N x N tensor exists. The
    plan: delta = rowsum(dO * O) per query row; a kv-stationary pass that,
    per kv tile, walks the query tiles that see it (the transposed schedule),
    recomputes P = exp(scale * Q K^T - LSE) and accumulates
    dV = P^T dO and dK = scale * dS^T Q with dS = P * (dO V^T - delta), summing
    over the query heads of a GQA group; and dQ = scale * dS K, either through
    float32 atomics from that same pass or, with `deterministic`, by a
    separate q-stationary pass (bitwise reproducible). A fully masked query
    row (LSE = -inf) contributes nothing and gets dQ = 0. `kv_tile` is the
    tile of the kv-stationary pass (keys per kv tile: block_n); the
    forward's `tile` otherwise (tables share the forward's tiles).

    ```mlir
    %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %lse, %do mask(#attn.causal)
        heads(16, 4) scale(0.125) tile(<block_m = 64, block_n = 64, warps = 4>)
        schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
        : tensor<?x?x16x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>,
          tensor<?x?x16x64xbf16>, tensor<?x16x?xf32>, tensor<?x?x16x64xbf16>
        -> tensor<?x?x16x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>
    ```
  }];
  let arguments = (ins Attn_HalfTensor:$query, Attn_HalfTensor:$key, Attn_HalfTensor:$value,
                       Attn_HalfTensor:$output, Attn_LseTensor:$lse, Attn_HalfTensor:$d_output,
                       Attn_MaskAttrInterface:$mask,
                       I64Attr:$query_heads, I64Attr:$kv_heads, F64Attr:$scale,
                       UnitAttr:$deterministic,
                       OptionalAttr<Attn_TileAttr>:$tile,
                       OptionalAttr<Attn_TileAttr>:$kv_tile,
                       OptionalAttr<AnyAttrOf<[Attn_BandScheduleAttr, Attn_TableScheduleAttr,
                                               Attn_LaunchScheduleAttr]>>:$schedule,
                       OptionalAttr<I64Attr>:$residue_classes);
  let results = (outs Attn_HalfTensor:$d_query, Attn_HalfTensor:$d_key, Attn_HalfTensor:$d_value);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $output `,` $lse `,` $d_output
    `mask` `(` $mask `)`
    `heads` `(` $query_heads `,` $kv_heads `)`
    `scale` `(` $scale `)`
    (`deterministic` $deterministic^)?
    (`residues` `(` $residue_classes^ `)`)?
    (`tile` `(` $tile^ `)`)?
    (`kv_tile` `(` $kv_tile^ `)`)?
    (`schedule` `(` $schedule^ `)`)?
    attr-dict `:` type($query) `,` type($key) `,` type($value) `,` type($output) `,`
    type($lse) `,` type($d_output) `->` type($d_query) `,` type($d_key) `,` type($d_value)
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

def Attn_YieldOp : Attn_Op<"yield", [Pure, Terminator, ReturnLike,
                                     ParentOneOf<["KvLoopOp", "QLoopOp"]>]> {
  let summary = "Yield the loop-carried values of attn.kv_loop or attn.q_loop";
  let arguments = (ins Variadic<AnyType>:$values);
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
}

def Attn_QKOp : Attn_Op<"qk", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>, Pure]> {
  let summary = "S = A B^T: Q K^T in the forward; S^T = K Q^T, dP = dO V^T, dP^T = V dO^T in the backward";
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
    `transposed`: S is S^T (BLOCK_N keys by BLOCK_M query rows), in the
    backward's kv-stationary pass.
  }];
  let arguments = (ins Attn_F32Tile:$s, Index:$qtile, Index:$ktile, I1:$partial,
                       OptionalAttr<StrAttr>:$form, UnitAttr:$transposed);
  let results = (outs Attn_F32Tile:$result);
  let assemblyFormat = [{
    $s `tile` `(` $qtile `,` $ktile `)` `if` `(` $partial `)` (`transposed` $transposed^)? attr-dict
    `:` type($s)
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

//===----------------------------------------------------------------------===//
// The backward loops (attn-lower-to-loops of attn.attention_grad)
//
// attn.grad_preprocess computes delta; attn.grad_kv_loop is the kv-stationary
// pass (one body per (batch, kv head, kv tile), attn.q_loop walking the query
// tiles that see the kv tile); dQ comes from attn.dq_atomic_add in that body
// plus attn.dq_convert, or from the q-stationary attn.grad_q_loop.
// Scores in the backward are unscaled (Q is loaded as is, since dK needs it):
// attn.recompute_p applies scale * log2(e).
//===----------------------------------------------------------------------===//

def Attn_GradPreprocessOp : Attn_Op<"grad_preprocess", [Pure,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "delta = rowsum(dO * O) per query row, float32 [B, Hq, Nq]";
  let description = [{
    One grid point per (batch, query head, query tile of `block_m` rows).
    `%delta = attn.grad_preprocess %o, %do block_m(64) : tensor<?x?x16x64xbf16>, tensor<?x?x16x64xbf16> -> tensor<?x16x?xf32>`
  }];
  let arguments = (ins Attn_HalfTensor:$output, Attn_HalfTensor:$d_output, I64Attr:$block_m);
  let results = (outs Attn_F32Tensor3:$delta);
  let assemblyFormat = [{
    $output `,` $d_output `block_m` `(` $block_m `)` attr-dict `:` type($output) `,`
    type($d_output) `->` type($delta)
  }];
}

def Attn_GradKvLoopOp : Attn_Op<"grad_kv_loop", [SingleBlock,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmBlockArgumentNames", "getAsmResultNames"]>]> {
  let summary = "The kv-stationary backward loop nest over (batch, kv head, kv tile)";
  let description = [{
    The body block takes (batch, kv head, kv tile) indices, loads its K and
    V tiles once, accumulates dK and dV over every query tile that sees the
    kv tile (attn.q_loop, all query heads of the group) and yields them with
    attn.grad_yield: the loop stores scale * dK and dV. With `atomic_dq` the
    body also adds scale * dS K into the float32 dq_accum result
    ([B, Nq, Hq, D]) with attn.dq_atomic_add. Keys past the key length are
    computed and dropped; keys no query sees get zero gradients.
  }];
  let arguments = (ins Attn_HalfTensor:$query, Attn_HalfTensor:$key, Attn_HalfTensor:$value,
                       Attn_LseTensor:$lse, Attn_HalfTensor:$d_output, Attn_F32Tensor3:$delta,
                       Attn_MaskAttrInterface:$mask,
                       I64Attr:$query_heads, I64Attr:$kv_heads, F64Attr:$scale,
                       Attn_TileAttr:$tile,
                       AnyAttrOf<[Attn_BandScheduleAttr, Attn_TableScheduleAttr,
                                  Attn_LaunchScheduleAttr]>:$schedule,
                       UnitAttr:$atomic_dq);
  let results = (outs Attn_HalfTensor:$d_key, Attn_HalfTensor:$d_value,
                      Optional<Attn_F32Tensor4>:$dq_accum);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $lse `,` $d_output `,` $delta
    `mask` `(` $mask `)`
    `heads` `(` $query_heads `,` $kv_heads `)`
    `scale` `(` $scale `)`
    (`atomic_dq` $atomic_dq^)?
    `tile` `(` $tile `)`
    `schedule` `(` $schedule `)`
    attr-dict `:` type($query) `,` type($key) `,` type($value) `,` type($lse) `,`
    type($d_output) `,` type($delta) `->` type($d_key) `,` type($d_value) (`,` type($dq_accum)^)?
    $body
  }];
  let hasVerifier = 1;
}

def Attn_QLoopOp : Attn_Op<"q_loop", [SingleBlock, AllTypesMatch<["init_args", "results"]>,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmBlockArgumentNames", "getAsmResultNames"]>]> {
  let summary = "For each query head of a GQA group and each query tile that sees kv tile `ktile`";
  let description = [{
    The transposed schedule: runs the body once per (query head h of kv
    head `kv_head`'s group of `group` heads, query tile qt) with qt ascending
    over the query tiles whose (qt, ktile) tile the forward schedule lists,
    and whether it is PARTIAL. The schedule attribute is the forward's; band
    schedules walk the query tiles from the closed form, tables the
    transposed launch-time table. `iter_args` carry dK and dV.

    ```mlir
    %dk, %dv = attn.q_loop %kt, %kvh group(4) schedule(#attn.band_schedule<...>)
        iter_args(%dk0, %dv0) : tensor<64x64xf32>, tensor<64x64xf32> {
    ^bb0(%h: index, %qt: index, %partial: i1, %dk_i: ..., %dv_i: ...):
      ...
      attn.yield %dk_new, %dv_new : ...
    }
    ```
  }];
  let arguments = (ins Index:$ktile, Index:$kv_head, I64Attr:$group,
                       AnyAttrOf<[Attn_BandScheduleAttr, Attn_TableScheduleAttr,
                                  Attn_LaunchScheduleAttr]>:$schedule,
                       Variadic<AnyType>:$init_args);
  let results = (outs Variadic<AnyType>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $ktile `,` $kv_head `group` `(` $group `)` `schedule` `(` $schedule `)`
    `iter_args` `(` $init_args `)` attr-dict `:` type($init_args) $body
  }];
  let hasVerifier = 1;
}

def Attn_GradQLoopOp : Attn_Op<"grad_q_loop", [SingleBlock,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmBlockArgumentNames", "getAsmResultNames"]>]> {
  let summary = "The q-stationary, deterministic dQ loop nest over (batch, query head, query tile)";
  let description = [{
    The body block takes (batch, query head, query tile), walks the kv tiles
    of the forward schedule (attn.kv_loop) recomputing P and dS, and yields
    its dQ tile with attn.grad_yield; the loop stores scale * dQ. Each dQ
    element is summed by one grid point in a fixed order: bitwise
    reproducible.
  }];
  let arguments = (ins Attn_HalfTensor:$query, Attn_HalfTensor:$key, Attn_HalfTensor:$value,
                       Attn_LseTensor:$lse, Attn_HalfTensor:$d_output, Attn_F32Tensor3:$delta,
                       Attn_MaskAttrInterface:$mask,
                       I64Attr:$query_heads, I64Attr:$kv_heads, F64Attr:$scale,
                       Attn_TileAttr:$tile,
                       AnyAttrOf<[Attn_BandScheduleAttr, Attn_TableScheduleAttr,
                                  Attn_LaunchScheduleAttr]>:$schedule);
  let results = (outs Attn_HalfTensor:$d_query);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $lse `,` $d_output `,` $delta
    `mask` `(` $mask `)`
    `heads` `(` $query_heads `,` $kv_heads `)`
    `scale` `(` $scale `)`
    `tile` `(` $tile `)`
    `schedule` `(` $schedule `)`
    attr-dict `:` type($query) `,` type($key) `,` type($value) `,` type($lse) `,`
    type($d_output) `,` type($delta) `->` type($d_query) $body
  }];
}

def Attn_GradYieldOp : Attn_Op<"grad_yield", [Pure, Terminator,
                                             ParentOneOf<["GradKvLoopOp", "GradQLoopOp"]>]> {
  let summary = "The gradient tiles of one backward grid point (dK, dV or dQ)";
  let arguments = (ins Variadic<Attn_F32Tile>:$values);
  let assemblyFormat = "$values attr-dict `:` type($values)";
}

def Attn_DqConvertOp : Attn_Op<"dq_convert", [Pure,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "dQ = dq_accum rounded to the element type (atomic dQ)";
  let arguments = (ins Attn_F32Tensor4:$dq_accum, I64Attr:$block_m);
  let results = (outs Attn_HalfTensor:$d_query);
  let assemblyFormat = [{
    $dq_accum `block_m` `(` $block_m `)` attr-dict `:` type($dq_accum) `->` type($d_query)
  }];
}

def Attn_LoadRowOp : Attn_Op<"load_row", [Pure,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "Load the (rows) vector of LSE or delta of one query tile, zero past the end";
  let description = [{
    `%lse_row = attn.load_row %lse[%b, %h, %qt] : tensor<?x16x?xf32> -> tensor<64xf32>`
  }];
  let arguments = (ins Attn_F32Tensor3:$source, Index:$batch, Index:$head, Index:$tile);
  let results = (outs Attn_F32Tile:$result);
  let assemblyFormat = [{
    $source `[` $batch `,` $head `,` $tile `]` attr-dict `:` type($source) `->` type($result)
  }];
}

def Attn_RecomputePOp : Attn_Op<"recompute_p", [Pure, AllTypesMatch<["s", "result"]>,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "P = exp2(S * scale_log2 - LSE * log2(e)) from the saved LSE";
  let description = [{
    The forward's normalized probabilities, recomputed from unscaled scores
    S and the per-query LSE: 0 where S = -inf (masked) and on rows with
    LSE = -inf (fully masked), never NaN. `transposed`: S is S^T (keys by
    query rows) and LSE indexes its columns.
  }];
  let arguments = (ins Attn_F32Tile:$s, Attn_F32Tile:$lse, F64Attr:$scale_log2,
                       UnitAttr:$transposed);
  let results = (outs Attn_F32Tile:$result);
  let assemblyFormat = [{
    $s `,` $lse `scale` `(` $scale_log2 `)` (`transposed` $transposed^)? attr-dict `:`
    type($s) `,` type($lse)
  }];
}

def Attn_DsOp : Attn_Op<"ds", [Pure, AllTypesMatch<["p", "dp", "result"]>,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "dS = P * (dP - delta), delta per query row";
  let description = [{
    `transposed`: P and dP are P^T and dP^T (keys by query rows) and delta
    indexes the columns.
  }];
  let arguments = (ins Attn_F32Tile:$p, Attn_F32Tile:$dp, Attn_F32Tile:$delta,
                       UnitAttr:$transposed);
  let results = (outs Attn_F32Tile:$result);
  let assemblyFormat = [{
    $p `,` $dp `,` $delta (`transposed` $transposed^)? attr-dict `:` type($p) `,` type($delta)
  }];
}

def Attn_MatmulAccOp : Attn_Op<"matmul_acc", [Pure, AllTypesMatch<["acc", "result"]>,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "acc + A B for an (M, K) A and a (K, N) B (dV, dK and dQ updates)";
  let arguments = (ins Attn_F32Tile:$acc, Attn_F32Tile:$a, Attn_F32Tile:$b);
  let results = (outs Attn_F32Tile:$result);
  let assemblyFormat = [{
    $acc `,` $a `,` $b attr-dict `:` type($acc) `,` type($a) `,` type($b)
  }];
  let hasVerifier = 1;
}

def Attn_DqAtomicAddOp : Attn_Op<"dq_atomic_add", [HasParent<"QLoopOp">]> {
  let summary = "dq_accum[b, rows of qt, h] += scale * dS K, with float32 atomics";
  let description = [{
    In the kv-stationary pass with atomic dQ: dS^T (BLOCK_N, BLOCK_M) and
    the K tile (BLOCK_N, D) of this step add their part of query tile qt's dQ
    into the enclosing attn.grad_kv_loop's dq_accum. Order of the additions
    is not fixed (not bitwise reproducible).
  }];
  let arguments = (ins Attn_F32Tile:$ds_t, Attn_F32Tile:$k, Index:$batch, Index:$qtile,
                       Index:$head, F64Attr:$scale);
  let assemblyFormat = [{
    $ds_t `,` $k `to` `[` $batch `,` $qtile `,` $head `]` `scale` `(` $scale `)` attr-dict
    `:` type($ds_t) `,` type($k)
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
