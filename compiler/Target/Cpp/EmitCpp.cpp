//===- EmitCpp.cpp - emit-cpp and emit-cuda: the flash loop as a kernel ---===//
//
// A plain printer: attn-prepare-for-emission has decided everything (mask
// forms, legal ops); each op prints as one statement calling a helper of
// runtime/cpu/attnc_cpu.h (CPU) or runtime/device/attnc_cuda.cuh (CUDA), with
// the IR's value names as variable names.
//
//===----------------------------------------------------------------------===//

#include "attnc/Target/Cpp.h"
#include "attnc/Dialect/Attn/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

using namespace mlir;
using namespace attnc::attn;

namespace attnc {

namespace {

/// A float literal that reads back exactly (or -INFINITY / INFINITY).
std::string floatLiteral(double v) {
  if (std::isinf(v))
    return v < 0 ? "-INFINITY" : "INFINITY";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9gf", v);
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos)
    s.insert(s.size() - 1, ".0");
  return s;
}

/// An int64 literal; the band's unbounded sides print as kUnbounded.
std::string boundLiteral(int64_t v) {
  if (v == INT64_MAX)
    return "kUnbounded";
  if (v == -INT64_MAX)
    return "-kUnbounded";
  return std::to_string(v);
}

/// The first statements of a kernel: its grid point (tile, head, batch).
/// Band schedules take the tile from `bandTile` (blockIdx.x or its reverse),
/// the head and batch from blockIdx.y and z; table schedules take all three
/// from tableGridPoint over `table`, heaviest tiles of every head first.
void printGridPoint(llvm::raw_ostream &os, bool band, const std::string &bandTile,
                    const std::string &table, const std::string &tile, const std::string &head,
                    const std::string &batch) {
  if (band) {
    os << "  const int64_t " << tile << " = " << bandTile << ";\n";
    os << "  const int64_t " << head << " = blockIdx.y;\n";
    os << "  const int64_t " << batch << " = blockIdx.z;\n";
    return;
  }
  os << "  // Heaviest tiles first, across heads and batch (the table's row_order).\n";
  os << "  const TableGridPoint point = tableGridPoint(" << table << ");\n";
  os << "  const int64_t " << tile << " = point.tile;\n";
  os << "  const int64_t " << head << " = point.head;\n";
  os << "  const int64_t " << batch << " = point.batch;\n";
}

/// What every printer shares: the stream, indentation and value names.
class PrinterBase {
public:
  PrinterBase(Operation *op, llvm::raw_ostream &os)
      : os(os), asmState(op->getParentOfType<ModuleOp>()) {}

protected:
  /// The C++ name of an SSA value: its IR name with the '%' dropped.
  std::string name(Value v) {
    auto it = aliases.find(v);
    if (it != aliases.end())
      return it->second;
    std::string text;
    llvm::raw_string_ostream ss(text);
    v.printAsOperand(ss, asmState);
    std::string out;
    for (char c : text.substr(1))
      out += llvm::isAlnum(c) || c == '_' ? c : '_';
    if (out.empty() || llvm::isDigit(out[0]))
      out = "v" + out;
    return out;
  }

  std::string indent() const { return std::string(depth * 2, ' '); }

  /// Opens the CPU loop over a schedule, one indentation level deeper: for
  /// tile `fixed` (a query tile; `transposed`: a kv tile of the dK/dV pass),
  /// the tiles `loop` it visits, with `partial` set. Band schedules from the
  /// closed form (EMPTY tiles skipped), others from the launch-time table
  /// (args.schedule, or args.columns when transposed; `entry` its entry).
  void openCpuScheduleLoop(bool band, bool transposed, const std::string &fixed,
                           const std::string &loop, const std::string &partial) {
    const std::string blockN = transposed ? "DKDV_BLOCK_N" : "BLOCK_N";
    if (band) {
      const std::string first = transposed ? "firstQt" : "firstKt",
                        last = transposed ? "lastQt" : "lastKt";
      os << indent()
         << (transposed ? "// Transposed closed-form schedule: the query tiles that see kv tile " +
                              fixed + ".\n"
                        : std::string("// Closed-form schedule: the band's kv tiles, classified "
                                      "from indices.\n"));
      os << indent() << "int64_t " << first << " = 0, " << last << " = -1;\n";
      os << indent() << (transposed ? "bandRowTiles" : "bandColumnTiles") << "(kBand, " << fixed
         << ", BLOCK_M, " << blockN << ", args.nq, args.nk, " << first << ", " << last << ");\n";
      os << indent() << "for (int64_t " << loop << " = " << first << "; " << loop << " <= " << last
         << "; ++" << loop << ") {\n";
      ++depth;
      const std::string &qt = transposed ? loop : fixed, &kt = transposed ? fixed : loop;
      os << indent() << "const TileClass cls = bandTile(kBand, " << qt << ", " << kt
         << ", BLOCK_M, " << blockN << ", args.nq, args.nk);\n";
      os << indent() << "if (cls == TileClass::Empty)\n" << indent() << "  continue;\n";
      os << indent() << "const bool " << partial << " = cls == TileClass::Partial;\n";
      return;
    }
    const std::string table = transposed ? "args.columns" : "args.schedule";
    os << indent() << (transposed ? "// Transposed table schedule" : "// Table schedule")
       << ", built by the runtime at launch.\n";
    os << indent() << "for (int64_t entry = " << table << ".row_offsets[" << fixed
       << "]; entry < " << table << ".row_offsets[" << fixed << " + 1]; ++entry) {\n";
    ++depth;
    os << indent() << "const int64_t " << loop << " = " << table << ".col_tiles[entry];\n";
    os << indent() << "const bool " << partial << " = !" << table << ".full[entry];\n";
  }

  llvm::raw_ostream &os;
  AsmState asmState;
  llvm::DenseMap<Value, std::string> aliases;
  int depth = 1;
};

class CppPrinter : public PrinterBase {
public:
  CppPrinter(FlashLoopOp loop, KernelTarget target, bool withBackward, bool backwardWgmma,
             llvm::raw_ostream &os)
      : PrinterBase(loop, os), loop(loop), cuda(target == KernelTarget::Cuda),
        withBackward(withBackward), backwardWgmma(backwardWgmma) {}

  LogicalResult print(const std::string &banner);

private:

  /// `Tile<R, C>`, `Row<R>`, `int64_t` or `bool` for a value's type; on
  /// CUDA the register tile types by role (QTile, ScoreTile, ProbTile,
  /// AccTile, RowVec).
  std::string cppType(Value v) {
    Type t = v.getType();
    if (cuda) {
      auto tensor = dyn_cast<RankedTensorType>(t);
      if (!tensor)
        return t.isInteger(1) ? "bool" : "int64_t";
      if (tensor.getRank() == 1)
        return "RowVec<Cfg>";
      Operation *def = v.getDefiningOp();
      if (isa_and_nonnull<LoadTileOp>(def))
        return "QTile<Cfg>";
      if (isa_and_nonnull<Exp2DiffOp>(def))
        return "ProbTile<Cfg>";
      return tensor.getDimSize(1) == loop.getQuery().getType().getDimSize(3) &&
                     !isa_and_nonnull<QKOp, MaskTileOp>(def)
                 ? "AccTile<Cfg>"
                 : "ScoreTile<Cfg>";
    }
    if (auto tensor = dyn_cast<RankedTensorType>(t)) {
      if (tensor.getRank() == 2)
        return "Tile<" + std::to_string(tensor.getDimSize(0)) + ", " +
               std::to_string(tensor.getDimSize(1)) + ">";
      return "Row<" + std::to_string(tensor.getDimSize(0)) + ">";
    }
    return t.isInteger(1) ? "bool" : "int64_t";
  }

  /// `args.q`, `args.k` or `args.v` for the operand of a load.
  std::string tensorArg(Value v) {
    if (v == loop.getQuery())
      return "args.q";
    if (v == loop.getKey())
      return "args.k";
    return "args.v";
  }

  LogicalResult printBlock(Block &block);
  LogicalResult printOp(Operation *op);
  LogicalResult printKvLoop(KvLoopOp op);

  void printCudaPreamble();
  LogicalResult printCudaKernel();

