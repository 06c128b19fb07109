//===- SpecToIR.cpp - Spec -> attn dialect --------------------------------===//

#include "attnc/Compiler/SpecToIR.h"
#include "attnc/Dialect/Attn/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Verifier.h"

using namespace mlir;

namespace attnc {

void registerAttncDialects(DialectRegistry &registry) {
  registry.insert<attn::AttnDialect, func::FuncDialect, arith::ArithDialect>();
}

static Location toLoc(MLIRContext &ctx, const spec::Location &loc) {
  return FileLineColLoc::get(&ctx, loc.file, loc.line, loc.column);
}

OwningOpRef<ModuleOp> specToModule(MLIRContext &ctx, const spec::Spec &s) {
  ctx.loadDialect<attn::AttnDialect, func::FuncDialect>();
  OpBuilder b(&ctx);
  Location specLoc = toLoc(ctx, s.loc);
  OwningOpRef<ModuleOp> module = ModuleOp::create(specLoc);

  Type element = s.dtype == spec::DType::BF16 ? Type(b.getBF16Type()) : Type(b.getF16Type());
  int64_t nq = s.seqLenQ.value_or(ShapedType::kDynamic);
  int64_t nk = s.seqLenKV.value_or(ShapedType::kDynamic);
  int64_t batch = ShapedType::kDynamic;
  auto qType = RankedTensorType::get({batch, nq, s.queryHeads, s.headDim}, element);
  auto kvType = RankedTensorType::get({batch, nk, s.kvHeads, s.headDim}, element);
  auto lseType = RankedTensorType::get({batch, s.queryHeads, nq}, b.getF32Type());

  b.setInsertionPointToEnd(module->getBody());
  auto func = func::FuncOp::create(b, specLoc, s.name,
                                   b.getFunctionType({qType, kvType, kvType}, {qType, lseType}));
  Block *body = func.addEntryBlock();
  b.setInsertionPointToEnd(body);
  auto op = attn::AttentionOp::create(
      b, toLoc(ctx, s.maskLoc.loc), qType, lseType, body->getArgument(0), body->getArgument(1),
      body->getArgument(2), attn::maskToAttr(&ctx, s.mask), b.getI64IntegerAttr(s.queryHeads),
      b.getI64IntegerAttr(s.kvHeads), b.getF64FloatAttr(s.scale),
      s.backward ? b.getUnitAttr() : UnitAttr(),
      s.backward && s.deterministic ? b.getUnitAttr() : UnitAttr(), /*tile=*/nullptr, /*schedule=*/nullptr,
      /*residue_classes=*/nullptr);
  func::ReturnOp::create(b, specLoc, op.getResults());

  if (failed(verify(*module)))
    return nullptr;
  return module;
}

} // namespace attnc
