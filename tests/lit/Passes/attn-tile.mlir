// RUN: attnc-opt %s -split-input-file --attn-tile | FileCheck %s --check-prefix=HEURISTIC
// RUN: attnc-opt %s -split-input-file --attn-tile="block-m=64 block-n=32" | FileCheck %s --check-prefix=FLAGS
// RUN: attnc-opt %s -split-input-file --attn-tile="block-m=48" -verify-diagnostics -o /dev/null
// RUN: attnc-opt %s -split-input-file --attn-tile="mma=wgmma" | FileCheck %s --check-prefix=WGMMA
// RUN: attnc-opt %s -split-input-file --attn-tile="block-m=128 block-n=128 mma=wgmma" | FileCheck %s --check-prefix=WGFLAGS
// RUN: attnc-opt %s -split-input-file --attn-tile="mma=wgmma deterministic=true" | FileCheck %s --check-prefix=WGDET
// RUN: not attnc-opt %s -split-input-file --attn-tile="mma=hmma" 2>&1 | FileCheck %s --check-prefix=BADMMA

// The heuristic picks by head_dim: <= 128 -> 64x64, else 64x32;
// GPU warps own 16 rows each (at most 8), two stages (the default, elided).
//
// mma=wgmma (attnc --arch=sm_90a) gives the Hopper tile, 128x128 with two
// warpgroups, to head_dim 64 and 128 where the mask is a band, or a table
// whose 128x128 tiles visit at most 1.25x the pairs of 64x64 ones and whose
// backward, if any, computes dQ by atomics (it gets a table of its own); a
// table with deterministic dQ (the option, or the attention's attribute:
// that dQ pass walks the forward's table on mma.sync tiles), other
// head_dims, and every attention when a tile side is given, keep mma.sync.
// BADMMA: error: attn-tile: mma must be sync or wgmma, got 'hmma'

