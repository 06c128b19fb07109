// RUN: attnc-opt %s -split-input-file --test-print-block-classes -o /dev/null | FileCheck %s

// Maps worked out by hand: F = FULL, P = PARTIAL, . = skipped.

// Causal, 32 x 32 tokens, 16 x 16 tiles: diagonal tiles are partial (row 0
// does not see key 1), the one below is full, the one above skipped.
// Allowed: 32 * 33 / 2 = 528; computed: 3 tiles of 256.
// CHECK-LABEL: block classes of @causal: 2 x 2 tiles of 16 x 16, closed form
// CHECK-NEXT:    row 0: P.
// CHECK-NEXT:    row 1: FP
// CHECK-NEXT:    full 1, partial 2, skipped 1, allowed pairs 528, computed pairs 768
func.func @causal(%q: tensor<?x32x4x64xbf16>, %k: tensor<?x32x4x64xbf16>, %v: tensor<?x32x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(4, 4) scale(0.125)
      tile(#attn.tile<block_m = 16, block_n = 16>)
      : tensor<?x32x4x64xbf16>, tensor<?x32x4x64xbf16>, tensor<?x32x4x64xbf16> -> tensor<?x32x4x64xbf16>, tensor<?x4x32xf32>
  return
}

// -----

// Causal with 20 queries over 40 keys (bottom-right: row i at p = i + 20).
// Row tile 0 (p 20..35): keys 0..15 full, 16..31 partial (p 20 stops at 20),
// 32..39 partial (p 35 stops at 35). Row tile 1 (rows 16..19, p 36..39):
// keys 0..31 full, 32..39 partial (p 36). Allowed: sum of (i + 21) for i < 20
// = 610; computed: 16 * 40 + 4 * 40 = 800.
// CHECK-LABEL: block classes of @causal_bottom_right: 2 x 3 tiles of 16 x 16, closed form
// CHECK-NEXT:    row 0: FPP
// CHECK-NEXT:    row 1: FFP
// CHECK-NEXT:    full 3, partial 3, skipped 0, allowed pairs 610, computed pairs 800
func.func @causal_bottom_right(%q: tensor<?x20x4x64xbf16>, %k: tensor<?x40x4x64xbf16>, %v: tensor<?x40x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(4, 4) scale(0.125)
      tile(#attn.tile<block_m = 16, block_n = 16>)
      : tensor<?x20x4x64xbf16>, tensor<?x40x4x64xbf16>, tensor<?x40x4x64xbf16> -> tensor<?x20x4x64xbf16>, tensor<?x4x20xf32>
  return
}

// -----

// Block-sparse, block 32 over 64 x 64 tokens with 16 x 16 tiles: layout row 0
// = [0], row 1 = [0, 1]. Each 32-block covers 2 x 2 tiles, all full; the
// upper-right block is skipped. Allowed: 3 blocks of 1024 = 3072.
// CHECK-LABEL: block classes of @block_sparse: 4 x 4 tiles of 16 x 16, table
// CHECK-NEXT:    row 0: FF..
// CHECK-NEXT:    row 1: FF..
// CHECK-NEXT:    row 2: FFFF
// CHECK-NEXT:    row 3: FFFF
// CHECK-NEXT:    full 12, partial 0, skipped 4, allowed pairs 3072, computed pairs 3072
func.func @block_sparse(%q: tensor<?x64x4x64xbf16>, %k: tensor<?x64x4x64xbf16>, %v: tensor<?x64x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.block_sparse<block = 32, layout = [[0], [0, 1]]>) heads(4, 4) scale(0.125)
      tile(#attn.tile<block_m = 16, block_n = 16>)
      : tensor<?x64x4x64xbf16>, tensor<?x64x4x64xbf16>, tensor<?x64x4x64xbf16> -> tensor<?x64x4x64xbf16>, tensor<?x4x64xf32>
  return
}

// -----

// Dynamic lengths: nothing to print until launch.
// CHECK-LABEL: block classes of @dynamic: built at launch
func.func @dynamic(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.global_tokens<[3]>) heads(4, 4) scale(0.125)
      tile(#attn.tile<block_m = 16, block_n = 16>)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}
