// RUN: attnc-opt %s -split-input-file --attn-canonicalize-mask | FileCheck %s

// Each case: one rule of the mask algebra (mask::canonicalize).

// CHECK-LABEL: func.func @dilation_one
// window{d = 1} is a plain window: the dilation vanishes from the printed form.
// CHECK: mask(#attn.window<left = 4, right = 2>)
func.func @dilation_one(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.union<[#attn.window<left = 4, right = 2, dilation = 1>]>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// CHECK-LABEL: func.func @flatten_unions
// union(a, union(b, union(c))) = union(a, c, b): flat, children in kind order
// CHECK: mask(#attn.union<[#attn.window<left = 8, right = 8, dilation = 2>, #attn.global_stride<stride = 32>, #attn.block_sparse<block = 16, layout = {{\[}}[0]]>]>)
func.func @flatten_unions(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v
      mask(#attn.union<[#attn.window<left = 8, right = 8, dilation = 2>,
                        #attn.union<[#attn.block_sparse<block = 16, layout = [[0]]>,
                                     #attn.union<[#attn.global_stride<stride = 32>]>]>]>)
      heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// CHECK-LABEL: func.func @causal_window
// causal ∩ window{L, R, d} = window{L, 0, d}
// CHECK: mask(#attn.window<left = 64, right = 0, dilation = 2>)
func.func @causal_window(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v
      mask(#attn.intersect<[#attn.causal, #attn.window<left = 64, right = 64, dilation = 2>]>)
      heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// CHECK-LABEL: func.func @sorted_tokens
// global tokens sorted and deduplicated
// CHECK: mask(#attn.global_tokens<[0, 3, 9]>)
func.func @sorted_tokens(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.global_tokens<[9, 0, 3, 9, 0]>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// CHECK-LABEL: func.func @full_detected
// union with full = full
// CHECK: mask(#attn.full)
func.func @full_detected(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.union<[#attn.causal, #attn.intersect<[#attn.full, #attn.full]>]>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// CHECK-LABEL: func.func @empty_detected
// intersect with empty = empty; an empty block layout allows nothing
// CHECK: mask(#attn.empty)
func.func @empty_detected(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.intersect<[#attn.causal, #attn.block_sparse<block = 16, layout = [[], []]>]>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// CHECK-LABEL: func.func @already_canonical
// A canonical mask is left alone (idempotence).
// CHECK: mask(#attn.union<[#attn.window<left = 256, right = 256>, #attn.global_tokens<[0]>]>)
func.func @already_canonical(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.union<[#attn.window<left = 256, right = 256>, #attn.global_tokens<[0]>]>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// CHECK-LABEL: func.func @runtime_capacity
// A runtime global list keeps its capacity.
// CHECK: mask(#attn.union<[#attn.causal, #attn.global_runtime<max = 64>]>)
func.func @runtime_capacity(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.union<[#attn.global_runtime<max = 64>, #attn.causal]>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}
