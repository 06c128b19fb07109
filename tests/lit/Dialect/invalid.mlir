// RUN: attnc-opt %s -split-input-file -verify-diagnostics

// Every verifier diagnostic of the attn dialect, one case each.

func.func @kv_heads_divide(%q: tensor<?x?x6x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  // expected-error @+1 {{kv heads (4) must divide query heads (6)}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(6, 4) scale(0.125)
      : tensor<?x?x6x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x6x64xbf16>, tensor<?x6x?xf32>
  return
}

// -----

func.func @head_dim_multiple_of_8(%q: tensor<?x?x4x60xbf16>, %k: tensor<?x?x4x60xbf16>, %v: tensor<?x?x4x60xbf16>) {
  // expected-error @+1 {{head_dim must be a multiple of 8 in [8, 256], got 60}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x?x4x60xbf16>, tensor<?x?x4x60xbf16>, tensor<?x?x4x60xbf16> -> tensor<?x?x4x60xbf16>, tensor<?x4x?xf32>
  return
}

// -----

func.func @head_dim_too_large(%q: tensor<?x?x4x264xbf16>, %k: tensor<?x?x4x264xbf16>, %v: tensor<?x?x4x264xbf16>) {
  // expected-error @+1 {{head_dim must be a multiple of 8 in [8, 256], got 264}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x?x4x264xbf16>, tensor<?x?x4x264xbf16>, tensor<?x?x4x264xbf16> -> tensor<?x?x4x264xbf16>, tensor<?x4x?xf32>
  return
}

// -----

