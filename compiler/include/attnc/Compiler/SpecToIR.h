//===- SpecToIR.h - Spec -> attn dialect ------------------------*- C++ -*-===//
//
// The front end's IR generation, like toy's MLIRGen: one func.func per spec
// holding one attn.attention, every op located in the spec file.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_COMPILER_SPECTOIR_H
#define ATTNC_COMPILER_SPECTOIR_H

#include "attnc/Spec/Spec.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace attnc {

/// Registers every dialect attnc's IR uses.
void registerAttncDialects(mlir::DialectRegistry &registry);

/// The module of a loaded spec, verified; null (after emitting diagnostics
/// through the context) if verification fails.
///
///   func.func @<name>(%q: tensor<?xNqxHqxDxT>, %k: tensor<?xNkxHkvxDxT>,
///                     %v: tensor<?xNkxHkvxDxT>)
///       -> (tensor<?xNqxHqxDxT>, tensor<?xHqxNqxf32>)
///
/// Batch is dynamic; lengths are dynamic when the spec leaves them to launch.
mlir::OwningOpRef<mlir::ModuleOp> specToModule(mlir::MLIRContext &context,
                                               const spec::Spec &spec);

} // namespace attnc

#endif // ATTNC_COMPILER_SPECTOIR_H