  FlashLoopOp loop;
  bool cuda;
  bool withBackward;  ///< the backward kernels follow (CUDA: include their helpers)
  bool backwardWgmma; ///< the backward's dK/dV kernel is a wgmma one (attnc_cuda_bwd_sm90.cuh)
};

LogicalResult CppPrinter::printBlock(Block &block) {
  for (Operation &op : block)
    if (failed(printOp(&op)))
      return failure();
  return success();
}

LogicalResult CppPrinter::printKvLoop(KvLoopOp op) {
  Block &body = op.getBody().front();
  // The loop-carried state lives in the block arguments' variables; the
  // loop's results are those same variables after the loop.
  for (auto [arg, init] : llvm::zip(body.getArguments().drop_front(2), op.getInitArgs()))
    os << indent() << cppType(arg) << " " << name(arg) << " = " << name(init)
       << ";\n";
  for (auto [result, arg] : llvm::zip(op.getResults(), body.getArguments().drop_front(2)))
    aliases[result] = name(arg);
  std::string kt = name(body.getArgument(0)), partial = name(body.getArgument(1));

  if (cuda) {
    // The K load inside the loop names the batch and kv head the pipeline streams.
    LoadTileOp kLoad;
    body.walk([&](LoadTileOp load) {
      if (load.getSource() == loop.getKey())
        kLoad = load;
    });
    LoadTileOp qLoad;
    loop.getBody().walk([&](LoadTileOp load) {
      if (load.getSource() == loop.getQuery())
        qLoad = load;
    });
    if (!kLoad || !qLoad)
      return op.emitOpError("needs the Q load before it and the K load in its body");
    bool band = isa<BandScheduleAttr>(op.getSchedule());
    std::string scheduleType = band ? "BandSchedule<BLOCK_M, BLOCK_N>" : "TableSchedule";
    std::string qt = name(op.getQtile());
    os << indent()
       << (band ? "// Closed-form schedule: the band's kv tiles, classified from indices.\n"
                : "// Table schedule, built by the runtime at launch.\n");
    os << indent() << "const " << scheduleType << " schedule("
       << (band ? "kBand, " + qt + ", args.nq, args.nk" : "args.schedule, " + qt) << ");\n";
    os << indent() << "KvPipeline<Cfg, " << scheduleType << "> kv(schedule, args.k, args.v, "
       << name(kLoad.getBatch()) << ", " << name(kLoad.getHead()) << ", smem);\n";
    os << indent() << "loadQFragments<Cfg, decltype(kv)::kGroupsInFlight>(smem.q, SCALE_LOG2, "
       << name(qLoad) << ");\n";
    if (band) {
      os << indent() << "for (int64_t " << kt << " = schedule.begin(); schedule.valid(" << kt
         << "); " << kt << " = schedule.next(" << kt << ")) {\n";
      ++depth;
      os << indent() << "const bool " << partial << " = schedule.partial(" << kt << ");\n";
    } else {
      os << indent()
         << "for (int64_t entry = schedule.begin(); schedule.valid(entry); entry = "
            "schedule.next(entry)) {\n";
      ++depth;
      os << indent() << "const int64_t " << kt << " = schedule.kvTile(entry);\n";
      os << indent() << "const bool " << partial << " = schedule.partial(entry);\n";
    }
  } else {
    openCpuScheduleLoop(isa<BandScheduleAttr>(op.getSchedule()), /*transposed=*/false,
                        name(op.getQtile()), kt, partial);
  }
  if (failed(printBlock(body)))
    return failure();
  --depth;
  os << indent() << "}\n";
  return success();
}

LogicalResult CppPrinter::printOp(Operation *op) {
  std::string in = indent();
  if (auto c = dyn_cast<arith::ConstantOp>(op)) {
    aliases[c] = "kv_group";
    os << in << "const int64_t " << name(c) << " = " << cast<IntegerAttr>(c.getValue()).getInt()
       << ";\n";
  } else if (auto div = dyn_cast<arith::DivUIOp>(op)) {
    aliases[div] = "kv_head";
    os << in << "const int64_t " << name(div) << " = " << name(div.getLhs()) << " / "
       << name(div.getRhs()) << "; // GQA: the kv head of query head " << name(div.getLhs())
       << "\n";
  } else if (auto load = dyn_cast<LoadTileOp>(op); load && cuda) {
    if (load.getSource() == loop.getQuery()) {
      // The copy starts here; the fragments are loaded after the kv pipeline's prologue.
      os << in << cppType(load) << " " << name(load)
         << (loop.getTile().isWgmma()
                 ? "; // (BLOCK_M, HEAD_DIM) in smem.q, the wgmma A operand\n"
                 : "; // (BLOCK_M, HEAD_DIM) in registers, staged through smem.q\n");
      os << in << "loadQTileAsync<Cfg>(args.q, " << name(load.getBatch()) << ", "
         << name(load.getTile()) << ", " << name(load.getHead()) << ", smem.q);\n";
    } else if (load.getSource() == loop.getKey()) {
      os << in << "const KvTiles kv_tile = kv.acquire(); // (BLOCK_N, HEAD_DIM) K and V of tile "
         << name(load.getTile()) << " in smem\n";
      aliases[load] = "kv_tile.k";
    } else {
      aliases[load] = "kv_tile.v";
    }
  } else if (auto load = dyn_cast<LoadTileOp>(op)) {
    os << in << cppType(load) << " " << name(load) << "; // ("
       << (load.getSource() == loop.getQuery() ? "BLOCK_M" : "BLOCK_N") << ", HEAD_DIM)\n";
    os << in << "loadTile<IS_BF16>(" << tensorArg(load.getSource()) << ", " << name(load.getBatch())
       << ", " << name(load.getTile()) << ", " << name(load.getHead()) << ", "
       << floatLiteral(load.getScale().convertToDouble()) << ", " << name(load) << ");\n";
  } else if (auto fill = dyn_cast<FillOp>(op)) {
    os << in << cppType(fill) << " " << name(fill) << ";\n";
    double value = fill.getValue().convertToDouble();
    os << in << "fill(" << name(fill) << ", "
       << (cuda && std::isinf(value) && value < 0 ? "kNegInf" : floatLiteral(value)) << ");\n";
  } else if (auto kvLoop = dyn_cast<KvLoopOp>(op)) {
    return printKvLoop(kvLoop);
  } else if (auto qkOp = dyn_cast<QKOp>(op)) {
    os << in << cppType(qkOp) << " " << name(qkOp) << "; // S = Q K^T\n";
    os << in << "qk(" << name(qkOp.getQ()) << ", " << name(qkOp.getK()) << ", " << name(qkOp)
       << ");\n";
  } else if (auto mask = dyn_cast<MaskTileOp>(op)) {
    os << in << cppType(mask) << " " << name(mask) << " = " << name(mask.getS())
       << "; // -inf where the mask forbids\n";
    if (mask.getForm() == "band")
      os << in << "maskBand(" << name(mask) << ", kBand, " << name(mask.getQtile()) << ", "
         << name(mask.getKtile()) << ", " << name(mask.getPartial()) << ", args.nq, args.nk);\n";
    else if (mask.getForm() == "bitmask")
      os << in << "maskBits(" << name(mask) << ", args.schedule, entry, " << name(mask.getKtile())
         << ", " << name(mask.getPartial()) << ", args.nk);\n";
    else
      return mask.emitOpError("has no form: run attn-prepare-for-emission first");
  } else if (auto rm = dyn_cast<RowMaxOp>(op)) {
    os << in << cppType(rm) << " " << name(rm) << "; // m_new = max(m, rowmax S)\n";
    os << in << "rowMax(" << name(rm.getS()) << ", " << name(rm.getM()) << ", " << name(rm)
       << ");\n";
  } else if (auto e = dyn_cast<Exp2DiffOp>(op)) {
    os << in << cppType(e) << " " << name(e) << "; // P = exp2(S - m_new)\n";
    os << in << "exp2Diff(" << name(e.getS()) << ", " << name(e.getM()) << ", " << name(e)
       << ");\n";
  } else if (auto r = dyn_cast<RescaleOp>(op)) {
    os << in << cppType(r) << " " << name(r) << "; // alpha = exp2(m - m_new)\n";
    os << in << "rescale(" << name(r.getMOld()) << ", " << name(r.getMNew()) << ", " << name(r)
       << ");\n";
  } else if (auto rs = dyn_cast<RowSumUpdateOp>(op)) {
    os << in << cppType(rs) << " " << name(rs) << "; // l = alpha * l + rowsum P\n";
    os << in << "rowSumUpdate(" << name(rs.getL()) << ", " << name(rs.getAlpha()) << ", "
       << name(rs.getP()) << ", " << name(rs) << ");\n";
  } else if (auto pv = dyn_cast<PVUpdateOp>(op)) {
    os << in << cppType(pv) << " " << name(pv) << "; // O = alpha * O + P V\n";
    os << in << "pvUpdate(" << name(pv.getAcc()) << ", " << name(pv.getAlpha()) << ", "
       << name(pv.getP()) << ", " << name(pv.getV()) << ", " << name(pv) << ");\n";
  } else if (auto y = dyn_cast<YieldOp>(op)) {
    auto kvLoop = cast<KvLoopOp>(y->getParentOp());
    for (auto [arg, value] :
         llvm::zip(kvLoop.getBody().front().getArguments().drop_front(2), y.getValues()))
      os << in << name(arg) << " = " << name(value) << ";\n";
  } else if (auto fin = dyn_cast<FinalizeOp>(op)) {
    os << in << cppType(fin.getOutput()) << " " << name(fin.getOutput()) << ";\n";
    os << in << cppType(fin.getLse()) << " " << name(fin.getLse())
       << "; // O = acc / l, LSE = (m + log2 l) ln 2; O = 0, LSE = -inf if l = 0\n";
    os << in << "finalize(" << name(fin.getM()) << ", " << name(fin.getL()) << ", "
       << name(fin.getAcc()) << ", " << name(fin.getOutput()) << ", " << name(fin.getLse())
       << ");\n";
  } else if (auto ty = dyn_cast<TileYieldOp>(op)) {
    Block &body = loop.getBody().front();
    std::string b = name(body.getArgument(0)), h = name(body.getArgument(1)),
                qt = name(body.getArgument(2));
    if (cuda)
      os << in << "storeTile(args.o, " << b << ", " << qt << ", " << h << ", "
         << name(ty.getOutput()) << ", smem.q);\n";
    else
      os << in << "storeTile<IS_BF16>(args.o, " << b << ", " << qt << ", " << h << ", "
         << name(ty.getOutput()) << ");\n";
    os << in << "storeLse(args.lse, " << b << ", " << h << ", " << qt << ", " << name(ty.getLse())
       << ");\n";
  } else {
    return op->emitOpError("is not printable as C++");
  }
  return success();
}

LogicalResult CppPrinter::printCudaKernel() {
  auto qType = loop.getQuery().getType();
  TileAttr tile = loop.getTile();
  Block &body = loop.getBody().front();
  LoadTileOp qLoad;
  loop.getBody().walk([&](LoadTileOp load) {
    if (load.getSource() == loop.getQuery())
      qLoad = load;
  });
  if (!qLoad)
    return loop.emitOpError("has no Q tile load");
  if (backwardWgmma)
    os << "#include \"attnc_cuda_bwd_sm90.cuh\"\n"; // both passes' helpers, mma.sync and wgmma
  else
    os << (withBackward ? "#include \"attnc_cuda_bwd.cuh\"" : "#include \"attnc_cuda.cuh\"")
       << "\n";
  if (tile.isWgmma() && !backwardWgmma)
    os << "#include \"attnc_cuda_sm90.cuh\"\n";
  os << "#include \"kernel_abi.h\"\n\n";
  os << "namespace {\n\nusing namespace attnc_cuda;\n\n";
  os << "constexpr int BLOCK_M = " << tile.getBlockM() << "; // query rows per thread block\n";
  os << "constexpr int BLOCK_N = " << tile.getBlockN() << "; // keys per kv tile\n";
  os << "constexpr int NUM_WARPS = " << tile.getWarps() << ";\n";
  os << "constexpr int STAGES = " << tile.getStages() << "; // kv tiles in flight\n";
  os << "constexpr int HEAD_DIM = " << qType.getDimSize(3) << ";\n";
  os << "constexpr int QUERY_HEADS = " << loop.getQueryHeads() << ";\n";
  os << "constexpr int KV_HEADS = " << loop.getKvHeads() << ";\n";
  os << "constexpr bool IS_BF16 = " << (qType.getElementType().isBF16() ? "true" : "false")
     << "; // element type of Q, K, V and O (else fp16)\n";
  os << "constexpr float SCALE_LOG2 = " << floatLiteral(qLoad.getScale().convertToDouble())
     << "; // softmax scale times log2(e)\n";
  if (auto band = dyn_cast<BandScheduleAttr>(loop.getSchedule()))
    os << "// The mask's closed form: lo <= p - k <= hi and (p - k) % period == 0.\n"
       << "__device__ constexpr Band kBand = tightenBand(" << boundLiteral(band.getLo()) << ", "
       << boundLiteral(band.getHi()) << ", " << band.getPeriod() << ");\n";
  os << "\n";
  if (tile.isWgmma())
    os << "// The Hopper warpgroup mainloop (wgmma, sm_90a): one 64-row wgmma block per "
          "warpgroup.\n"
          "using Cfg = WgmmaConfig<IS_BF16, BLOCK_M, BLOCK_N, HEAD_DIM, NUM_WARPS, STAGES>;\n";
  else
    os << "using Cfg = FlashConfig<IS_BF16, BLOCK_M, BLOCK_N, HEAD_DIM, NUM_WARPS, STAGES>;\n";
  os << "static_assert(kSharedBytes<Cfg> == "
     << cudaSharedBytes(tile.getBlockM(), tile.getBlockN(), qType.getDimSize(3), tile.getStages(),
                        tile.getMma())
     << ", \"the manifest's launch.shared_bytes\");\n";
  os << "\n} // namespace\n\n";
  os << "/// One grid point of the flash loop: query tile qt of query head h in batch b. Grid "
        "(query tiles,\n/// QUERY_HEADS, batch), Cfg::kNumThreads threads, "
        "kSharedBytes<Cfg> bytes of dynamic shared memory.\n";
  os << "extern \"C\" __global__ void __launch_bounds__(Cfg::kNumThreads, 1)\n"
        "    attnc_forward_kernel(const __grid_constant__ attnc_forward_args args) {\n";
  os << "  extern __shared__ __align__(kChunkBytes) unsigned char attnc_shared[];\n";
  os << "  SharedStorage<Cfg> &smem = sharedStorage<Cfg>(attnc_shared);\n";
  // Band schedules count query tiles from the last (the longest causal rows
  // first); table schedules run the grid's blocks in the table's
  // heaviest-first order, across heads and batch.
  printGridPoint(os, isa<BandScheduleAttr>(loop.getSchedule()), "queryTileIndex()",
                 "args.schedule", name(body.getArgument(2)), name(body.getArgument(1)),
                 name(body.getArgument(0)));
  if (failed(printBlock(body)))
    return failure();
  os << "}\n";
  return success();
}

LogicalResult CppPrinter::print(const std::string &banner) {
  if (cuda) {
    os << banner;
    return printCudaKernel();
  }
  auto qType = loop.getQuery().getType(), kType = loop.getKey().getType();
  TileAttr tile = loop.getTile();
  auto dim = [](int64_t d) { return ShapedType::isDynamic(d) ? std::string("-1") : std::to_string(d); };
  os << banner;
  os << "#include \"attnc_cpu.h\"\n#include \"kernel_abi.h\"\n\n";
  os << "namespace {\n\nusing namespace attnc_cpu;\n\n";
  os << "constexpr int64_t BLOCK_M = " << tile.getBlockM() << "; // query rows per tile\n";
  os << "constexpr int64_t BLOCK_N = " << tile.getBlockN() << "; // keys per tile\n";
  os << "constexpr int64_t HEAD_DIM = " << qType.getDimSize(3) << ";\n";
  os << "constexpr int64_t QUERY_HEADS = " << loop.getQueryHeads() << ";\n";
  os << "constexpr int64_t KV_HEADS = " << loop.getKvHeads() << ";\n";
  os << "constexpr int64_t SEQ_LEN_Q = " << dim(qType.getDimSize(1))
     << "; // -1: given at launch\n";
  os << "constexpr int64_t SEQ_LEN_KV = " << dim(kType.getDimSize(1)) << ";\n";
  os << "constexpr bool IS_BF16 = " << (qType.getElementType().isBF16() ? "true" : "false")
     << "; // element type of Q, K, V and O (else fp16)\n";
  if (auto band = dyn_cast<BandScheduleAttr>(loop.getSchedule()))
    os << "// The mask's closed form: lo <= p - k <= hi and (p - k) % period == 0.\n"
       << "constexpr Band kBand = tightenBand(" << boundLiteral(band.getLo()) << ", "
       << boundLiteral(band.getHi()) << ", " << band.getPeriod() << ");\n";
  os << "\n";

  Block &body = loop.getBody().front();
  os << "/// One grid point of the flash loop: query tile " << name(body.getArgument(2))
     << " of query head " << name(body.getArgument(1)) << " in batch "
     << name(body.getArgument(0)) << ".\n";
  os << "void flashTile(const attnc_forward_args &args, int64_t " << name(body.getArgument(0))
     << ", int64_t " << name(body.getArgument(1)) << ", int64_t " << name(body.getArgument(2))
     << ") {\n";
  if (failed(printBlock(body)))
    return failure();
  os << "}\n\n} // namespace\n\n";

  os << "extern \"C\" int attnc_forward(const attnc_forward_args *args) {\n";
  os << "  const int64_t queryTiles = (args->nq + BLOCK_M - 1) / BLOCK_M;\n";
  os << "  parallelFor(args->batch * QUERY_HEADS * queryTiles, args->num_threads, [&](int64_t "
        "item) {\n";
  os << "    const int64_t qt = item % queryTiles;\n";
  os << "    const int64_t h = (item / queryTiles) % QUERY_HEADS;\n";
  os << "    const int64_t b = item / (queryTiles * QUERY_HEADS);\n";
  os << "    flashTile(*args, b, h, qt);\n";
  os << "  });\n  return 0;\n}\n";
  return success();
}

/// Prints the backward kernels (attn-lower-to-loops of attn.attention_grad)
/// after the forward's: CPU functions per grid point and attnc_backward.
class GradPrinter : public PrinterBase {
public:
  GradPrinter(func::FuncOp func, TileAttr forwardTile, KernelTarget target,
              llvm::raw_ostream &os)
      : PrinterBase(func, os), func(func), forwardTile(forwardTile),
        cuda(target == KernelTarget::Cuda) {}

