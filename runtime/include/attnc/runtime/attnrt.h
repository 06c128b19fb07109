/*===- attnrt.h - libattnrt, the attnc kernel runtime (C API) -------------===*
 *
 * Loads kernel packages (attnc --emit=package), compiles them for their
 * target (CPU: the system C++ compiler; CUDA: NVRTC for the current GPU),
 * caches the result on disk and runs it. No MLIR; no exception crosses this
 * API: every call returns a status, and attnrt_last_error() holds a readable
 * message (per thread) naming the argument or file at fault.
 *
 * libattnrt links neither libcuda nor libnvrtc: both are dlopen'ed at first
 * use, so it builds and runs CPU kernels on machines without CUDA; there,
 * creating a CUDA kernel fails with ATTNRT_ERROR_UNSUPPORTED ("no CUDA driver
 * (libcuda.so.1 not found)", "no GPU: cuInit failed: ...").
 *
 *===----------------------------------------------------------------------===*/

#ifndef ATTNC_RUNTIME_ATTNRT_H
#define ATTNC_RUNTIME_ATTNRT_H

#include "attnc/runtime/kernel_abi.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attnrt_status {
  ATTNRT_OK = 0,
  ATTNRT_ERROR_INVALID_ARGUMENT = 1, /* a tensor, length or option is wrong */
  ATTNRT_ERROR_PACKAGE = 2,          /* manifest missing, malformed, tampered or foreign */
  ATTNRT_ERROR_COMPILE = 3,          /* the kernel compiler failed (log in the message) */
  ATTNRT_ERROR_IO = 4,               /* a file could not be read or written */
  ATTNRT_ERROR_UNSUPPORTED = 5,      /* target or feature not available here */
  ATTNRT_ERROR_KERNEL = 6,           /* the kernel reported a failure */
} attnrt_status;

/* The message of the last failed call on this thread ("" if none). */
const char *attnrt_last_error(void);

/* A loaded, validated package. */
typedef struct attnrt_package attnrt_package;
/* A compiled kernel, ready to run. Thread-safe to run concurrently. */
typedef struct attnrt_kernel attnrt_kernel;

/* Loads DIR/manifest.json and the source it names; validates the format
 * version, the attnc version, the ABI version and the hashes. */
attnrt_status attnrt_package_load(const char *dir, attnrt_package **out);
/* The same from memory (the JIT path: libattnc hands both over). */
attnrt_status attnrt_package_from_memory(const char *manifest_json, const char *source,
                                         attnrt_package **out);
void attnrt_package_free(attnrt_package *package);
/* The package's canonical spec JSON (owned by the package). */
const char *attnrt_package_spec_json(const attnrt_package *package);
/* The package's target: "cpu" or "cuda" (a static string; "" for NULL). */
const char *attnrt_package_target(const attnrt_package *package);

typedef struct attnrt_compile_options {
  const char *cache_dir; /* NULL: ATTNC_CACHE_DIR, $XDG_CACHE_HOME/attnc, ~/.cache/attnc */
  const char *cxx;       /* NULL: $CXX, else "c++" */
  int32_t verbose;       /* print cache hits, misses and compiler commands to stderr */
} attnrt_compile_options;

/* Compiles (or loads from the disk cache) the package's kernel. `options`
 * may be NULL. A compile failure returns ATTNRT_ERROR_COMPILE with the
 * compiler's log, and caches nothing.
 *
 * CUDA packages: the kernel is loaded into the calling thread's current
 * context (cudaSetDevice, torch.cuda.set_device) if it has one, else into
 * device 0's primary context, and compiled by NVRTC for that device's
 * architecture (sm_XY from its compute capability), or for the package's
 * arch-specific launch.arch (sm_90a: a Hopper wgmma forward), which needs a
 * GPU of exactly that compute capability (9.0; any other:
 * ATTNRT_ERROR_UNSUPPORTED, nothing cached); the cache key adds the
 * architecture and the NVRTC version. On an NVRTC failure the message holds
 * the log and the path of a temporary file with the source and its line
 * numbers (ATTNC_DUMP_SOURCE=1 dumps every compiled source and names the file
 * on stderr). No driver or no GPU: ATTNRT_ERROR_UNSUPPORTED. A launch size
 * the device cannot run (launch.shared_bytes above its opt-in limit):
 * ATTNRT_ERROR_UNSUPPORTED. `options->cxx` is ignored. */
attnrt_status attnrt_kernel_create(const attnrt_package *package,
                                   const attnrt_compile_options *options, attnrt_kernel **out);
void attnrt_kernel_free(attnrt_kernel *kernel);

/* Where the kernel came from: 1 if it was loaded from the disk cache. */
int32_t attnrt_kernel_from_cache(const attnrt_kernel *kernel);

