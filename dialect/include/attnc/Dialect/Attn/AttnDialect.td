//===- AttnDialect.td - The attn dialect -------------------*- tablegen -*-===//

#ifndef ATTNC_DIALECT_ATTN_DIALECT_TD
#define ATTNC_DIALECT_ATTN_DIALECT_TD

include "mlir/IR/OpBase.td"

def Attn_Dialect : Dialect {
  let name = "attn";
  let summary = "Attention with structured masks, from spec to flash loop";
  let description = [{
    The `attn` dialect holds one attention computation per `attn.attention`
    op, with its mask as an attribute tree (`#attn.window`, `#attn.union`, ...)
    and the head grouping, scale and flags as attributes. Passes attach the
    tile configuration and the block schedule before lowering to loops.

    Semantics (ARCHITECTURE.md): query row `i` sits at absolute position
    `p = i + Nk - Nq`; every mask predicate reads the query as `p`.
  }];
  let cppNamespace = "::attnc::attn";
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = ["::mlir::func::FuncDialect"];
  let extraClassDeclaration = [{
    /// Registers the mask attributes (defined in AttnAttrs.cpp).
    void registerAttributes();
  }];
}

class Attn_Op<string mnemonic, list<Trait> traits = []>
    : Op<Attn_Dialect, mnemonic, traits>;

#endif // ATTNC_DIALECT_ATTN_DIALECT_TD
