// RUN: attnc-opt %s -split-input-file --attn-schedule-recompute | FileCheck %s
// RUN: attnc-opt %s -split-input-file --attn-schedule-recompute="deterministic=true" | FileCheck %s --check-prefix=DET
// RUN: attnc-opt %s -split-input-file --attn-schedule-recompute --attn-schedule-recompute | FileCheck %s --check-prefix=TWICE

// A forward with `backward` gets NAME_backward taking what it saves (Q, K,
// V, O, LSE) and dO; the plan carries the forward's mask, heads, scale, tile,
// schedule and residue classes.
// CHECK-LABEL: func.func @gqa_window
// CHECK:         attn.attention
// CHECK-LABEL: func.func @gqa_window_backward
// CHECK-SAME:      (%[[Q:.+]]: tensor<?x?x8x64xbf16>, %[[K:.+]]: tensor<?x?x2x64xbf16>, %[[V:.+]]: tensor<?x?x2x64xbf16>, %[[O:.+]]: tensor<?x?x8x64xbf16>, %[[LSE:.+]]: tensor<?x8x?xf32>, %[[DO:.+]]: tensor<?x?x8x64xbf16>)
// CHECK-SAME:      -> (tensor<?x?x8x64xbf16>, tensor<?x?x2x64xbf16>, tensor<?x?x2x64xbf16>)
// CHECK:         %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q]], %[[K]], %[[V]], %[[O]], %[[LSE]], %[[DO]]
// CHECK-SAME:      mask(#attn.window<left = 64, right = 64>) heads(8, 2) scale(1.250000e-01)
// CHECK-NOT:       deterministic
// CHECK-SAME:      residues(2) tile(<block_m = 64, block_n = 64, warps = 4>)
// CHECK-SAME:      schedule(#attn.band_schedule<lo = -64, hi = 64, period = 1>)
// CHECK:         return %[[DQ]], %[[DK]], %[[DV]]
// DET-LABEL:   func.func @gqa_window_backward
// DET:           attn.attention_grad {{.*}} deterministic
// TWICE-COUNT-1: func.func @gqa_window_backward
func.func @gqa_window(%q: tensor<?x?x8x64xbf16>, %k: tensor<?x?x2x64xbf16>, %v: tensor<?x?x2x64xbf16>) -> (tensor<?x?x8x64xbf16>, tensor<?x8x?xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.window<left = 64, right = 64>) heads(8, 2) scale(0.125) backward residues(2)
      tile(<block_m = 64, block_n = 64, warps = 4>) schedule(#attn.band_schedule<lo = -64, hi = 64, period = 1>)
      : tensor<?x?x8x64xbf16>, tensor<?x?x2x64xbf16>, tensor<?x?x2x64xbf16> -> tensor<?x?x8x64xbf16>, tensor<?x8x?xf32>
  return %o, %lse : tensor<?x?x8x64xbf16>, tensor<?x8x?xf32>
}

// -----

// `deterministic` on the forward picks the separate dQ pass.
// CHECK-LABEL: func.func @det_backward
// CHECK:         attn.attention_grad {{.*}} mask(#attn.causal) heads(4, 4) scale(1.250000e-01) deterministic
func.func @det(%q: tensor<?x?x4x64xf16>, %k: tensor<?x?x4x64xf16>, %v: tensor<?x?x4x64xf16>) -> (tensor<?x?x4x64xf16>, tensor<?x4x?xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(4, 4) scale(0.125) backward deterministic
      tile(<block_m = 64, block_n = 64, warps = 4>) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
      : tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16> -> tensor<?x?x4x64xf16>, tensor<?x4x?xf32>
  return %o, %lse : tensor<?x?x4x64xf16>, tensor<?x4x?xf32>
}

// -----

// No `backward`: nothing is planned.
// CHECK-LABEL: func.func @forward_only
// CHECK-NOT:   func.func @forward_only_backward
func.func @forward_only(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) -> (tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return %o, %lse : tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
}

// -----

// A Hopper forward tile (wgmma, under a band): the backward's query-grid
// kernels get the tile attn-tile picks without wgmma for head_dim 128 (64x64,
// 4 warps), and the kv-stationary pass a wgmma kv tile: 128 keys (two
// warpgroups of 64), 64-row query steps.
// CHECK-LABEL: func.func @wgmma_backward
// CHECK:         attn.attention {{.*}} tile(<block_m = 128, block_n = 128, warps = 8, mma = "wgmma">)
// CHECK-LABEL: func.func @wgmma_backward_backward
// CHECK:         attn.attention_grad
// CHECK-SAME:      tile(<block_m = 64, block_n = 64, warps = 4>) kv_tile(<block_m = 64, block_n = 128, warps = 8, mma = "wgmma">)
// CHECK-SAME:      schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
func.func @wgmma_backward(%q: tensor<?x?x8x128xbf16>, %k: tensor<?x?x2x128xbf16>, %v: tensor<?x?x2x128xbf16>) -> (tensor<?x?x8x128xbf16>, tensor<?x8x?xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(8, 2) scale(0.088) backward
      tile(<block_m = 128, block_n = 128, warps = 8, mma = "wgmma">) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
      : tensor<?x?x8x128xbf16>, tensor<?x?x2x128xbf16>, tensor<?x?x2x128xbf16> -> tensor<?x?x8x128xbf16>, tensor<?x8x?xf32>
  return %o, %lse : tensor<?x?x8x128xbf16>, tensor<?x8x?xf32>
}