/* Runs the forward pass. Tensors are [B, N, H, D] (LSE [B, Hq, Nq], float32),
 * any strides with the last dimension contiguous. `global_tokens` is the
 * launch-time token list of a runtime global mask (NULL and 0 otherwise),
 * in host memory for both targets. `num_threads` <= 0 means all hardware
 * threads (CPU kernels; CUDA kernels ignore it). Validates every argument
 * before running.
 *
 * CUDA kernels: attnrt_forward_async on the default stream, then waits for
 * it; a failure on the GPU is ATTNRT_ERROR_KERNEL with the driver's error. */
attnrt_status attnrt_forward(attnrt_kernel *kernel, const attnc_tensor_view *q,
                             const attnc_tensor_view *k, const attnc_tensor_view *v,
                             attnc_tensor_view *o, attnc_tensor_view *lse,
                             const int64_t *global_tokens, int64_t num_global_tokens,
                             int32_t num_threads);

/* attnrt_forward, enqueued on `stream` (a CUstream or cudaStream_t of the
 * kernel's context; NULL: the default stream) without waiting: the tensors
 * must stay alive until the stream reaches the launch. CPU kernels run to
 * completion on the calling thread and ignore `stream`.
 *
 * CUDA kernels validate, besides attnrt_forward's checks: q, k, v, o and lse
 * data are device memory (cudaMalloc, cuMemAlloc, managed memory; a host
 * pointer is named: "q: host pointer given, expected device memory
 * (cudaMalloc)") and 16-byte aligned; the strides of q, k, v and o other than
 * the last (which is 1) are multiples of 8 elements (16 bytes, one vector
 * load); batch and heads.query fit the grid (at most 65535). Schedule tables
 * ("table" packages) are built on the host and copied to the device once
 * per (seq_len.q, seq_len.kv, token list), then kept with the kernel (the
 * last 8); that first launch waits for the copy. */
attnrt_status attnrt_forward_async(attnrt_kernel *kernel, const attnc_tensor_view *q,
                                   const attnc_tensor_view *k, const attnc_tensor_view *v,
                                   attnc_tensor_view *o, attnc_tensor_view *lse,
                                   const int64_t *global_tokens, int64_t num_global_tokens,
                                   int32_t num_threads, void *stream);

/* 1 if the package has a backward pass (its spec has "backward": true). */
int32_t attnrt_package_has_backward(const attnrt_package *package);
/* 1 if its dQ is deterministic (bitwise equal from run to run: "deterministic":
 * true or attnc --deterministic), 0 if CUDA kernels accumulate dQ with float32
 * atomics. CPU kernels are always deterministic. */
int32_t attnrt_package_deterministic(const attnrt_package *package);

/* Runs the backward pass: dq, dk, dv (like q, k, v) from the forward's
 * inputs, its saved o and lse (as attnrt_forward wrote them) and d_o (dL/dO,
 * like o). Same rules as attnrt_forward for shapes, strides, global tokens
 * and num_threads; the package must have a backward pass
 * (ATTNRT_ERROR_UNSUPPORTED otherwise). Fully masked query rows get dq = 0;
 * keys no query sees get dk = dv = 0. CUDA kernels take their float32
 * workspace (delta, and dq_accum for atomic dQ: 4 * B * Nq * Hq * (D + 1)
 * bytes) from the stream-ordered allocator (cuMemAllocAsync). */
attnrt_status attnrt_backward(attnrt_kernel *kernel, const attnc_tensor_view *q,
                              const attnc_tensor_view *k, const attnc_tensor_view *v,
                              const attnc_tensor_view *o, const attnc_tensor_view *lse,
                              const attnc_tensor_view *d_o, attnc_tensor_view *dq,
                              attnc_tensor_view *dk, attnc_tensor_view *dv,
                              const int64_t *global_tokens, int64_t num_global_tokens,
                              int32_t num_threads);

/* attnrt_backward enqueued on `stream` without waiting (see
 * attnrt_forward_async). */
attnrt_status attnrt_backward_async(attnrt_kernel *kernel, const attnc_tensor_view *q,
                                    const attnc_tensor_view *k, const attnc_tensor_view *v,
                                    const attnc_tensor_view *o, const attnc_tensor_view *lse,
                                    const attnc_tensor_view *d_o, attnc_tensor_view *dq,
                                    attnc_tensor_view *dk, attnc_tensor_view *dv,
                                    const int64_t *global_tokens, int64_t num_global_tokens,
                                    int32_t num_threads, void *stream);

/* What NVRTC and ptxas report for the entry point of a CUDA package built for
 * one architecture (attnrt_nvrtc_check). Local memory per thread: the stack
 * frame, and of it the bytes register spills store and load; generated
 * kernels are expected to have none. */
typedef struct attnrt_nvrtc_report {
  char arch[16];                    /* "sm_90" */
  int32_t nvrtc_major, nvrtc_minor; /* NVRTC's version */
  int32_t registers;                /* per thread */
  int64_t stack_frame_bytes;        /* local memory per thread */
  int64_t spill_store_bytes;        /* register spill stores to local memory */
  int64_t spill_load_bytes;         /* register spill loads from local memory */
  int64_t cubin_bytes;              /* size of the compiled cubin */
} attnrt_nvrtc_report;