  LogicalResult print();

private:
  /// The kernel argument a tensor value is: the function's (Q, K, V, O,
  /// LSE, dO), or delta.
  std::string tensorArg(Value v) {
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      const char *names[] = {"args.q", "args.k", "args.v", "args.o", "args.lse", "args.d_o"};
      if (arg.getOwner()->getParentOp() == func && arg.getArgNumber() < 6)
        return names[arg.getArgNumber()];
    }
    return "args.delta";
  }

  std::string cppType(Value v) {
    Type t = v.getType();
    if (auto tensor = dyn_cast<RankedTensorType>(t)) {
      if (tensor.getRank() == 2)
        return "Tile<" + std::to_string(tensor.getDimSize(0)) + ", " +
               std::to_string(tensor.getDimSize(1)) + ">";
      return "Row<" + std::to_string(tensor.getDimSize(0)) + ">";
    }
    return t.isInteger(1) ? "bool" : "int64_t";
  }

  LogicalResult printBlock(Block &block) {
    for (Operation &op : block)
      if (failed(printOp(&op)))
        return failure();
    return success();
  }
  LogicalResult printOp(Operation *op);
  LogicalResult printQLoop(QLoopOp op);
  LogicalResult printKvLoop(KvLoopOp op);
  LogicalResult printCuda(GradKvLoopOp kvLoop, GradQLoopOp qLoop);
  LogicalResult printCudaBlock(Block &block) {
    for (Operation &op : block)
      if (failed(printCudaOp(&op)))
        return failure();
    return success();
  }
  LogicalResult printCudaOp(Operation *op);
  /// "DkdvCfg" inside the kv-stationary kernel, "DqCfg" in the dQ kernel.
  std::string cfg(Operation *op) {
    return op->getParentOfType<GradKvLoopOp>() ? "DkdvCfg" : "DqCfg";
  }
  /// Declares the loop-carried variables of a loop body and aliases the
  /// loop's results to them.
  void carry(Block &body, unsigned firstState, ValueRange inits, ValueRange results);

