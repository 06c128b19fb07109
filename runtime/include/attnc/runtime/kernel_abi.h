/*===- kernel_abi.h - The ABI between libattnrt and generated kernels -----===*
 *
 * Plain C, shared by the runtime and every generated kernel: the runtime
 * writes it next to a CPU kernel's source and hands it to NVRTC as an
 * in-memory header for CUDA kernels (with a "stdint.h" that includes
 * <cuda/std/cstdint>, NVRTC having none). A kernel package's manifest records
 * ATTNC_KERNEL_ABI_VERSION; the runtime refuses others.
 *
 * Semantics (ARCHITECTURE.md): Q [B, Nq, Hq, D], K and V [B, Nk, Hkv, D], O
 * like Q, LSE [B, Hq, Nq] float32 (natural log). Query head h reads kv head
 * h / (Hq / Hkv). Query row i sits at absolute position p = i + Nk - Nq.
 *
 *===----------------------------------------------------------------------===*/

#ifndef ATTNC_RUNTIME_KERNEL_ABI_H
#define ATTNC_RUNTIME_KERNEL_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATTNC_KERNEL_ABI_VERSION 1

/* Element types of tensors. */
typedef enum attnc_dtype {
  ATTNC_DTYPE_BF16 = 1,
  ATTNC_DTYPE_FP16 = 2,
  ATTNC_DTYPE_FP32 = 3,
} attnc_dtype;

/* A strided view: `rank` dimensions, strides in elements (not bytes). */
typedef struct attnc_tensor_view {
  void *data;
  int64_t shape[4];
  int64_t strides[4];
  int32_t rank;
  int32_t dtype; /* attnc_dtype */
} attnc_tensor_view;

/* The block schedule of a mask without a closed form, built at launch by the
 * runtime (mask::BlockSchedule): for query tile r, the kv tiles
 * col_tiles[row_offsets[r] .. row_offsets[r + 1]), ascending. For a PARTIAL
 * tile e (full[e] == 0), bits[bit_offsets[e] ..] holds BLOCK_M rows of
 * words_per_row 64-bit words: bit c of row r is set iff query row
 * qtile * BLOCK_M + r may attend to key ktile * BLOCK_N + c. FULL tiles have
 * no bits (bit_offsets[e] == -1). Empty tiles are not listed. */
typedef struct attnc_schedule_table {
  const int64_t *row_offsets; /* [row_tiles + 1] */
  const int64_t *col_tiles;   /* [entries] */
  const uint8_t *full;        /* [entries]: 1 FULL, 0 PARTIAL */
  const int64_t *bit_offsets; /* [entries]: word offset into bits, -1 for FULL */
  const uint64_t *bits;       /* partial tiles' bitmasks */
  int64_t words_per_row;      /* ceil(BLOCK_N / 64) */
} attnc_schedule_table;

/* Everything a forward kernel launch needs. For CUDA kernels every pointer
 * (tensor data, schedule table) is device memory. */
typedef struct attnc_forward_args {
  attnc_tensor_view q, k, v; /* inputs, dtype of the spec */
  attnc_tensor_view o;       /* output, dtype of the spec */
  attnc_tensor_view lse;     /* output, float32 [B, Hq, Nq] */
  int64_t batch, nq, nk;
  /* Banded masks need nothing more; other masks read the table. */
  attnc_schedule_table schedule;
  int32_t num_threads; /* CPU: worker threads (>= 1); CUDA: threads per block */
} attnc_forward_args;

/* The entry point every CPU kernel exports: returns 0 on success. */
typedef int (*attnc_forward_fn)(const attnc_forward_args *args);
#define ATTNC_FORWARD_SYMBOL "attnc_forward"

/* The entry point every CUDA kernel defines,
 *   extern "C" __global__ void
 *   attnc_forward_kernel(const __grid_constant__ attnc_forward_args args);
 * launched on a grid of (ceil(nq / BLOCK_M), Hq, batch) blocks (x: query
 * tile, y: query head, z: batch) of the manifest's launch.threads_per_block
 * threads with launch.shared_bytes of dynamic shared memory. */
#define ATTNC_CUDA_FORWARD_SYMBOL "attnc_forward_kernel"

#ifdef __cplusplus
}
#endif

#endif /* ATTNC_RUNTIME_KERNEL_ABI_H */
