//===- attnc.cpp - The attnc compiler driver ------------------------------===//
//
//   attnc SPEC [-o PATH] --emit=KIND [--tile=MxN] [--seq-len=NQ[,NKV]] ...
//
// Loads a spec (JSON), builds the attn IR, runs the pipeline up to the
// requested stage and writes it. Errors name the file, line, column and JSON
// pointer (or the flag); a failed run exits non-zero and leaves no output.
// --arch names the GPU the kernels are for (sm_90a: the Hopper wgmma forward
// mainloop); --emit=ptx|cubin hand the CUDA kernel to libattnrt, which
// compiles it with NVRTC for --arch (no GPU needed).
//
//===----------------------------------------------------------------------===//

#include "attnc/Compiler/Compiler.h"
#include "attnc/Compiler/Flags.h"
#include "attnc/Compiler/Output.h"
#include "attnc/Version.h"
#include "attnc/Compiler/Pipeline.h"
#include "attnc/Compiler/SpecToIR.h"
#include "attnc/Dialect/Attn/AttnOps.h"
#include "attnc/Passes/BlockClassification.h"
#include "attnc/Report/MaskPicture.h"
#include "attnc/Report/Png.h"
#include "attnc/Report/Report.h"
#include "attnc/runtime/attnrt.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <memory>
#include <optional>
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
    {"tiled", "after attn-canonicalize-mask, attn-plan-layout, attn-tile, attn-classify-blocks "
              "and attn-schedule-recompute"},
    {"loops", "the flash loop, after attn-lower-to-loops and attn-prepare-for-emission"},
    {"cpp", "the CPU kernel's C++ source"},
    {"cuda", "the CUDA kernel's source (for NVRTC and nvcc, sm_80 and later; sm_90a only with "
             "--arch=sm_90a)"},
    {"package", "a kernel package for --target: -o DIR gets manifest.json and the source"},
    {"report", "what the mask costs: pairs, tiles, FLOPs, memory, time (--json for JSON)"},
    {"svg", "a picture of the mask and its tiles (SVG)"},
    {"png", "the same picture as PNG (rendered with librsvg)"},
    {"ptx", "the CUDA kernel compiled to PTX by NVRTC for --arch"},
    {"cubin", "the CUDA kernel compiled to a cubin by NVRTC for --arch (needs -o PATH)"},
};

/// The architecture --emit=ptx|cubin compile for when --arch is not given:
/// the H100's (the GPU machine's), without its arch-specific features, so the
/// cubin runs on every sm_90 device. A cubin runs only on GPUs of its major
/// architecture; PTX is compiled onwards by the driver for later ones.
constexpr const char *kDefaultArch = "sm_90";

std::string emitKindList() {
  std::string list;
  for (const EmitKind &k : kEmitKinds)
    list += (list.empty() ? "" : ", ") + std::string(k.name);
  return list;
}

/// The --emit help text. cl::desc keeps a StringRef, so the text must outlive
/// the option: it is built once and kept.
const std::string &emitHelp() {
  static const std::string help = [] {
    std::string text = "What to write:";
    for (const EmitKind &k : kEmitKinds)
      text += std::string("\n    ") + k.name + ": " + k.help;
    return text;
  }();
  return help;
}

cl::OptionCategory attncCategory("attnc options");

cl::opt<std::string> specPath(cl::Positional, cl::desc("SPEC"), cl::Required,
                              cl::cat(attncCategory));
cl::opt<std::string> outputPath("o",
                                cl::desc("Output path ('-' for standard output, the default); "
                                         "written whole or not at all"),
                                cl::value_desc("PATH"), cl::init("-"), cl::cat(attncCategory));
cl::opt<std::string> emit("emit", cl::desc(emitHelp()), cl::value_desc("KIND"), cl::init("mlir"),
                          cl::cat(attncCategory));
