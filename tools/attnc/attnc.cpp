//===- attnc.cpp - The attnc compiler driver ------------------------------===//
//
//   attnc SPEC [-o PATH] --emit=KIND
//
// Loads a spec (JSON), builds the attn IR and writes the requested stage.
// Errors name the file, line, column and JSON pointer; a failed run exits
// non-zero and leaves no output file behind.
//
//===----------------------------------------------------------------------===//

#include "attnc/Compiler/Output.h"
#include "attnc/Compiler/SpecToIR.h"
#include "attnc/Passes/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace cl = llvm::cl;
using namespace attnc;

namespace {

/// Every output kind of --emit, with its help text.
struct EmitKind {
  const char *name;
  const char *help;
};
constexpr EmitKind kEmitKinds[] = {
    {"mlir", "the attn dialect as imported from the spec, verified"},
};

std::string emitKindList() {
  std::string list;
  for (const EmitKind &k : kEmitKinds)
    list += (list.empty() ? "" : ", ") + std::string(k.name);
  return list;
}

std::string emitHelp() {
  std::string help = "What to write:";
  for (const EmitKind &k : kEmitKinds)
    help += std::string("\n    ") + k.name + ": " + k.help;
  return help;
}

cl::OptionCategory attncCategory("attnc options");

/// Prints MLIR diagnostics as FILE:LINE:COL: error: MESSAGE.
void printDiagnostic(mlir::Diagnostic &diag) {
  const char *severity = diag.getSeverity() == mlir::DiagnosticSeverity::Error     ? "error"
                         : diag.getSeverity() == mlir::DiagnosticSeverity::Warning ? "warning"
                                                                                    : "note";
  if (auto loc = llvm::dyn_cast<mlir::FileLineColLoc>(diag.getLocation()))
    llvm::errs() << loc.getFilename() << ":" << loc.getLine() << ":" << loc.getColumn() << ": ";
  else
    llvm::errs() << "attnc: ";
  llvm::errs() << severity << ": " << diag.str() << "\n";
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  static cl::opt<std::string> specPath(cl::Positional, cl::desc("SPEC"), cl::Required,
                                       cl::cat(attncCategory));
  static cl::opt<std::string> outputPath(
      "o", cl::desc("Output path ('-' for standard output, the default); written whole or "
                    "not at all"),
      cl::value_desc("PATH"), cl::init("-"), cl::cat(attncCategory));
  static cl::opt<std::string> emit("emit", cl::desc(emitHelp()), cl::value_desc("KIND"),
                                   cl::init("mlir"), cl::cat(attncCategory));

  cl::HideUnrelatedOptions(attncCategory);
  cl::AddExtraVersionPrinter(
      [](llvm::raw_ostream &os) { os << "attnc " << ATTNC_VERSION << "\n"; });
  cl::ParseCommandLineOptions(
      argc, argv,
      "attnc: compiles an attention spec (JSON) into IR and kernels\n\n"
      "  attnc SPEC [-o PATH] --emit=KIND\n\n"
      "The spec language is described in specs/README.md.\n");

  bool known = false;
  for (const EmitKind &k : kEmitKinds)
    known |= emit == k.name;
  if (!known) {
    llvm::errs() << "attnc: error: --emit=" << emit << ": unknown output kind; valid kinds: "
                 << emitKindList() << "\n";
    return 2;
  }

  spec::LoadResult loaded = spec::loadSpecFromFile(specPath);
  for (const spec::Diagnostic &d : loaded.diagnostics)
    llvm::errs() << d.format() << "\n";
  if (!loaded.ok())
    return 1;

  mlir::DialectRegistry registry;
  registerAttncDialects(registry);
  mlir::MLIRContext context(registry);
  mlir::ScopedDiagnosticHandler handler(&context, [](mlir::Diagnostic &diag) {
    printDiagnostic(diag);
    return mlir::success();
  });

  mlir::OwningOpRef<mlir::ModuleOp> module = specToModule(context, *loaded.spec);
  if (!module)
    return 1;

  std::string text;
  llvm::raw_string_ostream os(text);
  module->print(os);
  os << "\n";
  std::string error;
  if (!writeFileAtomically(outputPath, text, error)) {
    llvm::errs() << "attnc: error: " << error << "\n";
    return 1;
  }
  return 0;
}
