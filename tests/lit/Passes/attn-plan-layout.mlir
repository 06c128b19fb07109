// RUN: attnc-opt %s -split-input-file --attn-plan-layout | FileCheck %s

// A dilated window becomes a plain window over each residue class.
// CHECK-LABEL: func.func @dilated
// CHECK: mask(#attn.window<left = 256, right = 256>) heads(4, 4) scale(1.250000e-01) residues(2)
func.func @dilated(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.window<left = 256, right = 256, dilation = 2>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// A causal dilated window (after attn-canonicalize-mask: right 0) likewise.
// CHECK-LABEL: func.func @causal_dilated
// CHECK: mask(#attn.window<left = 64, right = 0>) heads(4, 4) scale(1.250000e-01) residues(3)
func.func @causal_dilated(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.window<left = 64, right = 0, dilation = 3>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// Anything else is left alone: plain windows, and dilated windows inside
// compositions (their classes mix with the other masks').
// CHECK-LABEL: func.func @untouched
// CHECK: mask(#attn.window<left = 8, right = 8>) heads(4, 4) scale(1.250000e-01) :
// CHECK: mask(#attn.union<[#attn.window<left = 8, right = 8, dilation = 2>, #attn.global_tokens<[0]>]>) heads(4, 4) scale(1.250000e-01) :
func.func @untouched(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.window<left = 8, right = 8>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  %o2, %lse2 = attn.attention %q, %k, %v mask(#attn.union<[#attn.window<left = 8, right = 8, dilation = 2>, #attn.global_tokens<[0]>]>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}