  func::FuncOp func;
  TileAttr forwardTile; ///< the CPU backward shares its BLOCK_M and BLOCK_N
  bool cuda;
  /// The backward's own tile (CUDA: GRAD_BLOCK_M, DQ_BLOCK_N), which differs
  /// from the forward's under a wgmma forward; the kv-stationary pass's keys.
  int64_t blockM = 0, blockN = 0, kvBlockN = 0, headDim = 0;
  /// CUDA: blocks that share a kv tile's GQA group (each walks headsPerBlock
  /// query heads; dK and dV are summed by the dK/dV convert kernel).
  int64_t splits = 1, headsPerBlock = 1;
};

void GradPrinter::carry(Block &body, unsigned firstState, ValueRange inits, ValueRange results) {
  for (auto [arg, init] : llvm::zip(body.getArguments().drop_front(firstState), inits))
    os << indent() << cppType(arg) << " " << name(arg) << " = " << name(init) << ";\n";
  for (auto [result, arg] : llvm::zip(results, body.getArguments().drop_front(firstState)))
    aliases[result] = name(arg);
}

LogicalResult GradPrinter::printQLoop(QLoopOp op) {
  Block &body = op.getBody().front();
  carry(body, 3, op.getInitArgs(), op.getResults());
  std::string h = name(body.getArgument(0)), qt = name(body.getArgument(1)),
              partial = name(body.getArgument(2)), kt = name(op.getKtile()),
              kvHead = name(op.getKvHead());
  os << indent() << "// GQA: dK and dV sum over the " << op.getGroup()
     << " query head(s) of kv head " << kvHead << ".\n";
  os << indent() << "for (int64_t " << h << " = " << kvHead << " * KV_GROUP; " << h << " < ("
     << kvHead << " + 1) * KV_GROUP; ++" << h << ") {\n";
  ++depth;
  openCpuScheduleLoop(isa<BandScheduleAttr>(op.getSchedule()), /*transposed=*/true, kt, qt,
                      partial);
  if (failed(printBlock(body)))
    return failure();
  --depth;
  os << indent() << "}\n";
  --depth;
  os << indent() << "}\n";
  return success();
}

LogicalResult GradPrinter::printKvLoop(KvLoopOp op) {
  Block &body = op.getBody().front();
  carry(body, 2, op.getInitArgs(), op.getResults());
  std::string kt = name(body.getArgument(0)), partial = name(body.getArgument(1)),
              qt = name(op.getQtile());
  openCpuScheduleLoop(isa<BandScheduleAttr>(op.getSchedule()), /*transposed=*/false, qt, kt,
                      partial);
  if (failed(printBlock(body)))
    return failure();
  --depth;
  os << indent() << "}\n";
  return success();
}

LogicalResult GradPrinter::printOp(Operation *op) {
  std::string in = indent();
  if (auto c = dyn_cast<arith::ConstantOp>(op)) {
    aliases[c] = "KV_GROUP";
  } else if (auto div = dyn_cast<arith::DivUIOp>(op)) {
    aliases[div] = "kv_head";
    os << in << "const int64_t kv_head = " << name(div.getLhs())
       << " / KV_GROUP; // GQA: the kv head of query head " << name(div.getLhs()) << "\n";
  } else if (auto load = dyn_cast<LoadTileOp>(op)) {
    bool kv = load.getSource() == func.getArgument(1) || load.getSource() == func.getArgument(2);
    os << in << cppType(load) << " " << name(load) << "; // ("
       << (!kv ? "BLOCK_M" : op->getParentOfType<GradKvLoopOp>() ? "DKDV_BLOCK_N" : "BLOCK_N")
       << ", HEAD_DIM)\n";
    os << in << "loadTile<IS_BF16>(" << tensorArg(load.getSource()) << ", " << name(load.getBatch())
       << ", " << name(load.getTile()) << ", " << name(load.getHead()) << ", "
       << floatLiteral(load.getScale().convertToDouble()) << ", " << name(load) << ");\n";
  } else if (auto row = dyn_cast<LoadRowOp>(op)) {
    bool lse = tensorArg(row.getSource()) == "args.lse";
    os << in << cppType(row) << " " << name(row) << "; // (BLOCK_M)"
       << (lse ? " LSE, -inf past the end" : " delta") << "\n";
    os << in << "loadRow(" << tensorArg(row.getSource()) << ", " << name(row.getBatch()) << ", "
       << name(row.getHead()) << ", " << name(row.getTile()) << ", "
       << (lse ? "-INFINITY" : "0.0f") << ", " << name(row) << ");\n";
  } else if (auto fill = dyn_cast<FillOp>(op)) {
    os << in << cppType(fill) << " " << name(fill) << ";\n";
    os << in << "fill(" << name(fill) << ", " << floatLiteral(fill.getValue().convertToDouble())
       << ");\n";
  } else if (auto qLoop = dyn_cast<QLoopOp>(op)) {
    return printQLoop(qLoop);
  } else if (auto kvLoop = dyn_cast<KvLoopOp>(op)) {
    return printKvLoop(kvLoop);
  } else if (auto qkOp = dyn_cast<QKOp>(op)) {
    std::string what = name(qkOp) == "st"    ? "S^T = K Q^T"
                       : name(qkOp) == "dpt" ? "dP^T = V dO^T"
                       : name(qkOp) == "dp"  ? "dP = dO V^T"
                                             : "S = Q K^T";
    os << in << cppType(qkOp) << " " << name(qkOp) << "; // " << what << "\n";
    os << in << "qk(" << name(qkOp.getQ()) << ", " << name(qkOp.getK()) << ", " << name(qkOp)
       << ");\n";
  } else if (auto mask = dyn_cast<MaskTileOp>(op)) {
    bool t = mask.getTransposed();
    os << in << cppType(mask) << " " << name(mask) << " = " << name(mask.getS())
       << "; // -inf where the mask forbids\n";
    if (mask.getForm() == "band")
      os << in << (t ? "maskBandT(" : "maskBand(") << name(mask) << ", kBand, "
         << name(mask.getQtile()) << ", " << name(mask.getKtile()) << ", "
         << name(mask.getPartial()) << ", args.nq, args.nk);\n";
    else if (mask.getForm() == "bitmask")
      os << in << (t ? "maskBitsT(" : "maskBits(") << name(mask)
         << (t ? ", args.columns, entry, " : ", args.schedule, entry, ") << name(mask.getKtile())
         << ", " << name(mask.getPartial()) << ", args.nk);\n";
    else
      return mask.emitOpError("has no form: run attn-prepare-for-emission first");
  } else if (auto p = dyn_cast<RecomputePOp>(op)) {
    bool t = p.getTransposed();
    os << in << cppType(p) << " " << name(p) << "; // " << (t ? "P^T" : "P")
       << " = exp2(S * SCALE_LOG2 - LSE * log2(e)), 0 where masked\n";
    os << in << (t ? "recomputePT(" : "recomputeP(") << name(p.getS()) << ", " << name(p.getLse())
       << ", SCALE_LOG2, " << name(p) << ");\n";
  } else if (auto d = dyn_cast<DsOp>(op)) {
    bool t = d.getTransposed();
    os << in << cppType(d) << " " << name(d) << "; // " << (t ? "dS^T = P^T (dP^T" : "dS = P (dP")
       << " - delta)\n";
    os << in << (t ? "dScoresT(" : "dScores(") << name(d.getP()) << ", " << name(d.getDp()) << ", "
       << name(d.getDelta()) << ", " << name(d) << ");\n";
  } else if (auto mm = dyn_cast<MatmulAccOp>(op)) {
    std::string n = name(mm);
    std::string what = n == "dv_new" ? "dV += P^T dO" : n == "dk_new" ? "dK += dS^T Q" : "dQ += dS K";
    os << in << cppType(mm) << " " << n << "; // " << what << "\n";
    os << in << "matmulAcc(" << name(mm.getAcc()) << ", " << name(mm.getA()) << ", "
       << name(mm.getB()) << ", " << n << ");\n";
  } else if (auto y = dyn_cast<YieldOp>(op)) {
    Block *body = y->getBlock();
    unsigned first = isa<QLoopOp>(y->getParentOp()) ? 3 : 2;
    for (auto [arg, value] : llvm::zip(body->getArguments().drop_front(first), y.getValues()))
      os << in << name(arg) << " = " << name(value) << ";\n";
  } else if (auto y = dyn_cast<GradYieldOp>(op)) {
    Block *body = y->getBlock();
    std::string b = name(body->getArgument(0)), h = name(body->getArgument(1)),
                tile = name(body->getArgument(2));
    if (isa<GradKvLoopOp>(y->getParentOp())) {
      os << in << "storeGrad<IS_BF16>(args.dk, " << b << ", " << tile << ", " << h << ", "
         << name(y.getValues()[0]) << ", SCALE); // dK = scale dS^T Q\n";
      os << in << "storeGrad<IS_BF16>(args.dv, " << b << ", " << tile << ", " << h << ", "
         << name(y.getValues()[1]) << ", 1.0f);\n";
    } else {
      os << in << "storeGrad<IS_BF16>(args.dq, " << b << ", " << tile << ", " << h << ", "
         << name(y.getValues()[0]) << ", SCALE); // dQ = scale dS K\n";
    }
  } else if (isa<DqAtomicAddOp>(op)) {
    return op->emitOpError("has no CPU form: the CPU target computes dQ in the separate pass");
  } else {
    return op->emitOpError("is not printable as C++");
  }
  return success();
}