func.func @head_dim_mismatch(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x128xbf16>, %v: tensor<?x?x4x128xbf16>) {
  // expected-error @+1 {{key and value head_dim must equal the query's 64}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x128xbf16>, tensor<?x?x4x128xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

func.func @element_types(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xf16>, %v: tensor<?x?x4x64xf16>) {
  // expected-error @+1 {{query, key and value must have one element type, got 'bf16', 'f16', 'f16'}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

func.func @f32_operands(%q: tensor<?x?x4x64xf32>, %k: tensor<?x?x4x64xf32>, %v: tensor<?x?x4x64xf32>) {
  // expected-error @+1 {{operand #0 must be ranked tensor of bfloat16 type or 16-bit float values}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xf32>, tensor<?x?x4x64xf32>, tensor<?x?x4x64xf32> -> tensor<?x?x4x64xf32>, tensor<?x4x?xf32>
  return
}

// -----

func.func @heads_attr_vs_type(%q: tensor<?x?x8x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  // expected-error @+1 {{query has 8 heads, attribute says 4}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x?x8x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x8x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

func.func @dynamic_heads(%q: tensor<?x?x?x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  // expected-error @+1 {{query heads and head_dim must be static}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x?x?x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x?x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

func.func @kv_shapes(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x128x4x64xbf16>, %v: tensor<?x256x4x64xbf16>) {
  // expected-error @+1 {{key and value shapes differ}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x128x4x64xbf16>, tensor<?x256x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

func.func @output_type(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  // expected-error @+1 {{output type must equal the query type}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xf16>, tensor<?x4x?xf32>
  return
}

// -----

func.func @lse_shape(%q: tensor<?x128x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  // expected-error @+1 {{lse must be [batch, query heads, query length] = [?, 4, 128]}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(0.125)
      : tensor<?x128x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x128x4x64xbf16>, tensor<?x4x64xf32>
  return
}

// -----

func.func @scale(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  // expected-error @+1 {{scale must be a positive finite number, got -1}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.full) heads(4, 4) scale(-1.0)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// expected-error @+1 {{window bounds must be >= 0, got left = -1, right = 0}}
#bad_window = #attn.window<left = -1, right = 0>

// -----

// expected-error @+1 {{tile block_n must be a power of two in [16, 256], got 8}}
#bad_tile = #attn.tile<block_m = 64, block_n = 8>

// -----

// expected-error @+1 {{window dilation must be >= 1, got 0}}
#bad_dilation = #attn.window<left = 4, right = 4, dilation = 0>

// -----

// expected-error @+1 {{global token must be >= 0, got -3}}
#bad_token = #attn.global_tokens<[1, -3]>

// -----

// expected-error @+1 {{global range must satisfy 0 <= begin < end, got 8 : 8}}
#bad_range = #attn.global_ranges<[8 : 8]>

// -----

// expected-error @+1 {{global stride must be >= 1, got 0}}
#bad_stride = #attn.global_stride<stride = 0>

// -----

// expected-error @+1 {{runtime global token capacity must be >= 1, got 0}}
#bad_runtime = #attn.global_runtime<max = 0>

// -----

// expected-error @+1 {{block size must be >= 1, got 0}}
#bad_block = #attn.block_sparse<block = 0, layout = [[0]]>

// -----

// expected-error @+1 {{block layout column must be >= 0, got -1}}
#bad_column = #attn.block_sparse<block = 16, layout = [[0, -1]]>

// -----

// expected-error @+1 {{bigbird needs at least one band, random or global block}}
#bad_bigbird = #attn.bigbird<block = 64, band = 0, random = 0, global = 0, seed = 1>

// -----

// expected-error @+1 {{union needs at least one mask}}
#bad_union = #attn.union<[]>

// -----

// expected-error @+1 {{intersect operand is not a mask attribute: 5 : i64}}
#bad_intersect = #attn.intersect<[#attn.causal, 5]>

// -----

func.func @token_out_of_range(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x128x4x64xbf16>, %v: tensor<?x128x4x64xbf16>) {
  // expected-error @+1 {{global token 128 is out of range for kv length 128}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.union<[#attn.causal, #attn.global_tokens<[0, 128]>]>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x128x4x64xbf16>, tensor<?x128x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

func.func @range_out_of_range(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x128x4x64xbf16>, %v: tensor<?x128x4x64xbf16>) {
  // expected-error @+1 {{global range end 129 is out of range for kv length 128}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.global_ranges<[120 : 129]>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x128x4x64xbf16>, tensor<?x128x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

func.func @layout_column(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x100x4x64xbf16>, %v: tensor<?x100x4x64xbf16>) {
  // expected-error @+1 {{block layout column 2 is out of range: kv length 100 has 2 blocks}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.block_sparse<block = 64, layout = [[0], [0, 2]]>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x100x4x64xbf16>, tensor<?x100x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

func.func @layout_rows(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x64x4x64xbf16>, %v: tensor<?x64x4x64xbf16>) {
  // expected-error @+1 {{block layout has 2 rows, more than the 1 blocks of kv length 64}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.block_sparse<block = 64, layout = [[0], [0]]>) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x64x4x64xbf16>, tensor<?x64x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

// Tile warps must divide the query rows in 16-row blocks; stages are 2..8.
// expected-error @+1 {{tile warps must be a power of two with 16 * warps dividing block_m (64), got 8}}
#bad_warps = #attn.tile<block_m = 64, block_n = 64, warps = 8>

// -----

// expected-error @+1 {{tile stages must be in [2, 8], got 1}}
#bad_stages = #attn.tile<block_m = 64, block_n = 64, stages = 1>

// -----

// mma is "sync" (mma.sync) or "wgmma" (Hopper's warpgroup MMA).
// expected-error @+1 {{tile mma must be "sync" or "wgmma", got "hmma"}}
#bad_mma = #attn.tile<block_m = 64, block_n = 64, warps = 4, mma = "hmma">

// -----

// wgmma runs whole warpgroups (4 warps) ...
// expected-error @+1 {{tile mma "wgmma" needs whole warpgroups: warps must be a multiple of 4, got 2}}
#wgmma_warps = #attn.tile<block_m = 64, block_n = 64, warps = 2, mma = "wgmma">

// -----

// ... each over one 64-row wgmma block: block_m = 16 * warps.
// expected-error @+1 {{tile mma "wgmma" needs one 64-row wgmma block per warpgroup: block_m must be 16 * warps (64), got 128}}
#wgmma_rows = #attn.tile<block_m = 128, block_n = 64, warps = 4, mma = "wgmma">

// -----

func.func @grad_types(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>, %o: tensor<?x?x4x64xbf16>, %lse: tensor<?x4x?xf32>, %do: tensor<?x?x4x32xbf16>) {
  // expected-error @+1 {{output and d_output must have the query's type}}
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %lse, %do mask(#attn.causal) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>, tensor<?x?x4x32xbf16>
      -> tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>
  return
}

// -----

func.func @grad_heads(%q: tensor<?x?x6x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>, %o: tensor<?x?x6x64xbf16>, %lse: tensor<?x6x?xf32>, %do: tensor<?x?x6x64xbf16>) {
  // expected-error @+1 {{kv heads (4) must divide query heads (6)}}
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %lse, %do mask(#attn.causal) heads(6, 4) scale(0.125)
      : tensor<?x?x6x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x6x64xbf16>, tensor<?x6x?xf32>, tensor<?x?x6x64xbf16>
      -> tensor<?x?x6x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>
  return
}

// -----

func.func @grad_kv_loop_accum(%q: tensor<?x?x4x64xbf16>, %lse: tensor<?x4x?xf32>, %delta: tensor<?x4x?xf32>) {
  // expected-error @+1 {{has a dq_accum result iff atomic_dq is set}}
  %dk, %dv = attn.grad_kv_loop %q, %q, %q, %lse, %q, %delta mask(#attn.causal) heads(4, 4) scale(0.125) atomic_dq
      tile(<block_m = 64, block_n = 64, warps = 4>) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>, tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
      -> tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> {
  ^bb0(%b: index, %kvh: index, %kt: index):
    %z = attn.fill 0.0 : tensor<64x64xf32>
    attn.grad_yield %z, %z : tensor<64x64xf32>, tensor<64x64xf32>
  }
  return
}

// -----

func.func @grad_kv_loop_yield(%q: tensor<?x?x4x64xbf16>, %lse: tensor<?x4x?xf32>, %delta: tensor<?x4x?xf32>) {
  // expected-error @+1 {{body must end with attn.grad_yield of the (32, 64) dK and dV tiles}}
  %dk, %dv = attn.grad_kv_loop %q, %q, %q, %lse, %q, %delta mask(#attn.causal) heads(4, 4) scale(0.125)
      tile(<block_m = 64, block_n = 32, warps = 4>) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>, tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
      -> tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> {
  ^bb0(%b: index, %kvh: index, %kt: index):
    %z = attn.fill 0.0 : tensor<64x64xf32>
    attn.grad_yield %z, %z : tensor<64x64xf32>, tensor<64x64xf32>
  }
  return
}

// -----

func.func @q_loop_body(%kt: index, %kvh: index, %dk0: tensor<64x64xf32>) {
  // expected-error @+1 {{body must take (query head: index, query tile: index, partial: i1) and the iter_args}}
  %dk = attn.q_loop %kt, %kvh group(2) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>) iter_args(%dk0) : tensor<64x64xf32> {
  ^bb0(%qt: index, %partial: i1, %dk: tensor<64x64xf32>):
    attn.yield %dk : tensor<64x64xf32>
  }
  return
}

// -----

func.func @q_loop_group(%kt: index, %kvh: index, %dk0: tensor<64x64xf32>) {
  // expected-error @+1 {{group must be positive, got 0}}
  %dk = attn.q_loop %kt, %kvh group(0) schedule(#attn.band_schedule<lo = 0, hi = inf, period = 1>) iter_args(%dk0) : tensor<64x64xf32> {
  ^bb0(%h: index, %qt: index, %partial: i1, %dk: tensor<64x64xf32>):
    attn.yield %dk : tensor<64x64xf32>
  }
  return
}

// -----

func.func @matmul_shapes(%acc: tensor<64x64xf32>, %a: tensor<64x32xf32>, %b: tensor<64x64xf32>) {
  // expected-error @+1 {{shapes do not multiply}}
  %r = attn.matmul_acc %acc, %a, %b : tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x64xf32>
  return
}
