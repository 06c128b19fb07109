// RUN: attnc-opt %s | attnc-opt | FileCheck %s
// RUN: attnc-opt %s --mlir-print-op-generic | attnc-opt | FileCheck %s

// Every mask attribute and both head groupings survive print -> parse.

// CHECK-LABEL: func.func @dense_mha
// CHECK: attn.attention %{{.*}}, %{{.*}}, %{{.*}} mask(#attn.full) heads(16, 16) scale(1.250000e-01) :
// CHECK-SAME: tensor<?x?x16x64xbf16>, tensor<?x?x16x64xbf16>, tensor<?x?x16x64xbf16> -> tensor<?x?x16x64xbf16>, tensor<?x16x?xf32>
func.func @dense_mha(%q: tensor<?x?x16x64xbf16>, %k: tensor<?x?x16x64xbf16>, %v: tensor<?x?x16x64xbf16>)
    -> (tensor<?x?x16x64xbf16>, tensor<?x16x?xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(16, 16) scale(0.125)
      : tensor<?x?x16x64xbf16>, tensor<?x?x16x64xbf16>, tensor<?x?x16x64xbf16>
      -> tensor<?x?x16x64xbf16>, tensor<?x16x?xf32>
  return %o, %lse : tensor<?x?x16x64xbf16>, tensor<?x16x?xf32>
}

// CHECK-LABEL: func.func @causal_gqa_backward
// CHECK: mask(#attn.causal) heads(32, 8) scale(0.08837890625) backward :
func.func @causal_gqa_backward(%q: tensor<2x1024x32x128xf16>, %k: tensor<2x4096x8x128xf16>, %v: tensor<2x4096x8x128xf16>)
    -> (tensor<2x1024x32x128xf16>, tensor<2x32x1024xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(32, 8) scale(0.08837890625) backward
      : tensor<2x1024x32x128xf16>, tensor<2x4096x8x128xf16>, tensor<2x4096x8x128xf16>
      -> tensor<2x1024x32x128xf16>, tensor<2x32x1024xf32>
  return %o, %lse : tensor<2x1024x32x128xf16>, tensor<2x32x1024xf32>
}

// CHECK-LABEL: func.func @mqa_windows
// CHECK: mask(#attn.intersect<[#attn.window<left = 256, right = 0>, #attn.window<left = 128, right = 128, dilation = 2>]>) heads(8, 1)
func.func @mqa_windows(%q: tensor<?x?x8x64xbf16>, %k: tensor<?x?x1x64xbf16>, %v: tensor<?x?x1x64xbf16>)
    -> (tensor<?x?x8x64xbf16>, tensor<?x8x?xf32>) {
  %o, %lse = attn.attention %q, %k, %v
      mask(#attn.intersect<[#attn.window<left = 256, right = 0, dilation = 1>, #attn.window<left = 128, right = 128, dilation = 2>]>)
      heads(8, 1) scale(0.125)
      : tensor<?x?x8x64xbf16>, tensor<?x?x1x64xbf16>, tensor<?x?x1x64xbf16>
      -> tensor<?x?x8x64xbf16>, tensor<?x8x?xf32>
  return %o, %lse : tensor<?x?x8x64xbf16>, tensor<?x8x?xf32>
}

// CHECK-LABEL: func.func @globals
// CHECK: mask(#attn.union<[#attn.global_tokens<[0, 9, 3]>, #attn.global_ranges<[0 : 16, 100 : 128]>, #attn.global_stride<stride = 512>, #attn.global_stride<stride = 64, offset = 3>, #attn.global_runtime<max = 64>, #attn.empty]>)
func.func @globals(%q: tensor<?x512x4x64xbf16>, %k: tensor<?x512x4x64xbf16>, %v: tensor<?x512x4x64xbf16>)
    -> (tensor<?x512x4x64xbf16>, tensor<?x4x512xf32>) {
  %o, %lse = attn.attention %q, %k, %v
      mask(#attn.union<[#attn.global_tokens<[0, 9, 3]>, #attn.global_ranges<[0 : 16, 100 : 128]>,
                        #attn.global_stride<stride = 512>, #attn.global_stride<stride = 64, offset = 3>,
                        #attn.global_runtime<max = 64>, #attn.empty]>)
      heads(4, 4) scale(0.125)
      : tensor<?x512x4x64xbf16>, tensor<?x512x4x64xbf16>, tensor<?x512x4x64xbf16>
      -> tensor<?x512x4x64xbf16>, tensor<?x4x512xf32>
  return %o, %lse : tensor<?x512x4x64xbf16>, tensor<?x4x512xf32>
}

// CHECK-LABEL: func.func @blocks
// CHECK: mask(#attn.union<[#attn.block_sparse<block = 64, layout = {{\[}}[0], [0, 1], [], [3]]>, #attn.bigbird<block = 64, band = 3, random = 2, global = 1, seed = 42>]>)
func.func @blocks(%q: tensor<?x256x4x64xbf16>, %k: tensor<?x256x4x64xbf16>, %v: tensor<?x256x4x64xbf16>)
    -> (tensor<?x256x4x64xbf16>, tensor<?x4x256xf32>) {
  %o, %lse = attn.attention %q, %k, %v
      mask(#attn.union<[#attn.block_sparse<block = 64, layout = [[0], [0, 1], [], [3]]>,
                        #attn.bigbird<block = 64, band = 3, random = 2, global = 1, seed = 42>]>)
      heads(4, 4) scale(0.125)
      : tensor<?x256x4x64xbf16>, tensor<?x256x4x64xbf16>, tensor<?x256x4x64xbf16>
      -> tensor<?x256x4x64xbf16>, tensor<?x4x256xf32>
  return %o, %lse : tensor<?x256x4x64xbf16>, tensor<?x4x256xf32>
}

// Tiles: the defaults (1 warp, 2 stages, mma "sync") are elided; a Hopper
// wgmma tile keeps its mma.
// CHECK-LABEL: func.func @tiles
// CHECK: tile(<block_m = 128, block_n = 128, warps = 8, mma = "wgmma">) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
// CHECK: tile(<block_m = 64, block_n = 32, warps = 4, stages = 3>) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
func.func @tiles(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>)
    -> (tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(4, 4) scale(0.125)
      tile(<block_m = 128, block_n = 128, warps = 8, stages = 2, mma = "wgmma">)
      schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>
      -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  %o2, %lse2 = attn.attention %q, %k, %v mask(#attn.causal) heads(4, 4) scale(0.125)
      tile(<block_m = 64, block_n = 32, warps = 4, stages = 3, mma = "sync">)
      schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>
      -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return %o, %lse : tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
}