cl::opt<std::string> tileFlag("tile",
                              cl::desc("Tile BLOCK_M x BLOCK_N, powers of two in [16, 256] "
                                       "(default: a heuristic by head_dim)"),
                              cl::value_desc("MxN"), cl::cat(attncCategory));
cl::opt<std::string> seqLenFlag("seq-len",
                                cl::desc("Query and key lengths, for specs that leave seq_len to "
                                         "launch time (NKV defaults to NQ); must agree with the "
                                         "spec's seq_len when it has one"),
                                cl::value_desc("NQ[,NKV]"), cl::cat(attncCategory));
cl::opt<std::string> targetFlag("target",
                                cl::desc("--emit=package: the kernel's target, cpu (default) or "
                                         "cuda"),
                                cl::value_desc("TARGET"), cl::init("cpu"), cl::cat(attncCategory));
cl::opt<bool> jsonFlag("json", cl::desc("--emit=report: write JSON instead of text"),
                       cl::cat(attncCategory));
cl::opt<int64_t> batchFlag("batch", cl::desc("--emit=report: batch size counted (default 1)"),
                           cl::init(1), cl::cat(attncCategory));
cl::opt<int64_t> headsFlag("heads",
                           cl::desc("--emit=report: query heads counted (default 1; the kv heads "
                                    "follow the spec's grouping)"),
                           cl::init(1), cl::cat(attncCategory));
cl::opt<double> peakTflops("peak-tflops",
                           cl::desc("--emit=report: roofline compute peak in TFLOP/s (H100 bf16)"),
                           cl::init(799.0), cl::cat(attncCategory));
cl::opt<double> peakTbs("peak-tbs",
                        cl::desc("--emit=report: roofline memory bandwidth in TB/s (H100 HBM3)"),
                        cl::init(3.0), cl::cat(attncCategory));
/// The --arch help text, kept alive like emitHelp()'s.
const std::string &archHelp() {
  static const std::string help =
      std::string("the GPU the kernels are for, sm_XY with an optional 'a' (arch-specific) or "
                  "'f' suffix, e.g. sm_80, sm_90a: ") +
      kWgmmaArch +
      " selects the Hopper wgmma forward and dK/dV kernels where attn-tile allows, others "
      "mma.sync; for --emit=ptx|cubin "
      "(default " +
      kDefaultArch + "), cuda, package (--target=cuda), tiled, loops, report, svg, png";
  return help;
}

cl::opt<std::string> archFlag("arch", cl::desc(archHelp()), cl::value_desc("sm_XY"),
                              cl::init(kDefaultArch), cl::cat(attncCategory));
cl::opt<bool> ptxasReportFlag(
    "ptxas-report",
    cl::desc("--emit=ptx|cubin: print ptxas's registers, barriers, stack frame, spill stores and "
             "loads, static shared memory and code size of every kernel entry, and the cubin "
             "size, to standard error"),
    cl::cat(attncCategory));
cl::opt<bool> deterministicFlag(
    "deterministic",
    cl::desc("backward pass: compute dQ in a separate deterministic pass instead of float32 "
             "atomics"),
    cl::cat(attncCategory));
cl::opt<std::string> globalTokensFlag(
    "global-tokens",
    cl::desc("--emit=report|svg|png: the launch-time token list of a runtime global mask"),
    cl::value_desc("T1,T2,..."), cl::cat(attncCategory));

int fail(const std::string &message) {
  llvm::errs() << "attnc: error: " << message << "\n";
  return 1;
}

/// Prints MLIR diagnostics as FILE:LINE:COL: error: MESSAGE.
void printDiagnostic(mlir::Diagnostic &diag) {
  const char *severity = diag.getSeverity() == mlir::DiagnosticSeverity::Error     ? "error"
                         : diag.getSeverity() == mlir::DiagnosticSeverity::Warning ? "warning"
                                                                                    : "note";
  if (auto loc = llvm::dyn_cast<mlir::FileLineColLoc>(diag.getLocation()))
    llvm::errs() << loc.getFilename().getValue() << ":" << loc.getLine() << ":" << loc.getColumn() << ": ";
  else
    llvm::errs() << "attnc: ";
  llvm::errs() << severity << ": " << diag.str() << "\n";
}

