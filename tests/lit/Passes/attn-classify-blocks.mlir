// RUN: attnc-opt %s -split-input-file --attn-classify-blocks -verify-diagnostics | FileCheck %s

// Banded masks get a closed form; others a table (static lengths) or a
// table built at launch (dynamic lengths, runtime tokens).

// CHECK-LABEL: func.func @causal
// CHECK: schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
func.func @causal(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(4, 4) scale(0.125)
      tile(#attn.tile<block_m = 64, block_n = 64>)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// intersect[window{8, 8, d 3}, causal] -> delta in [0, 24], multiples of 3.
// CHECK-LABEL: func.func @dilated_causal
// CHECK: schedule(#attn.band_schedule<lo = 0, hi = 24, period = 3>)
func.func @dilated_causal(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.intersect<[#attn.window<left = 8, right = 8, dilation = 3>, #attn.causal]>) heads(4, 4) scale(0.125)
      tile(#attn.tile<block_m = 64, block_n = 64>)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// 256 x 256 tokens, 64 x 64 tiles: window 16/16 plus global token 0. Row tile
// 0 holds the global row 0, so it visits all 4 kv tiles; row tiles 1-3 visit
// the global column tile 0 and the band's tiles: (1,1) (1,2), (2,1) (2,2)
// (2,3), (3,2) (3,3). Every visited tile is partial: 4 + 3 + 4 + 3 = 14.
// CHECK-LABEL: func.func @longformer
// CHECK: schedule(#attn.table_schedule<row_tiles = 4, col_tiles = 4, full = 0, partial = 14>)
func.func @longformer(%q: tensor<?x256x4x64xbf16>, %k: tensor<?x256x4x64xbf16>, %v: tensor<?x256x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.union<[#attn.window<left = 16, right = 16>, #attn.global_tokens<[0]>]>) heads(4, 4) scale(0.125)
      tile(#attn.tile<block_m = 64, block_n = 64>)
      : tensor<?x256x4x64xbf16>, tensor<?x256x4x64xbf16>, tensor<?x256x4x64xbf16> -> tensor<?x256x4x64xbf16>, tensor<?x4x256xf32>
  return
}

// -----

// CHECK-LABEL: func.func @dynamic_block_sparse
// CHECK: schedule(#attn.launch_schedule)
func.func @dynamic_block_sparse(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.block_sparse<block = 64, layout = [[0], [0, 1]]>) heads(4, 4) scale(0.125)
      tile(#attn.tile<block_m = 64, block_n = 64>)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// CHECK-LABEL: func.func @runtime_tokens
// CHECK: schedule(#attn.launch_schedule)
func.func @runtime_tokens(%q: tensor<?x128x4x64xbf16>, %k: tensor<?x128x4x64xbf16>, %v: tensor<?x128x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.union<[#attn.causal, #attn.global_runtime<max = 8>]>) heads(4, 4) scale(0.125)
      tile(#attn.tile<block_m = 64, block_n = 64>)
      : tensor<?x128x4x64xbf16>, tensor<?x128x4x64xbf16>, tensor<?x128x4x64xbf16> -> tensor<?x128x4x64xbf16>, tensor<?x4x128xf32>
  return
}

// -----

func.func @untiled(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  // expected-error @+1 {{needs a tile configuration: run attn-tile first}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}
