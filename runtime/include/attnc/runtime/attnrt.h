/*===- attnrt.h - libattnrt, the attnc kernel runtime (C API) -------------===*
 *
 * Loads kernel packages (attnc --emit=package), compiles them for their
 * target (CPU: the system C++ compiler; CUDA: NVRTC, from the CUDA issue on),
 * caches the result on disk and runs it. No MLIR; no exception crosses this
 * API: every call returns a status, and attnrt_last_error() holds a readable
 * message (per thread) naming the argument or file at fault.
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

typedef struct attnrt_compile_options {
  const char *cache_dir; /* NULL: ATTNC_CACHE_DIR, $XDG_CACHE_HOME/attnc, ~/.cache/attnc */
  const char *cxx;       /* NULL: $CXX, else "c++" */
  int32_t verbose;       /* print cache hits, misses and compiler commands to stderr */
} attnrt_compile_options;

/* Compiles (or loads from the disk cache) the package's kernel. `options`
 * may be NULL. A compile failure returns ATTNRT_ERROR_COMPILE with the
 * compiler's log, and caches nothing. */
attnrt_status attnrt_kernel_create(const attnrt_package *package,
                                   const attnrt_compile_options *options, attnrt_kernel **out);
void attnrt_kernel_free(attnrt_kernel *kernel);

/* Where the kernel came from: 1 if it was loaded from the disk cache. */
int32_t attnrt_kernel_from_cache(const attnrt_kernel *kernel);

/* Runs the forward pass. Tensors are [B, N, H, D] (LSE [B, Hq, Nq], float32),
 * any strides with the last dimension contiguous. `global_tokens` is the
 * launch-time token list of a runtime global mask (NULL and 0 otherwise).
 * `num_threads` <= 0 means all hardware threads. Validates every argument
 * before running. */
attnrt_status attnrt_forward(attnrt_kernel *kernel, const attnc_tensor_view *q,
                             const attnc_tensor_view *k, const attnc_tensor_view *v,
                             attnc_tensor_view *o, attnc_tensor_view *lse,
                             const int64_t *global_tokens, int64_t num_global_tokens,
                             int32_t num_threads);

#ifdef __cplusplus
}
#endif

#endif /* ATTNC_RUNTIME_ATTNRT_H */