LogicalResult GradPrinter::printCudaOp(Operation *op) {
  std::string in = indent();
  std::string c = cfg(op);
  bool kvPass = c == "DkdvCfg";
  if (isa<arith::ConstantOp>(op)) {
    aliases[op->getResult(0)] = "KV_GROUP";
  } else if (auto div = dyn_cast<arith::DivUIOp>(op)) {
    aliases[div] = "kv_head";
    os << in << "const int64_t kv_head = " << name(div.getLhs())
       << " / KV_GROUP; // GQA: the kv head of query head " << name(div.getLhs()) << "\n";
  } else if (auto load = dyn_cast<LoadTileOp>(op)) {
    std::string arg = tensorArg(load.getSource());
    if (kvPass && isa<GradKvLoopOp>(op->getParentOp())) {
      // K and V of the kv tile: one asynchronous copy into shared memory,
      // then each warp's rows (KvRows, after the Q/dO pipeline's prologue).
      aliases[load] = arg == "args.k" ? "k_rows" : "v_rows";
      if (arg == "args.k")
        os << in << "loadKvTileAsync<DkdvCfg>(args.k, args.v, " << name(load.getBatch()) << ", "
           << name(load.getTile()) << ", " << name(load.getHead())
           << ", smem); // (DKDV_BLOCK_N, HEAD_DIM) K, V\n";
    } else if (kvPass) {
      // Q and dO of a step: the pipeline's acquire, which also brings LSE and delta.
      aliases[load] = arg == "args.q" ? "qdo_tile.q" : "qdo_tile.d_o";
      if (arg == "args.q")
        os << in << "const QdoTiles qdo_tile = qdo.acquire(); // Q, dO (GRAD_BLOCK_M, HEAD_DIM), "
                    "LSE, delta (GRAD_BLOCK_M) in smem\n";
    } else if (isa<KvLoopOp>(op->getParentOp())) {
      aliases[load] = arg == "args.k" ? "kv_tile.k" : "kv_tile.v";
      if (arg == "args.k")
        os << in
           << "const KvTiles kv_tile = kv.acquire(); // (DQ_BLOCK_N, HEAD_DIM) K and V of tile "
           << name(load.getTile()) << " in smem\n";
    } else {
      std::string staging = arg == "args.q" ? "smem.q" : "smem.d_o";
      os << in << "QTile<DqCfg> " << name(load)
         << "; // (GRAD_BLOCK_M, HEAD_DIM) in registers, staged through " << staging << "\n";
      os << in << "loadQTileAsync<DqCfg>(" << arg << ", " << name(load.getBatch()) << ", "
         << name(load.getTile()) << ", " << name(load.getHead()) << ", " << staging << ");\n";
    }
  } else if (auto row = dyn_cast<LoadRowOp>(op)) {
    bool lse = tensorArg(row.getSource()) == "args.lse";
    if (kvPass) {
      aliases[row] = lse ? "qdo_tile.lse" : "qdo_tile.delta";
    } else {
      os << in << "RowVec<DqCfg> " << name(row) << "; // (GRAD_BLOCK_M)\n";
      os << in << "loadRow(" << tensorArg(row.getSource()) << ", " << name(row.getBatch()) << ", "
         << name(row.getHead()) << ", " << name(row.getTile()) << ", " << name(row) << ");\n";
    }
  } else if (auto fill = dyn_cast<FillOp>(op)) {
    os << in << "AccTile<" << c << "> " << name(fill) << "; // ("
       << (kvPass ? "DKDV_BLOCK_N" : "GRAD_BLOCK_M") << ", HEAD_DIM)\n";
    os << in << "fill(" << name(fill) << ", " << floatLiteral(fill.getValue().convertToDouble())
       << ");\n";
  } else if (auto qLoop = dyn_cast<QLoopOp>(op)) {
    Block &body = qLoop.getBody().front();
    for (auto [arg, init] : llvm::zip(body.getArguments().drop_front(3), qLoop.getInitArgs()))
      os << in << "AccTile<DkdvCfg> " << name(arg) << " = " << name(init) << ";\n";
    for (auto [result, arg] : llvm::zip(qLoop.getResults(), body.getArguments().drop_front(3)))
      aliases[result] = name(arg);
    bool band = isa<BandScheduleAttr>(qLoop.getSchedule());
    std::string kt = name(qLoop.getKtile()), kvHead = name(qLoop.getKvHead());
    std::string columns =
        band ? "BandColumnSchedule<GRAD_BLOCK_M, DKDV_BLOCK_N>" : "TableColumnSchedule";
    os << in
       << (band ? "// Closed-form column schedule: the query tiles that see kv tile "
                : "// Column table, built by the runtime at launch: the query tiles that see kv "
                  "tile ")
       << kt << ", for every head of the group.\n";
    std::string group = splits > 1 ? "HEADS_PER_BLOCK" : "KV_GROUP";
    std::string slot = splits > 1 ? "kv_slot" : kvHead;
    os << in << "const GroupSchedule<" << columns << ", " << group << "> schedule(\n"
       << in << "    " << columns << "("
       << (band ? "kBand, " + kt + ", args.nq, args.nk" : "args.columns, " + kt) << "));\n";
    os << in << "QdoPipeline<DkdvCfg, decltype(schedule)> qdo(schedule, args, "
       << name(qLoop->getParentOfType<GradKvLoopOp>().getBody().front().getArgument(0)) << ", "
       << slot << ", smem);\n";
    os << in << "KvRows<DkdvCfg> k_rows; // the warp's rows of K (registers if HEAD_DIM <= 64, "
                "else smem)\n";
    os << in << "loadKvRows<DkdvCfg, decltype(qdo)::kGroupsInFlight>(smem.k, k_rows);\n";
    os << in << "KvRows<DkdvCfg> v_rows; // the warp's rows of V\n";
    os << in << "loadKvRows<DkdvCfg, decltype(qdo)::kGroupsInFlight>(smem.v, v_rows);\n";
    bool atomic = qLoop->getParentOfType<GradKvLoopOp>().getAtomicDq();
    if (atomic)
      os << in << "DqPending dq_pending = noDqPending(); // the step whose dQ dqAtomicAdd still "
                  "owes dq_accum\n";
    os << in << "for (GroupCursor step = schedule.begin(); schedule.valid(step); step = "
                "schedule.next(step)) {\n";
    ++depth;
    os << indent() << "[[maybe_unused]] const int64_t " << name(body.getArgument(0)) << " = "
       << slot << " * " << group << " + step.group; // the step's query head\n";
    os << indent() << "const int64_t " << name(body.getArgument(1))
       << " = schedule.queryTile(step);\n";
    os << indent() << "const bool " << name(body.getArgument(2)) << " = schedule.partial(step);\n";
    if (failed(printCudaBlock(body)))
      return failure();
    --depth;
    os << in << "}\n";
    if (atomic)
      os << in << "dqAtomicFlush<DkdvCfg>(dq_pending, smem, args.dq_accum, "
         << name(qLoop->getParentOfType<GradKvLoopOp>().getBody().front().getArgument(0))
         << ", SCALE);\n";
  } else if (auto kvLoop = dyn_cast<KvLoopOp>(op)) {
    Block &body = kvLoop.getBody().front();
    for (auto [arg, init] : llvm::zip(body.getArguments().drop_front(2), kvLoop.getInitArgs()))
      os << in << "AccTile<DqCfg> " << name(arg) << " = " << name(init) << ";\n";
    for (auto [result, arg] : llvm::zip(kvLoop.getResults(), body.getArguments().drop_front(2)))
      aliases[result] = name(arg);
    bool band = isa<BandScheduleAttr>(kvLoop.getSchedule());
    std::string qt = name(kvLoop.getQtile());
    std::string type = band ? "BandSchedule<GRAD_BLOCK_M, DQ_BLOCK_N>" : "TableSchedule";
    os << in
       << (band ? "// Closed-form schedule: the band's kv tiles, classified from indices.\n"
                : "// Table schedule, built by the runtime at launch.\n");
    os << in << "const " << type << " schedule("
       << (band ? "kBand, " + qt + ", args.nq, args.nk" : "args.schedule, " + qt) << ");\n";
    os << in << "KvPipeline<DqCfg, " << type << "> kv(schedule, args.k, args.v, "
       << name(kvLoop->getParentOfType<GradQLoopOp>().getBody().front().getArgument(0))
       << ", kv_head, smem);\n";
    os << in << "loadQFragments<DqCfg, decltype(kv)::kGroupsInFlight + 1>(smem.q, SCALE_LOG2, "
                "q_tile);\n";
    os << in << "loadQFragments<DqCfg, decltype(kv)::kGroupsInFlight>(smem.d_o, 1.0f, do_tile);\n";
    std::string kt = name(body.getArgument(0)), partial = name(body.getArgument(1));
    if (band) {
      os << in << "for (int64_t " << kt << " = schedule.begin(); schedule.valid(" << kt << "); "
         << kt << " = schedule.next(" << kt << ")) {\n";
      ++depth;
      os << indent() << "const bool " << partial << " = schedule.partial(" << kt << ");\n";
    } else {
      os << in << "for (int64_t entry = schedule.begin(); schedule.valid(entry); entry = "
                  "schedule.next(entry)) {\n";
      ++depth;
      os << indent() << "const int64_t " << kt << " = schedule.kvTile(entry);\n";
      os << indent() << "const bool " << partial << " = schedule.partial(entry);\n";
    }
    if (failed(printCudaBlock(body)))
      return failure();
    --depth;
    os << in << "}\n";
  } else if (auto qkOp = dyn_cast<QKOp>(op)) {
    std::string n = name(qkOp);
    std::string what = n == "st" ? "S^T = K Q^T" : n == "dpt" ? "dP^T = V dO^T" : n == "dp" ? "dP = dO V^T" : "S = Q K^T";
    os << in << "ScoreTile<" << c << "> " << n << "; // " << what << "\n";
    os << in << (kvPass ? "qkT(" : "qk(") << name(qkOp.getQ()) << ", " << name(qkOp.getK()) << ", "
       << n << ");\n";
  } else if (auto mask = dyn_cast<MaskTileOp>(op)) {
    std::string qt = name(mask.getQtile()), kt = name(mask.getKtile()),
                partial = name(mask.getPartial());
    os << in << "ScoreTile<" << c << "> " << name(mask) << " = " << name(mask.getS())
       << "; // -inf where the mask forbids\n";
    bool band = mask.getForm() == "band";
    if (!band && mask.getForm() != "bitmask")
      return mask.emitOpError("has no form: run attn-prepare-for-emission first");
    if (mask.getTransposed())
      os << in
         << (band ? "maskBandT(" + name(mask) + ", kBand, "
                  : "maskBitsT(" + name(mask) + ", args.columns, schedule.entry(step), ")
         << qt << ", " << kt << ", " << partial << ", args.nq, args.nk);\n";
    else if (band)
      os << in << "maskBand(" << name(mask) << ", kBand, " << qt << ", " << kt << ", " << partial
         << ", args.nq, args.nk);\n";
    else
      os << in << "maskBits(" << name(mask) << ", args.schedule, entry, " << kt << ", " << partial
         << ", args.nk);\n";
  } else if (auto p = dyn_cast<RecomputePOp>(op)) {
    bool t = p.getTransposed();
    os << in << "OperandTile<" << c << "> " << name(p) << "; // " << (t ? "P^T" : "P")
       << " = exp2(" << (t ? "S^T" : "S") << " scale log2(e) - LSE log2(e)), rounded\n";
    os << in << (t ? "recomputePT(" : "recomputeP(") << name(p.getS()) << ", " << name(p.getLse())
       << ", SCALE_LOG2, " << name(p) << ");\n";
  } else if (auto d = dyn_cast<DsOp>(op)) {
    bool t = d.getTransposed();
    if (!t)
      aliases[d] = "ds_tile"; // `ds` names the helper
    os << in << "OperandTile<" << c << "> " << name(d) << "; // "
       << (t ? "dS^T = P^T (dP^T - delta)" : "dS = P (dP - delta)") << ", rounded\n";
    os << in << (t ? "dsT(" : "ds(") << name(d.getP()) << ", " << name(d.getDp()) << ", "
       << name(d.getDelta()) << ", " << name(d) << ");\n";
  } else if (auto mm = dyn_cast<MatmulAccOp>(op)) {
    std::string n = name(mm);
    std::string what = n == "dv_new" ? "dV + P^T dO" : n == "dk_new" ? "dK + dS^T Q" : "dQ + dS K";
    os << in << "AccTile<" << c << "> " << n << "; // " << what << "\n";
    os << in << "matmulAcc(" << name(mm.getAcc()) << ", " << name(mm.getA()) << ", "
       << name(mm.getB()) << ", " << n << ");\n";
  } else if (auto add = dyn_cast<DqAtomicAddOp>(op)) {
    os << in << "dqAtomicAdd(" << name(add.getDsT()) << ", dq_pending, smem, args.dq_accum, " << name(add.getBatch()) << ", " << name(add.getQtile()) << ", "
       << name(add.getHead()) << ", SCALE); // dq_accum += scale dS K\n";
  } else if (auto y = dyn_cast<YieldOp>(op)) {
    Block *body = y->getBlock();
    unsigned first = isa<QLoopOp>(y->getParentOp()) ? 3 : 2;
    for (auto [arg, value] : llvm::zip(body->getArguments().drop_front(first), y.getValues()))
      os << in << name(arg) << " = " << name(value) << ";\n";
  } else if (auto y = dyn_cast<GradYieldOp>(op)) {
    Block *body = y->getBlock();
    std::string b = name(body->getArgument(0)), h = name(body->getArgument(1)),
                tile = name(body->getArgument(2));
    if (kvPass && splits > 1) {
      os << in << "// This block's part of the group: float32 partials, summed by "
                  "attnc_backward_dkdv_convert_kernel.\n";
      os << in << "storeGradPartial(args.dk_partial, split * args.batch + " << b << ", " << tile
         << ", " << h << ", " << name(y.getValues()[0]) << ", SCALE); // dK = scale dK\n";
      os << in << "storeGradPartial(args.dv_partial, split * args.batch + " << b << ", " << tile
         << ", " << h << ", " << name(y.getValues()[1]) << ", 1.0f);\n";
    } else if (kvPass) {
      os << in << "storeGrad(args.dk, " << b << ", " << tile << ", " << h << ", "
         << name(y.getValues()[0]) << ", SCALE, smem.k); // dK = scale dK\n";
      os << in << "storeGrad(args.dv, " << b << ", " << tile << ", " << h << ", "
         << name(y.getValues()[1]) << ", 1.0f, smem.v);\n";
    } else {
      os << in << "storeGrad(args.dq, " << b << ", " << tile << ", " << h << ", "
         << name(y.getValues()[0]) << ", SCALE, smem.q); // dQ = scale dQ\n";
    }
  } else {
    return op->emitOpError("is not printable as CUDA");
  }
  return success();
}

