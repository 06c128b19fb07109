// RUN: attnc-opt %s -split-input-file --attn-lower-to-loops | FileCheck %s
// RUN: attnc-opt %s -split-input-file --attn-lower-to-loops --attn-prepare-for-emission | FileCheck %s --check-prefix=PREPARED

// GQA (16 query heads on 4 kv heads), causal, 64 x 32 tiles.
// CHECK-LABEL: func.func @gqa_causal
// CHECK-NOT:     attn.attention
// CHECK:         %[[OUT:.+]], %[[OUTLSE:.+]] = attn.flash_loop %[[Q:.+]], %[[K:.+]], %[[V:.+]] mask(#attn.causal) heads(16, 4)
// CHECK-SAME:      tile(<block_m = 64, block_n = 32>) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
// CHECK:         ^bb0(%[[B:.+]]: index, %[[H:.+]]: index, %[[QT:.+]]: index):
// GQA: query head h reads kv head h / (16 / 4).
// CHECK:           %[[GROUP:.+]] = arith.constant 4 : index
// CHECK:           %[[KVH:.+]] = arith.divui %[[H]], %[[GROUP]] : index
// Q tile scaled by scale * log2(e) = 0.125 * 1.4426950408889634.
// CHECK:           %[[QTILE:.+]] = attn.load_tile %[[Q]][%[[B]], %[[QT]], %[[H]]] scale(0.18033688011112042) {{.*}} -> tensor<64x64xf32>
// m = -inf, l = 0, O = 0
// CHECK:           %[[M0:.+]] = attn.fill 0xFF800000 : tensor<64xf32>
// CHECK:           %[[L0:.+]] = attn.fill 0.000000e+00 : tensor<64xf32>
// CHECK:           %[[ACC0:.+]] = attn.fill 0.000000e+00 : tensor<64x64xf32>
// CHECK:           %[[MF:.+]], %[[LF:.+]], %[[ACCF:.+]] = attn.kv_loop %[[QT]] schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>) iter_args(%[[M0]], %[[L0]], %[[ACC0]])
// CHECK:           ^bb0(%[[KT:.+]]: index, %[[PARTIAL:.+]]: i1, %[[M:.+]]: tensor<64xf32>, %[[L:.+]]: tensor<64xf32>, %[[ACC:.+]]: tensor<64x64xf32>):
// CHECK:             %[[KTILE:.+]] = attn.load_tile %[[K]][%[[B]], %[[KT]], %[[KVH]]] {{.*}} -> tensor<32x64xf32>
// CHECK:             %[[VTILE:.+]] = attn.load_tile %[[V]][%[[B]], %[[KT]], %[[KVH]]] {{.*}} -> tensor<32x64xf32>
// S = Q K^T
// CHECK:             %[[S:.+]] = attn.qk %[[QTILE]], %[[KTILE]] : tensor<64x64xf32>, tensor<32x64xf32> -> tensor<64x32xf32>
// S = mask(S), on PARTIAL tiles only
// CHECK:             %[[SM:.+]] = attn.mask_tile %[[S]] tile(%[[QT]], %[[KT]]) if(%[[PARTIAL]])
// m_new = max(m, rowmax S)
// CHECK:             %[[MNEW:.+]] = attn.row_max %[[SM]], %[[M]]
// P = exp2(S - m_new)
// CHECK:             %[[P:.+]] = attn.exp2_diff %[[SM]], %[[MNEW]]
// alpha = exp2(m - m_new)
// CHECK:             %[[ALPHA:.+]] = attn.rescale %[[M]], %[[MNEW]]
// l = alpha * l + rowsum P
// CHECK:             %[[LNEW:.+]] = attn.row_sum_update %[[L]], %[[ALPHA]], %[[P]]
// O = alpha * O + P V
// CHECK:             %[[ACCNEW:.+]] = attn.pv_update %[[ACC]], %[[ALPHA]], %[[P]], %[[VTILE]]
// CHECK:             attn.yield %[[MNEW]], %[[LNEW]], %[[ACCNEW]]
// O = acc / l, LSE = (m + log2 l) ln 2
// CHECK:           %[[O:.+]], %[[LSE:.+]] = attn.finalize %[[MF]], %[[LF]], %[[ACCF]]
// CHECK:           attn.tile_yield %[[O]], %[[LSE]] : tensor<64x64xf32>, tensor<64xf32>
// CHECK:         return %[[OUT]], %[[OUTLSE]]

// PREPARED-LABEL: func.func @gqa_causal
// PREPARED: attn.mask_tile {{.*}} {form = "band"}
func.func @gqa_causal(%q: tensor<?x?x16x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>)
    -> (tensor<?x?x16x64xbf16>, tensor<?x16x?xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(16, 4) scale(0.125)
      tile(<block_m = 64, block_n = 32>) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
      : tensor<?x?x16x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x16x64xbf16>, tensor<?x16x?xf32>
  return %o, %lse : tensor<?x?x16x64xbf16>, tensor<?x16x?xf32>
}

// -----

// A mask without a closed form: the loop reads the launch-time table, and the
// mask its per-tile bits.
// CHECK-LABEL: func.func @longformer
// CHECK: attn.kv_loop %{{.*}} schedule(#attn.launch_schedule)
// PREPARED-LABEL: func.func @longformer
// PREPARED: attn.mask_tile {{.*}} {form = "bitmask"}
func.func @longformer(%q: tensor<?x?x4x64xf16>, %k: tensor<?x?x4x64xf16>, %v: tensor<?x?x4x64xf16>)
    -> (tensor<?x?x4x64xf16>, tensor<?x4x?xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.union<[#attn.window<left = 16, right = 16>, #attn.global_tokens<[0]>]>) heads(4, 4) scale(0.125)
      tile(<block_m = 64, block_n = 64>) schedule(#attn.launch_schedule)
      : tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16> -> tensor<?x?x4x64xf16>, tensor<?x4x?xf32>
  return %o, %lse : tensor<?x?x4x64xf16>, tensor<?x4x?xf32>
}