/* Compiles a CUDA package's source with NVRTC for `arch` ("sm_80", "sm_90",
 * "sm_90a", ...; NULL: what attnrt_kernel_create would compile for on the
 * current GPU) with the options kernel creation uses plus ptxas's verbose report (--ptxas-options=-v), and reads the
 * entry's registers and local memory from that report. Needs libnvrtc, but
 * no GPU and no driver (unless `arch` is NULL). Never caches; each check's
 * code is made unique so that no JIT cache answers in ptxas's place. This is
 * how CI checks that every CUDA kernel compiles for sm_80 and sm_90 without
 * spills. Errors: ATTNRT_ERROR_COMPILE as attnrt_kernel_create (log, dumped
 * source); ATTNRT_ERROR_PACKAGE if the cubin has no entry point;
 * ATTNRT_ERROR_INVALID_ARGUMENT for a CPU package, a malformed arch, or an
 * arch the package's launch.arch excludes ("arch: the package's kernel needs
 * sm_90a (launch.arch), got sm_80": an sm_90a package compiles only for
 * sm_90a; portable packages for any arch); ATTNRT_ERROR_UNSUPPORTED without
 * NVRTC. */
attnrt_status attnrt_nvrtc_check(const attnrt_package *package, const char *arch,
                                 attnrt_nvrtc_report *out);

/* What attnrt_nvrtc_compile keeps of a build. */
typedef enum attnrt_nvrtc_artifact {
  ATTNRT_NVRTC_CUBIN = 0, /* the cubin (an ELF image for cuModuleLoadData) */
  ATTNRT_NVRTC_PTX = 1,   /* the PTX text ptxas compiled into that cubin */
} attnrt_nvrtc_artifact;

/* One entry point (extern "C" __global__ function) of a build, as ptxas
 * reports it. */
typedef struct attnrt_nvrtc_entry {
  char *name;                /* "attnc_forward_kernel" (owned by the output) */
  int32_t registers;         /* per thread */
  int32_t barriers;          /* named barriers used */
  int64_t stack_frame_bytes; /* local memory per thread */
  int64_t spill_store_bytes; /* register spill stores to local memory */
  int64_t spill_load_bytes;  /* register spill loads from local memory */
  int64_t shared_bytes;      /* static shared memory (the dynamic part is launch.shared_bytes) */
  int64_t code_bytes;        /* its machine code in the cubin (ELF section .text.NAME); -1 unknown */
} attnrt_nvrtc_entry;

/* A CUDA package built for one architecture by attnrt_nvrtc_compile.
 * Release it with attnrt_nvrtc_output_release. */
typedef struct attnrt_nvrtc_output {
  char arch[16];                    /* "sm_90a" */
  int32_t nvrtc_major, nvrtc_minor; /* NVRTC's version */
  char *data;                       /* the artifact: cubin bytes, or PTX text; NUL-terminated */
  size_t size;                      /* its size in bytes, without that NUL */
  int64_t cubin_bytes;              /* size of the cubin (also when data is PTX) */
  int32_t num_entries;              /* 0 unless a report was asked for */
  attnrt_nvrtc_entry *entries;      /* every entry point, in ptxas's order */
} attnrt_nvrtc_output;

/* Compiles a CUDA package's source with NVRTC for `arch` ("sm_80", "sm_90",
 * "sm_90a", ...; required) with the options kernel creation uses, and hands
 * over the cubin or the PTX (attnc --emit=cubin|ptx). With `report` nonzero,
 * the same source is compiled a second time with ptxas's verbose report (and
 * a fresh definition appended, so that no JIT cache answers in ptxas's place)
 * and every entry point's registers, local and shared memory and code size
 * are listed; the artifact stays that of the clean source, byte for byte.
 * Needs libnvrtc, but no GPU and no driver; never caches. On failure `out` is
 * zeroed. Errors: ATTNRT_ERROR_COMPILE as attnrt_kernel_create (log, dumped
 * source); ATTNRT_ERROR_PACKAGE if the report lacks the package's entry
 * point; ATTNRT_ERROR_INVALID_ARGUMENT for a CPU package, a missing or
 * malformed arch, an arch the package's launch.arch excludes (as
 * attnrt_nvrtc_check) or an unknown artifact; ATTNRT_ERROR_UNSUPPORTED
 * without NVRTC. */
attnrt_status attnrt_nvrtc_compile(const attnrt_package *package, const char *arch,
                                   attnrt_nvrtc_artifact artifact, int32_t report,
                                   attnrt_nvrtc_output *out);
/* Frees what attnrt_nvrtc_compile allocated in `output` and zeroes it (NULL
 * and zeroed outputs are fine). */
void attnrt_nvrtc_output_release(attnrt_nvrtc_output *output);

#ifdef __cplusplus
}
#endif

#endif /* ATTNC_RUNTIME_ATTNRT_H */