LogicalResult GradPrinter::printCuda(GradKvLoopOp kvLoop, GradQLoopOp qLoop) {
  bool atomic = kvLoop.getAtomicDq();
  double scale = kvLoop.getScale().convertToDouble();
  os << "\n//===----------------------------------------------------------------------===//\n"
        "// The backward pass (attn.attention_grad): P recomputed from the saved LSE\n"
        "//===----------------------------------------------------------------------===//\n\n";
  os << "namespace {\n\n";
  os << "constexpr int KV_GROUP = QUERY_HEADS / KV_HEADS; // query heads per kv head\n";
  os << "constexpr bool ATOMIC_DQ = " << (atomic ? "true" : "false")
     << "; // dQ by float32 atomics, else the dQ kernel\n";
  os << "constexpr float SCALE = " << floatLiteral(scale)
     << "; // softmax scale (SCALE_LOG2 above: times log2(e))\n\n";
  os << "constexpr int GRAD_BLOCK_M = " << blockM
     << "; // query rows per tile of every backward kernel\n";
  os << "constexpr int DKDV_BLOCK_N = " << kvBlockN
     << (!isa<BandScheduleAttr>(kvLoop.getSchedule())
             ? (kvLoop.getTile().isWgmma()
                    ? "; // keys per kv tile of the dK/dV kernel (its table's: GRAD_BLOCK_M x "
                      "DKDV_BLOCK_N tiles)\n"
                    : "; // keys per kv tile of the dK/dV kernel (the table's BLOCK_N)\n")
                            : "; // keys per kv tile of the dK/dV kernel: the band's closed form "
                              "does not tie it to BLOCK_N\n");
  if (splits > 1)
    os << "constexpr int GROUP_SPLITS = " << splits
       << "; // dK/dV blocks per kv tile and kv head, each over HEADS_PER_BLOCK query heads\n"
       << "constexpr int HEADS_PER_BLOCK = KV_GROUP / GROUP_SPLITS;\n";
  if (!atomic)
    os << "constexpr int DQ_BLOCK_N = " << blockN << "; // keys per kv tile of the dQ kernel\n";
  if (kvLoop.getTile().isWgmma())
    os << "// The Hopper warpgroup dK/dV kernel (wgmma, sm_90a): 64 keys per warpgroup.\n"
          "using DkdvCfg = DkdvWgmmaConfig<IS_BF16, GRAD_BLOCK_M, DKDV_BLOCK_N, HEAD_DIM>; // "
          "rows: keys, columns: queries\n";
  else
    os << "using DkdvCfg = DkdvConfig<IS_BF16, GRAD_BLOCK_M, DKDV_BLOCK_N, HEAD_DIM>; // rows: "
          "keys, columns: queries\n";
  if (atomic)
    os << "using DqCfg = DqConfig<IS_BF16, GRAD_BLOCK_M, GRAD_BLOCK_M, HEAD_DIM>; // rows only: "
          "no dQ kernel walks kv tiles\n";
  else
    os << "using DqCfg = DqConfig<IS_BF16, GRAD_BLOCK_M, DQ_BLOCK_N, HEAD_DIM>;\n";
  os << "using DkdvSmem = DkdvSharedStorage<DkdvCfg, ATOMIC_DQ>;\n";
  os << "static_assert(kDynamicSharedBytes<DkdvSmem> == "
     << cudaBackwardSharedBytes(blockM, kvBlockN, headDim, true, atomic,
                                kvLoop.getTile().getMma())
     << ", \"the manifest's backward dkdv shared_bytes\");\n";
  if (!atomic)
    os << "static_assert(sizeof(DqSharedStorage<DqCfg>) == "
       << cudaBackwardSharedBytes(blockM, blockN, headDim, false, false)
       << ", \"the manifest's backward dq shared_bytes\");\n";
  os << "\n} // namespace\n\n";

  os << "/// delta = rowsum(dO O) of query tile qt of head h" << (atomic ? " and its zeroed dq_accum rows" : "")
     << ". Grid\n/// (query tiles, QUERY_HEADS, batch), DqCfg::kNumThreads threads, no shared "
        "memory.\n";
  os << "extern \"C\" __global__ void __launch_bounds__(DqCfg::kNumThreads)\n"
        "    attnc_backward_preprocess_kernel(const __grid_constant__ attnc_backward_args args) {\n"
        "  const int64_t qt = blockIdx.x;\n  const int64_t h = blockIdx.y;\n"
        "  const int64_t b = blockIdx.z;\n"
        "  computeDelta<DqCfg>(args.o, args.d_o, args.delta, b, qt, h);\n";
  if (atomic)
    os << "  zeroDqAccum<DqCfg>(args.dq_accum, b, qt, h);\n";
  os << "}\n\n";

  Block &kvBody = kvLoop.getBody().front();
  os << "/// dK and dV of kv tile kt of kv head kv_head in batch b, summed over the query heads of "
        "its group"
     << (atomic ? "\n/// (and dq_accum += scale dS K)" : "")
     << ". Grid (kv tiles, KV_HEADS, batch), DkdvCfg::kNumThreads\n/// threads, "
        "kDynamicSharedBytes<DkdvSmem> bytes of dynamic shared memory.\n";
  os << "extern \"C\" __global__ void __launch_bounds__(DkdvCfg::kNumThreads, 1)\n"
        "    attnc_backward_dkdv_kernel(const __grid_constant__ attnc_backward_args args) {\n"
        "  extern __shared__ __align__(kChunkBytes) unsigned char attnc_shared[];\n"
        "  DkdvSmem &smem = alignedShared<DkdvSmem>(attnc_shared);\n";
  // Tables: the heaviest kv tiles first, grid-wide (tableGridPoint: the
  // heavy columns of every kv head start first, not only each head's own at
  // its turn; BigBird's global column made the per-head order's tail twice
  // the rest on an H100).
  const bool bandKv = isa<BandScheduleAttr>(kvLoop.getSchedule());
  printGridPoint(os, bandKv, "blockIdx.x", "args.columns",
                 name(kvBody.getArgument(2)),
                 splits > 1 ? "kv_slot" : name(kvBody.getArgument(1)),
                 name(kvBody.getArgument(0)));
  if (splits > 1) {
    os << "  const int64_t " << name(kvBody.getArgument(1))
       << " = kv_slot / GROUP_SPLITS; // grid y: kv head x GROUP_SPLITS + split\n";
    os << "  const int64_t split = kv_slot % GROUP_SPLITS; // this block's HEADS_PER_BLOCK query "
          "heads of the group\n";
  }
  depth = 1;
  if (failed(printCudaBlock(kvBody)))
    return failure();
  os << "}\n\n";

  if (splits > 1) {
    os << "/// dK and dV of kv tile kt of kv head kv_head in batch b: the sum of the GROUP_SPLITS "
          "blocks'\n/// float32 partials, in split order, rounded. Grid (kv tiles, KV_HEADS, "
          "batch), DkdvCfg::kNumThreads\n/// threads, no shared memory.\n";
    os << "extern \"C\" __global__ void __launch_bounds__(DkdvCfg::kNumThreads)\n"
          "    attnc_backward_dkdv_convert_kernel(const __grid_constant__ attnc_backward_args "
          "args) {\n  const int64_t kt = blockIdx.x;\n  const int64_t kv_head = blockIdx.y;\n"
          "  const int64_t b = blockIdx.z;\n"
          "  sumGradPartials<DkdvCfg>(args.dk_partial, GROUP_SPLITS, args.dk, b, kt, kv_head);\n"
          "  sumGradPartials<DkdvCfg>(args.dv_partial, GROUP_SPLITS, args.dv, b, kt, kv_head);\n"
          "}\n\n";
  }
  if (!atomic) {
    Block &qBody = qLoop.getBody().front();
    os << "/// Deterministic dQ of query tile qt of query head h in batch b, over the forward's "
          "schedule. Grid\n/// (query tiles, QUERY_HEADS, batch), DqCfg::kNumThreads threads, "
          "sizeof(DqSharedStorage<DqCfg>)\n/// bytes of dynamic shared memory.\n";
    os << "extern \"C\" __global__ void __launch_bounds__(DqCfg::kNumThreads, 1)\n"
          "    attnc_backward_dq_kernel(const __grid_constant__ attnc_backward_args args) {\n"
          "  extern __shared__ __align__(kChunkBytes) unsigned char attnc_shared[];\n"
          "  DqSharedStorage<DqCfg> &smem = *reinterpret_cast<DqSharedStorage<DqCfg> "
          "*>(attnc_shared);\n";
    printGridPoint(os, isa<BandScheduleAttr>(qLoop.getSchedule()), "queryTileIndex()",
                   "args.schedule", name(qBody.getArgument(2)), name(qBody.getArgument(1)),
                   name(qBody.getArgument(0)));
    depth = 1;
    if (failed(printCudaBlock(qBody)))
      return failure();
    os << "}\n";
  } else {
    os << "/// dQ = dq_accum rounded to the element type, query tile qt of head h. Grid (query "
          "tiles,\n/// QUERY_HEADS, batch), DqCfg::kNumThreads threads, no shared memory.\n";
    os << "extern \"C\" __global__ void __launch_bounds__(DqCfg::kNumThreads)\n"
          "    attnc_backward_dq_convert_kernel(const __grid_constant__ attnc_backward_args args) "
          "{\n  const int64_t qt = blockIdx.x;\n  const int64_t h = blockIdx.y;\n"
          "  const int64_t b = blockIdx.z;\n"
          "  convertDq<DqCfg>(args.dq_accum, args.dq, b, qt, h);\n}\n";
  }
  return success();
}

