//===- Validate.cpp - Forward arguments, checked before a launch ----------===//

#include "Validate.h"

#include "Error.h"

#include <cstdio>
#include <string>
#include <vector>

namespace attnc::runtime {

namespace {

/// One expected dimension: its name in messages and its value if the
/// package fixes it (heads, head_dim, lengths the spec fixes), else -1.
struct Dim {
  std::string label;
  int64_t value;
};

/// What one tensor argument must look like.
struct Expected {
  const char *name;
  int32_t dtype;
  std::vector<Dim> dims;
};

[[noreturn]] void invalid(const std::string &argument, const std::string &message) {
  fail(ATTNRT_ERROR_INVALID_ARGUMENT, argument + ": " + message);
}

/// "[2, 100, 12]": the view's shape as given (its rank clamped to 0..4).
std::string shapeText(const attnc_tensor_view &t) {
  std::string text = "[";
  for (int32_t d = 0; d < t.rank && d < 4; ++d)
    text += (d ? ", " : "") + std::to_string(t.shape[d]);
  return text + "]";
}

/// "[batch, seq_len.q, 12, 64]": the expected shape, fixed lengths as numbers.
std::string expectedText(const Expected &e) {
  std::string text = "[";
  for (size_t d = 0; d < e.dims.size(); ++d)
    text += (d ? ", " : "") +
            (e.dims[d].value >= 0 ? std::to_string(e.dims[d].value) : e.dims[d].label);
  return text + "]";
}

/// Requires dimension d of `t` to be `value`; `why` says where it comes from.
void expectDim(const Expected &e, const attnc_tensor_view &t, int d, int64_t value,
               const std::string &why) {
  if (t.shape[d] != value)
    invalid(e.name, "dimension " + std::to_string(d) + " (" + e.dims[static_cast<size_t>(d)].label +
                        ") must be " + std::to_string(value) + why + ", got " +
                        std::to_string(t.shape[d]) + " in " + shapeText(t) + "; expected " +
                        expectedText(e));
}

/// The checks of one tensor alone: pointers, rank, dtype, positive
/// dimensions, the dimensions the package fixes, a contiguous last dimension.
const attnc_tensor_view &checkTensor(const Expected &e, const attnc_tensor_view *view) {
  if (!view)
    invalid(e.name, "is null");
  const attnc_tensor_view &t = *view;
  if (!t.data)
    invalid(e.name, "data is null");
  const int32_t rank = static_cast<int32_t>(e.dims.size());
  if (t.rank != rank)
    invalid(e.name,
            "expected " + std::to_string(rank) + " dimensions " + expectedText(e) + ", got " +
                (t.rank >= 0 && t.rank <= 4 ? shapeText(t) : "rank " + std::to_string(t.rank)));
  if (t.dtype != e.dtype)
    invalid(e.name, "expected dtype " + dtypeName(e.dtype) + ", got " + dtypeName(t.dtype));
  for (int d = 0; d < rank; ++d) {
    if (t.shape[d] < 1)
      invalid(e.name, "dimension " + std::to_string(d) + " (" +
                          e.dims[static_cast<size_t>(d)].label + ") must be >= 1, got " +
                          std::to_string(t.shape[d]) + " in " + shapeText(t));
    if (e.dims[static_cast<size_t>(d)].value >= 0)
      expectDim(e, t, d, e.dims[static_cast<size_t>(d)].value,
                e.dims[static_cast<size_t>(d)].label.rfind("seq_len", 0) == 0
                    ? " (fixed by the spec)"
                    : "");
  }
  if (t.strides[rank - 1] != 1)
    invalid(e.name, "the last dimension must be contiguous (stride 1), got stride " +
                        std::to_string(t.strides[rank - 1]));
  return t;
}

/// Bytes CUDA kernels move per vector load and store (the alignment they need).
constexpr int64_t kCudaVectorBytes = 16;

/// The dimension names of a [B, N, H, D] tensor, for messages.
const char *const kQueryDims[] = {"batch", "seq_len.q", "heads.query", "head_dim"};
const char *const kKvDims[] = {"batch", "seq_len.kv", "heads.kv", "head_dim"};

/// One tensor's CUDA checks; `dims` names its dimensions when its strides
/// must be whole 16-byte vectors (q, k, v, o), else null (lse).
void checkCudaTensor(const char *name, const attnc_tensor_view &t, const char *const *dims,
                     const std::function<MemoryKind(const void *)> &memoryKind) {
  switch (memoryKind(t.data)) {
  case MemoryKind::Device:
    break;
  case MemoryKind::PageableHost:
    invalid(name, "host pointer given, expected device memory (cudaMalloc)");
  case MemoryKind::PinnedHost:
    invalid(name, "host pointer given (page-locked host memory), expected device memory "
                  "(cudaMalloc)");
  }
  const auto address = reinterpret_cast<uintptr_t>(t.data);
  if (address % kCudaVectorBytes != 0) {
    char text[32];
    std::snprintf(text, sizeof text, "%#llx", static_cast<unsigned long long>(address));
    invalid(name, "data must be 16-byte aligned (CUDA kernels load it in 16-byte vectors), got " +
                      std::string(text));
  }
  if (!dims)
    return;
  const int64_t elementBytes = t.dtype == ATTNC_DTYPE_FP32 ? 4 : 2;
  const int64_t vectorElements = kCudaVectorBytes / elementBytes;
  for (int d = 0; d < t.rank - 1; ++d)
    if (t.strides[d] % vectorElements != 0)
      invalid(name, "stride " + std::to_string(t.strides[d]) + " of dimension " +
                        std::to_string(d) + " (" + dims[d] + ") must be a multiple of " +
                        std::to_string(vectorElements) + " elements (" +
                        std::to_string(kCudaVectorBytes) +
                        " bytes): CUDA kernels load rows of head_dim in 16-byte vectors, so "
                        "every stride but the last (1) must be a multiple of 16 bytes");
}

} // namespace

void validateCudaTensors(const attnc_tensor_view &q, const attnc_tensor_view &k,
                         const attnc_tensor_view &v, const attnc_tensor_view &o,
                         const attnc_tensor_view &lse,
                         const std::function<MemoryKind(const void *)> &memoryKind) {
  checkCudaTensor("q", q, kQueryDims, memoryKind);
  checkCudaTensor("k", k, kKvDims, memoryKind);
  checkCudaTensor("v", v, kKvDims, memoryKind);
  checkCudaTensor("o", o, kQueryDims, memoryKind);
  checkCudaTensor("lse", lse, nullptr, memoryKind);
}

LaunchShape validateForward(const PackageData &p, const attnc_tensor_view *qView,
                            const attnc_tensor_view *kView, const attnc_tensor_view *vView,
                            const attnc_tensor_view *oView, const attnc_tensor_view *lseView,
                            const int64_t *globalTokens, int64_t numGlobalTokens) {
  const int64_t nq = p.seqLenQ.value_or(-1), nk = p.seqLenKV.value_or(-1);
  const Dim batch{"batch", -1}, seqQ{"seq_len.q", nq}, seqKV{"seq_len.kv", nk};
  const Dim hq{"heads.query", p.queryHeads}, hkv{"heads.kv", p.kvHeads};
  const Dim d{"head_dim", p.headDim};
  const Expected qSpec{"q", p.dtype, {batch, seqQ, hq, d}};
  const Expected kSpec{"k", p.dtype, {batch, seqKV, hkv, d}};
  const Expected vSpec{"v", p.dtype, {batch, seqKV, hkv, d}};
  const Expected oSpec{"o", p.dtype, {batch, seqQ, hq, d}};
  const Expected lseSpec{"lse", ATTNC_DTYPE_FP32, {batch, hq, seqQ}};

  const attnc_tensor_view &q = checkTensor(qSpec, qView);
  const attnc_tensor_view &k = checkTensor(kSpec, kView);
  const attnc_tensor_view &v = checkTensor(vSpec, vView);
  const attnc_tensor_view &o = checkTensor(oSpec, oView);
  const attnc_tensor_view &lse = checkTensor(lseSpec, lseView);

  LaunchShape shape{q.shape[0], q.shape[1], k.shape[1]};
  const std::string qBatch = " (q's batch)", qLength = " (q's seq_len.q)";
  expectDim(kSpec, k, 0, shape.batch, qBatch);
  expectDim(vSpec, v, 0, shape.batch, qBatch);
  expectDim(vSpec, v, 1, shape.nk, " (k's seq_len.kv)");
  expectDim(oSpec, o, 0, shape.batch, qBatch);
  expectDim(oSpec, o, 1, shape.nq, qLength);
  expectDim(lseSpec, lse, 0, shape.batch, qBatch);
  expectDim(lseSpec, lse, 2, shape.nq, qLength);

  if (numGlobalTokens < 0)
    invalid("num_global_tokens", "must be >= 0, got " + std::to_string(numGlobalTokens));
  if (numGlobalTokens == 0)
    return shape;
  if (!globalTokens)
    invalid("global_tokens",
            "is null, but num_global_tokens is " + std::to_string(numGlobalTokens));
  if (p.runtimeGlobalTokens == 0)
    invalid("global_tokens", std::to_string(numGlobalTokens) +
                                 " tokens given, but the spec's mask has no runtime global "
                                 "list (global.runtime); pass NULL and 0");
  if (numGlobalTokens > p.runtimeGlobalTokens)
    invalid("global_tokens", "at most " + std::to_string(p.runtimeGlobalTokens) +
                                 " tokens (the spec's global.runtime.max), got " +
                                 std::to_string(numGlobalTokens));
  for (int64_t i = 0; i < numGlobalTokens; ++i)
    if (globalTokens[i] < 0 || globalTokens[i] >= shape.nk)
      invalid("global_tokens[" + std::to_string(i) + "]",
              "token " + std::to_string(globalTokens[i]) + " is out of range [0, " +
                  std::to_string(shape.nk) + ") (seq_len.kv)");
  return shape;
}

LaunchShape validateBackward(const PackageData &p, const attnc_tensor_view *q,
                             const attnc_tensor_view *k, const attnc_tensor_view *v,
                             const attnc_tensor_view *o, const attnc_tensor_view *lse,
                             const attnc_tensor_view *dO, const attnc_tensor_view *dq,
                             const attnc_tensor_view *dk, const attnc_tensor_view *dv,
                             const int64_t *globalTokens, int64_t numGlobalTokens) {
  LaunchShape shape = validateForward(p, q, k, v, o, lse, globalTokens, numGlobalTokens);
  const Dim batch{"batch", shape.batch}, seqQ{"seq_len.q", shape.nq},
      seqKV{"seq_len.kv", shape.nk};
  const Dim hq{"heads.query", p.queryHeads}, hkv{"heads.kv", p.kvHeads};
  const Dim d{"head_dim", p.headDim};
  // Every gradient tensor has the shape of its forward counterpart, whose
  // lengths and batch are known by now.
  checkTensor({"d_o", p.dtype, {batch, seqQ, hq, d}}, dO);
  checkTensor({"dq", p.dtype, {batch, seqQ, hq, d}}, dq);
  checkTensor({"dk", p.dtype, {batch, seqKV, hkv, d}}, dk);
  checkTensor({"dv", p.dtype, {batch, seqKV, hkv, d}}, dv);
  return shape;
}

void validateCudaGradients(const attnc_tensor_view &dO, const attnc_tensor_view &dq,
                           const attnc_tensor_view &dk, const attnc_tensor_view &dv,
                           const std::function<MemoryKind(const void *)> &memoryKind) {
  checkCudaTensor("d_o", dO, kQueryDims, memoryKind);
  checkCudaTensor("dq", dq, kQueryDims, memoryKind);
  checkCudaTensor("dk", dk, kKvDims, memoryKind);
  checkCudaTensor("dv", dv, kKvDims, memoryKind);
}

} // namespace attnc::runtime