// HEURISTIC-LABEL: func.func @d64
// HEURISTIC: tile(<block_m = 64, block_n = 64, warps = 4>)
// FLAGS-LABEL: func.func @d64
// FLAGS: tile(<block_m = 64, block_n = 32, warps = 4>)
// WGMMA-LABEL: func.func @d64
// WGMMA: tile(<block_m = 128, block_n = 128, warps = 8, mma = "wgmma">)
// WGFLAGS-LABEL: func.func @d64
// WGFLAGS: tile(<block_m = 128, block_n = 128, warps = 8>)
func.func @d64(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  // expected-error @+1 {{tile block_m must be a power of two in [16, 256], got 48}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// HEURISTIC-LABEL: func.func @d128_fp16
// HEURISTIC: tile(<block_m = 64, block_n = 64, warps = 4>)
// WGMMA-LABEL: func.func @d128_fp16
// WGMMA: tile(<block_m = 128, block_n = 128, warps = 8, mma = "wgmma">)
func.func @d128_fp16(%q: tensor<?x?x4x128xf16>, %k: tensor<?x?x1x128xf16>, %v: tensor<?x?x1x128xf16>) {
  // expected-error @+1 {{tile block_m must be a power of two in [16, 256], got 48}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 1) scale(0.125)
      : tensor<?x?x4x128xf16>, tensor<?x?x1x128xf16>, tensor<?x?x1x128xf16> -> tensor<?x?x4x128xf16>, tensor<?x4x?xf32>
  return
}

// -----

// HEURISTIC-LABEL: func.func @d256
// HEURISTIC: tile(<block_m = 64, block_n = 32, warps = 4>)
// WGMMA-LABEL: func.func @d256
// WGMMA: tile(<block_m = 64, block_n = 32, warps = 4>)
func.func @d256(%q: tensor<?x?x4x256xbf16>, %k: tensor<?x?x4x256xbf16>, %v: tensor<?x?x4x256xbf16>) {
  // expected-error @+1 {{tile block_m must be a power of two in [16, 256], got 48}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x?x4x256xbf16>, tensor<?x?x4x256xbf16>, tensor<?x?x4x256xbf16> -> tensor<?x?x4x256xbf16>, tensor<?x4x?xf32>
  return
}


// -----

// wgmma: head_dim 64 and 128 only.
// WGMMA-LABEL: func.func @d32
// WGMMA: tile(<block_m = 64, block_n = 64, warps = 4>)
func.func @d32(%q: tensor<?x?x4x32xbf16>, %k: tensor<?x?x4x32xbf16>, %v: tensor<?x?x4x32xbf16>) {
  // expected-error @+1 {{tile block_m must be a power of two in [16, 256], got 48}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(4, 4) scale(0.125)
      : tensor<?x?x4x32xbf16>, tensor<?x?x4x32xbf16>, tensor<?x?x4x32xbf16> -> tensor<?x?x4x32xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// A backward under a band (here causal): the forward runs wgmma.
// WGMMA-LABEL: func.func @band_backward
// WGMMA: backward tile(<block_m = 128, block_n = 128, warps = 8, mma = "wgmma">)
func.func @band_backward(%q: tensor<?x?x8x128xbf16>, %k: tensor<?x?x2x128xbf16>, %v: tensor<?x?x2x128xbf16>) {
  // expected-error @+1 {{tile block_m must be a power of two in [16, 256], got 48}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(8, 2) scale(0.088) backward
      : tensor<?x?x8x128xbf16>, tensor<?x?x2x128xbf16>, tensor<?x?x2x128xbf16> -> tensor<?x?x8x128xbf16>, tensor<?x8x?xf32>
  return
}

// -----

// A backward under a table (causal with a global token): wgmma with atomic
// dQ; mma.sync tiles with deterministic dQ (the option), which the dQ pass
// shares.
// WGMMA-LABEL: func.func @table_backward
// WGMMA: backward tile(<block_m = 128, block_n = 128, warps = 8, mma = "wgmma">)
// WGDET-LABEL: func.func @table_backward
// WGDET: backward tile(<block_m = 64, block_n = 64, warps = 4>)
func.func @table_backward(%q: tensor<?x?x4x64xf16>, %k: tensor<?x?x4x64xf16>, %v: tensor<?x?x4x64xf16>) {
  // expected-error @+1 {{tile block_m must be a power of two in [16, 256], got 48}}
  %o, %lse = attn.attention %q, %k, %v
      mask(#attn.union<[#attn.causal, #attn.global_tokens<[0]>]>)
      heads(4, 4) scale(0.125) backward
      : tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16> -> tensor<?x?x4x64xf16>, tensor<?x4x?xf32>
  return
}

// -----

// The same table with the attention's own `deterministic`: mma.sync.
// WGMMA-LABEL: func.func @table_deterministic
// WGMMA: backward deterministic tile(<block_m = 64, block_n = 64, warps = 4>)
func.func @table_deterministic(%q: tensor<?x?x4x64xf16>, %k: tensor<?x?x4x64xf16>, %v: tensor<?x?x4x64xf16>) {
  // expected-error @+1 {{tile block_m must be a power of two in [16, 256], got 48}}
  %o, %lse = attn.attention %q, %k, %v
      mask(#attn.union<[#attn.causal, #attn.global_tokens<[0]>]>)
      heads(4, 4) scale(0.125) backward deterministic
      : tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16> -> tensor<?x?x4x64xf16>, tensor<?x4x?xf32>
  return
}

// -----

// The same table without a backward: wgmma, also with deterministic=true.
// WGMMA-LABEL: func.func @table_forward
// WGMMA: tile(<block_m = 128, block_n = 128, warps = 8, mma = "wgmma">)
// WGDET-LABEL: func.func @table_forward
// WGDET: tile(<block_m = 128, block_n = 128, warps = 8, mma = "wgmma">)
func.func @table_forward(%q: tensor<?x?x4x64xf16>, %k: tensor<?x?x4x64xf16>, %v: tensor<?x?x4x64xf16>) {
  // expected-error @+1 {{tile block_m must be a power of two in [16, 256], got 48}}
  %o, %lse = attn.attention %q, %k, %v
      mask(#attn.union<[#attn.causal, #attn.global_tokens<[0]>]>)
      heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16> -> tensor<?x?x4x64xf16>, tensor<?x4x?xf32>
  return
}

// -----

// A scattered table (a window of 64 with a global token): 128x128 tiles
// would visit over 1.25x the pairs of 64x64 ones (at 4096, lengths being
// given at launch), so mma.sync even without a backward.
// WGMMA-LABEL: func.func @scattered_table
// WGMMA: tile(<block_m = 64, block_n = 64, warps = 4>)
func.func @scattered_table(%q: tensor<?x?x4x64xf16>, %k: tensor<?x?x4x64xf16>, %v: tensor<?x?x4x64xf16>) {
  // expected-error @+1 {{tile block_m must be a power of two in [16, 256], got 48}}
  %o, %lse = attn.attention %q, %k, %v
      mask(#attn.union<[#attn.window<left = 64, right = 64>, #attn.global_tokens<[0]>]>)
      heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16> -> tensor<?x?x4x64xf16>, tensor<?x4x?xf32>
  return
}