LogicalResult GradPrinter::print() {
  GradKvLoopOp kvLoop;
  GradQLoopOp qLoop;
  func.walk([&](GradKvLoopOp op) { kvLoop = op; });
  func.walk([&](GradQLoopOp op) { qLoop = op; });
  if (!kvLoop)
    return func.emitError("the backward needs attn.grad_kv_loop (attn-lower-to-loops)");
  blockM = kvLoop.getTile().getBlockM();
  kvBlockN = kvLoop.getTile().getBlockN();
  blockN = qLoop ? qLoop.getTile().getBlockN() : kvBlockN;
  headDim = kvLoop.getQuery().getType().getDimSize(3);
  if (cuda) {
    splits = cudaBackwardGroupSplits(kvLoop.getQueryHeads() / kvLoop.getKvHeads(),
                                     isa<BandScheduleAttr>(kvLoop.getSchedule()));
    headsPerBlock = kvLoop.getQueryHeads() / kvLoop.getKvHeads() / splits;
    return printCuda(kvLoop, qLoop);
  }
  if (!qLoop)
    return func.emitError("the CPU backward needs attn.grad_q_loop (attn-schedule-recompute with "
                          "deterministic: CPU kernels have no float32 atomics)");
  if (blockM != forwardTile.getBlockM() || blockN != forwardTile.getBlockN())
    return func.emitError("the CPU backward runs on the forward's tile (")
           << forwardTile.getBlockM() << "x" << forwardTile.getBlockN() << "), not " << blockM
           << "x" << blockN << " (a wgmma forward tile is CUDA-only)";
  double scale = kvLoop.getScale().convertToDouble();
  os << "\n//===----------------------------------------------------------------------===//\n"
        "// The backward pass (attn.attention_grad): P recomputed from the saved LSE\n"
        "//===----------------------------------------------------------------------===//\n\n";
  os << "namespace {\n\n";
  os << "constexpr float SCALE = " << floatLiteral(scale) << "; // softmax scale\n";
  os << "constexpr float SCALE_LOG2 = " << floatLiteral(scale * 1.4426950408889634)
     << "; // softmax scale times log2(e)\n";
  os << "constexpr int64_t KV_GROUP = QUERY_HEADS / KV_HEADS; // query heads per kv head\n";
  os << "constexpr int64_t DKDV_BLOCK_N = " << kvBlockN
     << "; // keys per kv tile of the dK/dV pass\n\n";

  os << "/// delta = rowsum(dO * O) for query tile qt of query head h in batch b.\n";
  os << "void gradPreprocessTile(const attnc_backward_args &args, int64_t b, int64_t h, int64_t "
        "qt) {\n";
  os << "  computeDelta<IS_BF16, BLOCK_M, HEAD_DIM>(args, b, h, qt);\n}\n\n";

  Block &kvBody = kvLoop.getBody().front();
  os << "/// The kv-stationary pass: dK and dV of kv tile " << name(kvBody.getArgument(2))
     << " of kv head " << name(kvBody.getArgument(1)) << " in batch "
     << name(kvBody.getArgument(0)) << ".\n";
  os << "void gradKvTile(const attnc_backward_args &args, int64_t " << name(kvBody.getArgument(0))
     << ", int64_t " << name(kvBody.getArgument(1)) << ", int64_t "
     << name(kvBody.getArgument(2)) << ") {\n";
  depth = 1;
  if (failed(printBlock(kvBody)))
    return failure();
  os << "}\n\n";

  Block &qBody = qLoop.getBody().front();
  os << "/// The q-stationary pass: dQ of query tile " << name(qBody.getArgument(2))
     << " of query head " << name(qBody.getArgument(1)) << " in batch "
     << name(qBody.getArgument(0)) << ".\n";
  os << "void gradQTile(const attnc_backward_args &args, int64_t " << name(qBody.getArgument(0))
     << ", int64_t " << name(qBody.getArgument(1)) << ", int64_t " << name(qBody.getArgument(2))
     << ") {\n";
  depth = 1;
  if (failed(printBlock(qBody)))
    return failure();
  os << "}\n\n} // namespace\n\n";

  os << "extern \"C\" int attnc_backward(const attnc_backward_args *args) {\n";
  os << "  const int64_t queryTiles = (args->nq + BLOCK_M - 1) / BLOCK_M;\n";
  os << "  const int64_t kvTiles = (args->nk + DKDV_BLOCK_N - 1) / DKDV_BLOCK_N;\n";
  os << "  parallelFor(args->batch * QUERY_HEADS * queryTiles, args->num_threads, [&](int64_t "
        "item) {\n";
  os << "    gradPreprocessTile(*args, item / (queryTiles * QUERY_HEADS), (item / queryTiles) % "
        "QUERY_HEADS,\n                       item % queryTiles);\n  });\n";
  os << "  parallelFor(args->batch * KV_HEADS * kvTiles, args->num_threads, [&](int64_t item) {\n";
  os << "    gradKvTile(*args, item / (kvTiles * KV_HEADS), (item / kvTiles) % KV_HEADS, item % "
        "kvTiles);\n  });\n";
  os << "  parallelFor(args->batch * QUERY_HEADS * queryTiles, args->num_threads, [&](int64_t "
        "item) {\n";
  os << "    gradQTile(*args, item / (queryTiles * QUERY_HEADS), (item / queryTiles) % "
        "QUERY_HEADS, item % queryTiles);\n  });\n";
  os << "  return 0;\n}\n";
  return success();
}

} // namespace

