//===- AttnDialect.h - The attn dialect and its attributes ------*- C++ -*-===//

#ifndef ATTNC_DIALECT_ATTN_ATTNDIALECT_H
#define ATTNC_DIALECT_ATTN_ATTNDIALECT_H

#include "attnc/Mask/Mask.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"

#include "attnc/Dialect/Attn/AttnDialect.h.inc"
#include "attnc/Dialect/Attn/AttnAttrInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "attnc/Dialect/Attn/AttnAttrs.h.inc"

namespace attnc::attn {

/// The attribute tree of a mask::Mask (the inverse of MaskAttrInterface::toMask).
MaskAttrInterface maskToAttr(mlir::MLIRContext *ctx, const mask::Mask &mask);

/// Checks what a mask attribute can only check against the key length Nk
/// (global tokens < Nk, block layout rows and columns < ceil(Nk / block)).
mlir::LogicalResult
verifyMaskForKeyLength(MaskAttrInterface mask, int64_t nk,
                       llvm::function_ref<mlir::InFlightDiagnostic()> emitError);

} // namespace attnc::attn

#endif // ATTNC_DIALECT_ATTN_ATTNDIALECT_H
