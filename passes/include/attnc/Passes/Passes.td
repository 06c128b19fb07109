//===- Passes.td - attnc passes ----------------------------*- tablegen -*-===//

#ifndef ATTNC_PASSES_TD
#define ATTNC_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnCanonicalizeMask : Pass<"attn-canonicalize-mask"> {
  let summary = "Bring every attn.attention mask to its algebraic normal form";
  let description = [{
    Rewrites the mask attribute of each `attn.attention` with the mask
    algebra (mask::canonicalize): dilation 1 windows become plain windows,
    nested unions and intersections flatten, a causal mask intersected with a
    window becomes a window with right 0, global tokens are sorted and
    deduplicated, and full and empty masks are detected. The predicate of the
    mask never changes.

    Before:
    ```mlir
    mask(#attn.intersect<[#attn.causal,
                          #attn.union<[#attn.window<left = 64, right = 64>]>]>)
    ```
    After:
    ```mlir
    mask(#attn.window<left = 64, right = 0>)
    ```
  }];
  let dependentDialects = ["::attnc::attn::AttnDialect"];
}

#endif // ATTNC_PASSES_TD
