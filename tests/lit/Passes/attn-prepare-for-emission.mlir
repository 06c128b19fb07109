// RUN: attnc-opt %s -split-input-file --attn-lower-to-loops --attn-prepare-for-emission | FileCheck %s
// RUN: attnc-opt %s -split-input-file --attn-prepare-for-emission -verify-diagnostics -o /dev/null

// The mask's form follows its loop's schedule: a band's closed form...
// CHECK-LABEL: func.func @band
// CHECK: attn.mask_tile %{{.*}} {form = "band"}
func.func @band(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>)
    -> (tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>) {
  // expected-error @+1 {{'attn.attention' op cannot be emitted: lower it with attn-lower-to-loops first}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.window<left = 8, right = 0, dilation = 2>) heads(4, 4) scale(0.125)
      tile(<block_m = 64, block_n = 64>) schedule(#attn.band_schedule<lo = 0, hi = 16, period = 2>)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return %o, %lse : tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
}

// -----

// ... or the launch-time table's bits.
// CHECK-LABEL: func.func @table
// CHECK: attn.mask_tile %{{.*}} {form = "bitmask"}
func.func @table(%q: tensor<?x128x4x64xbf16>, %k: tensor<?x128x4x64xbf16>, %v: tensor<?x128x4x64xbf16>)
    -> (tensor<?x128x4x64xbf16>, tensor<?x4x128xf32>) {
  // expected-error @+1 {{'attn.attention' op cannot be emitted: lower it with attn-lower-to-loops first}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.block_sparse<block = 64, layout = [[0], [0, 1]]>) heads(4, 4) scale(0.125)
      tile(<block_m = 64, block_n = 64>) schedule(#attn.table_schedule<row_tiles = 2, col_tiles = 2, full = 3, partial = 0>)
      : tensor<?x128x4x64xbf16>, tensor<?x128x4x64xbf16>, tensor<?x128x4x64xbf16> -> tensor<?x128x4x64xbf16>, tensor<?x4x128xf32>
  return %o, %lse : tensor<?x128x4x64xbf16>, tensor<?x4x128xf32>
}