int64_t cudaSharedBytes(int64_t blockM, int64_t blockN, int64_t headDim, int64_t stages,
                        llvm::StringRef mma) {
  constexpr int64_t kElementBytes = 2;
  if (mma == TileAttr::kMmaWgmma) {
    // kSharedBytes<WgmmaConfig> of attnc_cuda_sm90.cuh: Q, then `stages` K
    // and V tiles, unpadded and each 1024-byte aligned (wgmma's 128-byte
    // swizzle repeats every 1024 bytes), plus the slack that aligns the
    // dynamic shared memory base (16-byte aligned) up to 1024 bytes.
    constexpr int64_t kSwizzleAtomBytes = 1024, kBaseAlignment = 16;
    auto roundUp = [](int64_t bytes) {
      return (bytes + kSwizzleAtomBytes - 1) / kSwizzleAtomBytes * kSwizzleAtomBytes;
    };
    return roundUp(blockM * headDim * kElementBytes) +
           2 * stages * roundUp(blockN * headDim * kElementBytes) +
           (kSwizzleAtomBytes - kBaseAlignment);
  }
  // SharedStorage<Cfg> of attnc_cuda.cuh: Q, then `stages` K and V tiles, each
  // row padded by one 16-byte chunk (8 elements of 2 bytes).
  constexpr int64_t kPadElems = 8;
  return kElementBytes * (headDim + kPadElems) * (blockM + 2 * stages * blockN);
}

int64_t cudaBackwardGroupSplits(int64_t group, bool band) {
  // At most kMaxHeadsPerBlock query heads per dK/dV block: the largest
  // divisor of the group up to it. MQA's one kv head would otherwise give as
  // few blocks as kv tiles, each walking every query head in turn. Table
  // schedules keep whole groups: their D 128 kernel sits at 252-255
  // registers, and the split's extra live values made it spill (sm_90).
  if (!band)
    return 1;
  constexpr int64_t kMaxHeadsPerBlock = 4;
  int64_t heads = std::min(group, kMaxHeadsPerBlock);
  while (group % heads)
    --heads;
  return group / heads;
}

int64_t cudaBackwardSharedBytes(int64_t blockM, int64_t blockN, int64_t headDim, bool dkdv,
                                bool atomicDq, llvm::StringRef mma) {
  // dkdvSharedBytes and dqSharedBytes of attnc_cuda_bwd.cuh (the printed
  // static_asserts check them against the structures).
  constexpr int64_t kElementBytes = 2, kPadElems = 8, kStages = 2, kFloatBytes = 4;
  constexpr int64_t kBaseAlignment = 16, kSwizzleAtomBytes = 1024;
  if (dkdv) {
    // wgmma: unpadded swizzled K, V, Q, dO tiles, the structures aligned to
    // a swizzle atom, plus the slack that aligns the dynamic base.
    const bool wgmma = mma == TileAttr::kMmaWgmma;
    const int64_t align = wgmma ? kSwizzleAtomBytes : kBaseAlignment;
    auto roundUp = [align](int64_t bytes) { return (bytes + align - 1) / align * align; };
    const int64_t pitch = (headDim + (wgmma ? 0 : kPadElems)) * kElementBytes;
    // dS^T is double-buffered where the dQ reduction lags a step (dqLagged).
    const int64_t dsBuffers = blockN >= 128 || headDim <= 64 ? 2 : 1;
    const int64_t tiles =
        roundUp(2 * blockN * pitch + kStages * (2 * blockM * pitch + 2 * blockM * kFloatBytes));
    // dS^T rows: swizzled (no pad) where the wgmma kernel multiplies dS K
    // by wgmma (head_dim 128), else padded.
    const int64_t dsPitch = blockM + (wgmma && headDim == 128 ? 0 : kPadElems);
    const int64_t ds = atomicDq ? dsBuffers * blockN * dsPitch * kElementBytes : 0;
    return roundUp(tiles + ds) + align - kBaseAlignment;
  }
  const int64_t pitch = (headDim + kPadElems) * kElementBytes;
  return 2 * blockM * pitch + kStages * 2 * blockN * pitch;
}

LogicalResult emitKernel(ModuleOp module, KernelTarget target, const std::string &banner,
                         llvm::raw_ostream &os) {
  SmallVector<FlashLoopOp> loops;
  module.walk([&](FlashLoopOp op) { loops.push_back(op); });
  if (loops.size() != 1)
    return module.emitError("kernel emission needs exactly one attn.flash_loop, found ")
           << loops.size();
  bool withBackward = false, backwardWgmma = false;
  module.walk([&](GradKvLoopOp op) {
    withBackward = true;
    backwardWgmma = op.getTile().isWgmma();
  });
  if (failed(CppPrinter(loops.front(), target, withBackward, backwardWgmma, os).print(banner)))
    return failure();
  // The backward pass, when attn-schedule-recompute planned one.
  for (auto func : module.getOps<func::FuncOp>())
    if (!func.getBody().getOps<GradKvLoopOp>().empty())
      if (failed(GradPrinter(func, loops.front().getTile(), target, os).print()))
        return failure();
  return success();
}


} // namespace attnc
