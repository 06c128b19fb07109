//===- AttnOps.td - Ops of the attn dialect ----------------*- tablegen -*-===//

#ifndef ATTNC_DIALECT_ATTN_OPS_TD
#define ATTNC_DIALECT_ATTN_OPS_TD

include "attnc/Dialect/Attn/AttnDialect.td"
include "attnc/Dialect/Attn/AttnAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

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
                                               Attn_LaunchScheduleAttr]>>:$schedule);
  let results = (outs Attn_HalfTensor:$output, Attn_LseTensor:$lse);
  let assemblyFormat = [{
    $query `,` $key `,` $value
    `mask` `(` $mask `)`
    `heads` `(` $query_heads `,` $kv_heads `)`
    `scale` `(` $scale `)`
    (`backward` $backward^)?
    (`tile` `(` $tile^ `)`)?
    (`schedule` `(` $schedule^ `)`)?
    attr-dict `:` type($query) `,` type($key) `,` type($value)
    `->` type($output) `,` type($lse)
  }];
  let hasVerifier = 1;
}

#endif // ATTNC_DIALECT_ATTN_OPS_TD
