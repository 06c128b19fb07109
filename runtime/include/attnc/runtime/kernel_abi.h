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

#define ATTNC_KERNEL_ABI_VERSION 2

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
 * no bits (bit_offsets[e] == -1). Empty tiles are not listed.
 *
 * row_order is the launch order, heaviest first: a permutation of the row
 * tiles sorted by descending entry count (row_offsets[r + 1] -
 * row_offsets[r]), ties by ascending index. Grid x index x runs row tile
 * row_order[x], so that the longest rows (global rows, BigBird's global
 * block rows) start first instead of forming a tail. */
typedef struct attnc_schedule_table {
  const int64_t *row_offsets; /* [row_tiles + 1] */
  const int64_t *col_tiles;   /* [entries] */
  const uint8_t *full;        /* [entries]: 1 FULL, 0 PARTIAL */
  const int64_t *bit_offsets; /* [entries]: word offset into bits, -1 for FULL */
  const uint64_t *bits;       /* partial tiles' bitmasks */
  int64_t words_per_row;      /* ceil(BLOCK_N / 64) */
  const int64_t *row_order;   /* [row_tiles]: the row tile each grid x index
                                 runs, heaviest first */
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

/* Everything a backward launch needs (packages of specs with "backward":
 * true). The forward saved O and LSE; the backward recomputes P tile by tile
 * from LSE (ARCHITECTURE.md):
 *   delta = rowsum(dO * O)                     (float32, per query row)
 *   P     = exp(scale * Q K^T - LSE)           (0 where the mask forbids)
 *   dV    = P^T dO
 *   dS    = P * (dO V^T - delta)
 *   dQ    = scale * dS K,   dK = scale * dS^T Q
 * GQA: dK and dV of kv head g sum over the query heads of group g. Rows of
 * a fully masked query (LSE = -inf) contribute nothing: their dQ is 0.
 *
 * `schedule` is the forward's row table (query tile -> kv tiles), read by the
 * q-stationary dQ pass; `columns` its transpose, read by the kv-stationary
 * dK/dV pass: for kv tile c, the query tiles col_tiles[row_offsets[c] ..
 * row_offsets[c + 1]), ascending, with full[] and bit_offsets[] per entry;
 * its bits are the forward table's (the same array: BLOCK_M query rows of
 * words_per_row words, bit c of row r = query row qtile * BLOCK_M + r may
 * attend to key ktile * BLOCK_N + c); its row_order lists the kv tiles by
 * descending column length (ties by ascending index), the launch order of
 * a kv-stationary kernel. Banded masks need neither table. */
typedef struct attnc_backward_args {
  attnc_tensor_view q, k, v;   /* the forward's inputs */
  attnc_tensor_view o;         /* the forward's output */
  attnc_tensor_view lse;       /* the forward's LSE, float32 [B, Hq, Nq] */
  attnc_tensor_view d_o;       /* dL/dO, like o */
  attnc_tensor_view dq;        /* output dL/dQ, like q */
  attnc_tensor_view dk, dv;    /* outputs dL/dK, dL/dV, like k and v */
  attnc_tensor_view delta;     /* workspace, float32 [B, Hq, Nq] contiguous */
  attnc_tensor_view dq_accum;  /* workspace, float32 [B, Nq, Hq, D] contiguous:
                                  CUDA with atomic dQ only (else data NULL) */
  attnc_tensor_view dk_partial, dv_partial; /* workspace, float32 [S * B, Nk, Hkv, D]
                                  contiguous: CUDA dK/dV kernels whose GQA group is
                                  split over S blocks (manifest group_splits > 1)
                                  write split s of batch b at row s * B + b (scaled
                                  like dK, dV); else data NULL */
  int64_t batch, nq, nk;
  attnc_schedule_table schedule; /* forward (row) table */
  attnc_schedule_table columns;  /* transposed (column) table */
  int32_t num_threads; /* CPU: worker threads (>= 1); CUDA: threads per block */
} attnc_backward_args;

/* The backward entry point of CPU kernels with a backward pass: all of it
 * (delta, dK/dV, dQ), deterministic; returns 0 on success. */
typedef int (*attnc_backward_fn)(const attnc_backward_args *args);
#define ATTNC_BACKWARD_SYMBOL "attnc_backward"

/* The backward entry points of CUDA kernels, each
 *   extern "C" __global__ void NAME(const __grid_constant__ attnc_backward_args args);
 * launched in this order on one stream:
 *   attnc_backward_preprocess_kernel  grid (ceil(nq / BLOCK_M), Hq, B): delta;
 *                                     with atomic dQ also zeroes dq_accum
 *   attnc_backward_dkdv_kernel        grid (ceil(nk / BLOCK_N), Hkv, B): dK, dV
 *                                     (and, atomic dQ, dq_accum += scale dS K)
 *                                     (grid y is Hkv * S when the manifest splits
 *                                     each group's query heads over S blocks)
 *   attnc_backward_dkdv_convert_kernel grid (ceil(nk / BLOCK_N), Hkv, B), S > 1 only:
 *                                     dK, dV = the sum of the S partials, rounded
 *   attnc_backward_dq_kernel          grid (ceil(nq / BLOCK_M), Hq, B):
 *                                     deterministic dQ: dQ, one block per tile
 *   or attnc_backward_dq_convert_kernel grid (ceil(nq / BLOCK_M), Hq, B):
 *                                     atomic dQ: dQ = dq_accum, rounded
 * with the threads and dynamic shared memory the manifest's backward section
 * gives for each. */
#define ATTNC_CUDA_BACKWARD_PREPROCESS_SYMBOL "attnc_backward_preprocess_kernel"
#define ATTNC_CUDA_BACKWARD_DKDV_SYMBOL "attnc_backward_dkdv_kernel"
#define ATTNC_CUDA_BACKWARD_DQ_SYMBOL "attnc_backward_dq_kernel"
#define ATTNC_CUDA_BACKWARD_DQ_CONVERT_SYMBOL "attnc_backward_dq_convert_kernel"
#define ATTNC_CUDA_BACKWARD_DKDV_CONVERT_SYMBOL "attnc_backward_dkdv_convert_kernel"

#ifdef __cplusplus
}
#endif

#endif /* ATTNC_RUNTIME_KERNEL_ABI_H */