/// Whether `arch` names a real GPU architecture NVRTC builds cubins for:
/// "sm_" and 2 or 3 digits, then an optional 'a' or 'f'.
bool isGpuArch(llvm::StringRef arch) {
  if (!arch.consume_front("sm_"))
    return false;
  if (arch.ends_with("a") || arch.ends_with("f"))
    arch = arch.drop_back();
  return (arch.size() == 2 || arch.size() == 3) && llvm::all_of(arch, llvm::isDigit);
}

/// "1 entry", "3 entries".
std::string countOf(int64_t n, const char *one, const char *many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

/// ptxas's figures of every entry of `build`, for --ptxas-report.
void printPtxasReport(const std::string &kernel, const attnrt_nvrtc_output &build,
                      llvm::raw_ostream &os) {
  os << "ptxas report: kernel \"" << kernel << "\" for " << build.arch << " (NVRTC "
     << build.nvrtc_major << "." << build.nvrtc_minor << "), cubin " << build.cubin_bytes
     << " bytes, " << countOf(build.num_entries, "entry", "entries") << "\n";
  for (int32_t i = 0; i < build.num_entries; ++i) {
    const attnrt_nvrtc_entry &e = build.entries[i];
    os << "  " << e.name << ": " << countOf(e.registers, "register", "registers") << ", "
       << countOf(e.barriers, "barrier", "barriers") << ", " << e.stack_frame_bytes
       << " bytes stack frame, " << e.spill_store_bytes << " bytes spill stores, "
       << e.spill_load_bytes << " bytes spill loads, " << e.shared_bytes
       << " bytes static shared memory, ";
    if (e.code_bytes >= 0)
      os << e.code_bytes << " bytes code\n";
    else
      os << "code size unknown\n";
  }
}

/// Compiles the package's CUDA source with NVRTC (through libattnrt) for
/// --arch into `out`: PTX text or a cubin; --ptxas-report names the kernel
/// `name`. Returns an error message or "".
std::string compileWithNvrtc(const KernelPackage &package, const std::string &name, bool ptx,
                             std::string &out) {
  attnrt_package *loaded = nullptr;
  if (attnrt_package_from_memory(package.manifestJson.c_str(), package.source.c_str(), &loaded) !=
      ATTNRT_OK)
    return attnrt_last_error();
  std::unique_ptr<attnrt_package, void (*)(attnrt_package *)> owner(loaded, attnrt_package_free);
  attnrt_nvrtc_output build{};
  if (attnrt_nvrtc_compile(loaded, archFlag.c_str(), ptx ? ATTNRT_NVRTC_PTX : ATTNRT_NVRTC_CUBIN,
                           ptxasReportFlag ? 1 : 0, &build) != ATTNRT_OK)
    return attnrt_last_error();
  out.assign(build.data, build.size);
  if (ptxasReportFlag)
    printPtxasReport(name, build, llvm::errs());
  attnrt_nvrtc_output_release(&build);
  return "";
}

/// Applies --seq-len to the spec; returns an error message or "".
std::string applySeqLen(spec::Spec &s) {
  if (seqLenFlag.empty())
    return "";
  int64_t nq = 0, nk = 0;
  if (std::string error = parseSeqLenFlag(seqLenFlag, nq, nk); !error.empty())
    return error;
  if (s.seqLenQ && (*s.seqLenQ != nq || *s.seqLenKV != nk))
    return "--seq-len=" + seqLenFlag + ": the spec fixes seq_len to " +
           std::to_string(*s.seqLenQ) + "," + std::to_string(*s.seqLenKV);
  s.seqLenQ = nq;
  s.seqLenKV = nk;
  return "";
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(attncCategory);
  cl::AddExtraVersionPrinter(
      [](llvm::raw_ostream &os) { os << "attnc " << ATTNC_VERSION << "\n"; });
  cl::ParseCommandLineOptions(
      argc, argv,
      "attnc: compiles an attention spec (JSON) into IR and kernels\n\n"
      "  attnc SPEC [-o PATH] --emit=KIND [--tile=MxN] [--seq-len=NQ[,NKV]]\n"
      "  attnc SPEC --emit=report [--json] [--batch=B] [--heads=H]\n"
      "  attnc SPEC --emit=svg -o mask.svg\n"
      "  attnc SPEC --emit=package [--target=cuda [--arch=sm_XY]] -o DIR\n"
      "  attnc SPEC --emit=ptx|cubin [--arch=sm_XY] [--ptxas-report] -o PATH\n\n"
      "The spec language is described in specs/README.md.\n");

  std::string kind = emit;
  bool known = false;
  for (const EmitKind &k : kEmitKinds)
    known |= kind == k.name;
  if (!known)
    return fail("--emit=" + kind + ": unknown output kind; valid kinds: " + emitKindList());
  const bool nvrtcKind = kind == "ptx" || kind == "cubin";
  if ((kind == "png" || kind == "cubin" || kind == "package") && outputPath == "-")
    return fail("--emit=" + kind + ": needs an output " +
                (kind == "package" ? std::string("directory") : std::string("file")) +
                " (-o PATH)");
  if (nvrtcKind && targetFlag.getNumOccurrences() && targetFlag != "cuda")
    return fail("--emit=" + kind + ": compiles the CUDA kernel; --target=" + targetFlag +
                " does not apply (give --target=cuda or leave --target out)");
  // --arch: the GPU the kernels are for. Kinds before tiling (mlir) and CPU
  // kernels have none; ptx and cubin default to kDefaultArch, the others to
  // none (mma.sync).
  const bool archGiven = archFlag.getNumOccurrences() > 0;
  if (archGiven && kind == "mlir")
    return fail("--arch=" + archFlag + ": --emit=mlir is the spec as imported, before tiling; "
                "--arch applies from --emit=tiled on");
  if (archGiven && (kind == "cpp" || (kind == "package" && targetFlag == "cpu")))
    return fail("--arch=" + archFlag + ": the CPU target has no GPU architecture (--arch is for "
                "--target=cuda)");
  if ((archGiven || nvrtcKind) && !isGpuArch(archFlag))
    return fail("--arch=" + archFlag + ": expected a GPU architecture sm_XY, e.g. sm_80, sm_90, "
                "sm_90a");
  if (ptxasReportFlag && !nvrtcKind)
    return fail("--ptxas-report: reports on what NVRTC compiles: give --emit=ptx or --emit=cubin");
  PipelineOptions pipeline;
  pipeline.deterministic = deterministicFlag;
  if (archGiven || nvrtcKind)
    pipeline.arch = archFlag;
  if (!tileFlag.empty())
    if (std::string error = parseTileFlag(tileFlag, pipeline.blockM, pipeline.blockN);
        !error.empty())
      return fail(error);
  std::vector<int64_t> runtimeTokens;
  if (std::string error = parseTokensFlag(globalTokensFlag, runtimeTokens); !error.empty())
    return fail(error);
  if (batchFlag < 1)
    return fail("--batch=" + std::to_string(batchFlag) + ": must be >= 1");
  if (headsFlag < 1)
    return fail("--heads=" + std::to_string(headsFlag) + ": must be >= 1");
  if (!(peakTflops > 0) || !std::isfinite(peakTflops) || !(peakTbs > 0) || !std::isfinite(peakTbs))
    return fail("--peak-tflops and --peak-tbs must be positive numbers");

  spec::LoadResult loaded = spec::loadSpecFromFile(specPath);
  for (const spec::Diagnostic &d : loaded.diagnostics)
    llvm::errs() << d.format() << "\n";
  if (!loaded.ok())
    return 1;
  spec::Spec &s = *loaded.spec;
  if (std::string error = applySeqLen(s); !error.empty())
    return fail(error);

  if (kind == "cpp" || kind == "cuda" || kind == "package" || nvrtcKind) {
    if (targetFlag != "cpu" && targetFlag != "cuda")
      return fail("--target=" + targetFlag + ": unknown target; valid targets: cpu, cuda");
    std::string target = kind == "package"             ? std::string(targetFlag)
                         : kind == "cuda" || nvrtcKind ? "cuda"
                                                       : "cpu";
    CompileOptions options{pipeline.blockM, pipeline.blockN, target};
    options.deterministic = deterministicFlag;
    options.arch = pipeline.arch;
    CompileResult compiled = compileSpec(s, options);
    llvm::errs() << compiled.diagnostics;
    if (!compiled.ok())
      return 1;
    std::string error;
    if (nvrtcKind) {
      std::string built;
      if (std::string problem = compileWithNvrtc(*compiled.package, s.name, kind == "ptx", built);
          !problem.empty())
        return fail(problem);
      if (!writeFileAtomically(outputPath, built, error))
        return fail(error);
      return 0;
    }
    bool written = kind == "package" ? writePackage(*compiled.package, outputPath, error)
                                     : writeFileAtomically(outputPath, compiled.package->source, error);
    if (!written)
      return fail(error);
    return 0;
  }

  mlir::DialectRegistry registry;
  registerAttncDialects(registry);
  mlir::MLIRContext context(registry);
  mlir::ScopedDiagnosticHandler handler(&context, [](mlir::Diagnostic &diag) {
    printDiagnostic(diag);
    return mlir::success();
  });

  mlir::OwningOpRef<mlir::ModuleOp> module = specToModule(context, s);
  if (!module)
    return 1;

  std::string out;
  if (kind == "mlir") {
    llvm::raw_string_ostream os(out);
    module->print(os);
    os << "\n";
  } else {
    if (failed(kind == "loops" ? lowerToEmittableLoops(*module, pipeline)
                               : runTilingPipeline(*module, pipeline)))
      return 1;
    if (kind == "tiled" || kind == "loops") {
      llvm::raw_string_ostream os(out);
      module->print(os);
      os << "\n";
    } else {
      if (!s.seqLenQ)
        return fail("--emit=" + kind + ": the spec leaves seq_len to launch time; give --seq-len");
      attn::AttentionOp op;
      module->walk([&](attn::AttentionOp found) { op = found; });
      attn::TileAttr tile = *op.getTile();
      mask::Mask canonical = mask::canonicalize(s.mask);
      bool omitted = attn::needsLaunchTokens(canonical) && globalTokensFlag.empty();
      for (int64_t t : runtimeTokens)
        if (t >= *s.seqLenKV)
          return fail("--global-tokens: token " + std::to_string(t) + " is out of range for kv "
                      "length " + std::to_string(*s.seqLenKV));
      mask::BlockSchedule schedule(canonical,
                                   mask::Extent{*s.seqLenQ, *s.seqLenKV, &runtimeTokens},
                                   tile.getBlockM(), tile.getBlockN());
      report::Options options;
      options.batch = batchFlag;
      options.queryHeads = headsFlag;
      options.hardware = {peakTflops, peakTbs};
      report::Report r = report::compute(s, schedule, options, omitted);
      if (kind == "report") {
        out = jsonFlag ? report::toJson(r) : report::toText(r);
      } else {
        out = report::renderSvg(schedule, r);
        if (kind == "png") {
          std::string png, error;
          if (!report::svgToPng(out, png, error))
            return fail(error);
          out = std::move(png);
        }
      }
    }
  }

  std::string error;
  if (!writeFileAtomically(outputPath, out, error))
    return fail(error);
  return 0;
}
