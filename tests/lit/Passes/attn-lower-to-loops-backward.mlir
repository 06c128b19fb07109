// RUN: attnc-opt %s -split-input-file --attn-lower-to-loops | FileCheck %s
// RUN: attnc-opt %s -split-input-file --attn-lower-to-loops --attn-prepare-for-emission | FileCheck %s --check-prefix=PREPARED
// RUN: attnc-opt %s -split-input-file --attn-lower-to-loops | attnc-opt -split-input-file | FileCheck %s

// The FlashAttention-2 backward plan, atomic dQ: delta, the kv-stationary
// pass over the transposed schedule, then dQ converted from float32.
// CHECK-LABEL: func.func @causal_gqa_backward
// CHECK-SAME:      (%[[Q:.+]]: {{.*}}, %[[K:.+]]: {{.*}}, %[[V:.+]]: {{.*}}, %[[O:.+]]: {{.*}}, %[[LSE:.+]]: {{.*}}, %[[DO:.+]]: {{.*}})
// CHECK-NOT:     attn.attention_grad
// delta = rowsum(dO * O)
// CHECK:         %[[DELTA:.+]] = attn.grad_preprocess %[[O]], %[[DO]] block_m(64) {{.*}} -> tensor<?x8x?xf32>
// CHECK:         %[[DK:.+]], %[[DV:.+]], %[[ACCUM:.+]] = attn.grad_kv_loop %[[Q]], %[[K]], %[[V]], %[[LSE]], %[[DO]], %[[DELTA]] mask(#attn.causal) heads(8, 2) scale(1.250000e-01) atomic_dq
// CHECK-SAME:      -> tensor<?x?x2x64xbf16>, tensor<?x?x2x64xbf16>, tensor<?x?x8x64xf32>
// CHECK:         ^bb0(%[[B:.+]]: index, %[[KVH:.+]]: index, %[[KT:.+]]: index):
// K and V of the kv tile, loaded once.
// CHECK:           %[[KTILE:.+]] = attn.load_tile %[[K]][%[[B]], %[[KT]], %[[KVH]]] : {{.*}} -> tensor<32x64xf32>
// CHECK:           %[[VTILE:.+]] = attn.load_tile %[[V]][%[[B]], %[[KT]], %[[KVH]]] : {{.*}} -> tensor<32x64xf32>
// CHECK:           %[[DK0:.+]] = attn.fill 0.000000e+00 : tensor<32x64xf32>
// CHECK:           %[[DV0:.+]] = attn.fill 0.000000e+00 : tensor<32x64xf32>
// The query heads of the group (4) and the query tiles that see kv tile kt.
// CHECK:           %[[DKF:.+]], %[[DVF:.+]] = attn.q_loop %[[KT]], %[[KVH]] group(4) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>) iter_args(%[[DK0]], %[[DV0]])
// CHECK:           ^bb0(%[[H:.+]]: index, %[[QT:.+]]: index, %[[PARTIAL:.+]]: i1, %[[DKI:.+]]: tensor<32x64xf32>, %[[DVI:.+]]: tensor<32x64xf32>):
// Q unscaled (dK needs it): recompute_p applies scale * log2(e).
// CHECK:             %[[QTILE:.+]] = attn.load_tile %[[Q]][%[[B]], %[[QT]], %[[H]]] : {{.*}} -> tensor<64x64xf32>
// CHECK:             %[[DOTILE:.+]] = attn.load_tile %[[DO]][%[[B]], %[[QT]], %[[H]]] : {{.*}} -> tensor<64x64xf32>
// CHECK:             %[[LSEROW:.+]] = attn.load_row %[[LSE]][%[[B]], %[[H]], %[[QT]]] : tensor<?x8x?xf32> -> tensor<64xf32>
// CHECK:             %[[DROW:.+]] = attn.load_row %[[DELTA]][%[[B]], %[[H]], %[[QT]]] : tensor<?x8x?xf32> -> tensor<64xf32>
// S^T = K Q^T
// CHECK:             %[[ST:.+]] = attn.qk %[[KTILE]], %[[QTILE]] : tensor<32x64xf32>, tensor<64x64xf32> -> tensor<32x64xf32>
// CHECK:             %[[STM:.+]] = attn.mask_tile %[[ST]] tile(%[[QT]], %[[KT]]) if(%[[PARTIAL]]) transposed
// CHECK:             %[[PT:.+]] = attn.recompute_p %[[STM]], %[[LSEROW]] scale(0.18033688011112042) transposed
// dV += P^T dO
// CHECK:             %[[DVN:.+]] = attn.matmul_acc %[[DVI]], %[[PT]], %[[DOTILE]] : tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32>
// dP^T = V dO^T, dS^T = P^T (dP^T - delta)
// CHECK:             %[[DPT:.+]] = attn.qk %[[VTILE]], %[[DOTILE]]
// CHECK:             %[[DST:.+]] = attn.ds %[[PT]], %[[DPT]], %[[DROW]] transposed
// dK += dS^T Q
// CHECK:             %[[DKN:.+]] = attn.matmul_acc %[[DKI]], %[[DST]], %[[QTILE]]
// dQ += scale dS K, float32 atomics
// CHECK:             attn.dq_atomic_add %[[DST]], %[[KTILE]] to[%[[B]], %[[QT]], %[[H]]] scale(1.250000e-01)
// CHECK:             attn.yield %[[DKN]], %[[DVN]]
// CHECK:           attn.grad_yield %[[DKF]], %[[DVF]] : tensor<32x64xf32>, tensor<32x64xf32>
// CHECK:         %[[DQ:.+]] = attn.dq_convert %[[ACCUM]] block_m(64) : tensor<?x?x8x64xf32> -> tensor<?x?x8x64xbf16>
// CHECK:         return %[[DQ]], %[[DK]], %[[DV]]
// PREPARED:        attn.mask_tile {{.*}} transposed {form = "band"}
func.func @causal_gqa_backward(%q: tensor<?x?x8x64xbf16>, %k: tensor<?x?x2x64xbf16>, %v: tensor<?x?x2x64xbf16>, %o: tensor<?x?x8x64xbf16>, %lse: tensor<?x8x?xf32>, %do: tensor<?x?x8x64xbf16>) -> (tensor<?x?x8x64xbf16>, tensor<?x?x2x64xbf16>, tensor<?x?x2x64xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %lse, %do mask(#attn.causal) heads(8, 2) scale(0.125)
      tile(<block_m = 64, block_n = 32, warps = 4>) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
      : tensor<?x?x8x64xbf16>, tensor<?x?x2x64xbf16>, tensor<?x?x2x64xbf16>, tensor<?x?x8x64xbf16>, tensor<?x8x?xf32>, tensor<?x?x8x64xbf16>
      -> tensor<?x?x8x64xbf16>, tensor<?x?x2x64xbf16>, tensor<?x?x2x64xbf16>
  return %dq, %dk, %dv : tensor<?x?x8x64xbf16>, tensor<?x?x2x64xbf16>, tensor<?x?x2x64xbf16>
}

// -----

// Deterministic dQ: no atomics; the q-stationary pass over the forward
// schedule (a table here: the masks use bits).
// CHECK-LABEL: func.func @table_det_backward
// CHECK:         %[[DELTA:.+]] = attn.grad_preprocess
// CHECK:         attn.grad_kv_loop {{.*}} scale(1.250000e-01) tile
// CHECK-NOT:       attn.dq_atomic_add
// CHECK:         %[[DQ:.+]] = attn.grad_q_loop %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %[[DELTA]]
// CHECK:         ^bb0(%[[B:.+]]: index, %[[H:.+]]: index, %[[QT:.+]]: index):
// CHECK:           %[[GROUP:.+]] = arith.constant 1 : index
// CHECK:           %[[KVH:.+]] = arith.divui %[[H]], %[[GROUP]]
// CHECK:           %[[DQ0:.+]] = attn.fill 0.000000e+00 : tensor<64x64xf32>
// CHECK:           %[[DQF:.+]] = attn.kv_loop %[[QT]] schedule(#attn.launch_schedule) iter_args(%[[DQ0]])
// CHECK:             %[[S:.+]] = attn.qk
// CHECK:             %[[P:.+]] = attn.recompute_p
// CHECK-NOT:           transposed
// CHECK:             %[[DP:.+]] = attn.qk
// CHECK:             %[[DS:.+]] = attn.ds %[[P]], %[[DP]]
// dQ += dS K
// CHECK:             %[[DQN:.+]] = attn.matmul_acc %{{.+}}, %[[DS]], %{{.+}} : tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>
// CHECK:             attn.yield %[[DQN]]
// CHECK:           attn.grad_yield %[[DQF]] : tensor<64x64xf32>
// CHECK:         return %[[DQ]]
// PREPARED-LABEL:  func.func @table_det_backward
// PREPARED:          attn.mask_tile {{.*}} transposed {form = "bitmask"}
// PREPARED:          attn.mask_tile {{.*}} {form = "bitmask"}
func.func @table_det_backward(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>, %o: tensor<?x?x4x64xbf16>, %lse: tensor<?x4x?xf32>, %do: tensor<?x?x4x64xbf16>) -> (tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %lse, %do mask(#attn.global_tokens<[0, 5]>) heads(4, 4) scale(0.125) deterministic
      tile(<block_m = 64, block_n = 64, warps = 4>) schedule(#attn.launch_schedule)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>, tensor<?x?x4x64xbf16>
      -> tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>
  return %dq, %dk, %dv : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>
}
