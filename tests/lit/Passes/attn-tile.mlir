// RUN: attnc-opt %s -split-input-file --attn-tile | FileCheck %s --check-prefix=HEURISTIC
// RUN: attnc-opt %s -split-input-file --attn-tile="block-m=64 block-n=32" | FileCheck %s --check-prefix=FLAGS
// RUN: attnc-opt %s -split-input-file --attn-tile="block-m=48" -verify-diagnostics -o /dev/null

// The heuristic picks by head_dim: <= 128 -> 64x64, else 64x32;
// GPU warps own 16 rows each (at most 8), two stages (the default, elided).

// HEURISTIC-LABEL: func.func @d64
// HEURISTIC: tile(<block_m = 64, block_n = 64, warps = 4>)
// FLAGS-LABEL: func.func @d64
// FLAGS: tile(<block_m = 64, block_n = 32, warps = 4>)
func.func @d64(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  // expected-error @+1 {{tile block_m must be a power of two in [16, 256], got 48}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// HEURISTIC-LABEL: func.func @d128_fp16
// HEURISTIC: tile(<block_m = 64, block_n = 64, warps = 4>)
func.func @d128_fp16(%q: tensor<?x?x4x128xf16>, %k: tensor<?x?x1x128xf16>, %v: tensor<?x?x1x128xf16>) {
  // expected-error @+1 {{tile block_m must be a power of two in [16, 256], got 48}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 1) scale(0.125)
      : tensor<?x?x4x128xf16>, tensor<?x?x1x128xf16>, tensor<?x?x1x128xf16> -> tensor<?x?x4x128xf16>, tensor<?x4x?xf32>
  return
}

// -----

// HEURISTIC-LABEL: func.func @d256
// HEURISTIC: tile(<block_m = 64, block_n = 32, warps = 4>)
func.func @d256(%q: tensor<?x?x4x256xbf16>, %k: tensor<?x?x4x256xbf16>, %v: tensor<?x?x4x256xbf16>) {
  // expected-error @+1 {{tile block_m must be a power of two in [16, 256], got 48}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x?x4x256xbf16>, tensor<?x?x4x256xbf16>, tensor<?x?x4x256xbf16> -> tensor<?x?x4x256xbf16>, tensor<?x4x?xf32>
  return
}

