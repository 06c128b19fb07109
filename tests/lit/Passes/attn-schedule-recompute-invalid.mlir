// RUN: attnc-opt %s --attn-schedule-recompute -verify-diagnostics -o /dev/null

// A wgmma forward tile under a table schedule with deterministic dQ: the dQ
// pass walks the forward's table on mma.sync tiles, which could not differ
// from the table's (attn-tile never gives this combination).
func.func @wgmma_table(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) -> (tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>) {
  // expected-error @+1 {{has a wgmma tile, a table schedule and deterministic dQ: the dQ pass walks the forward's table on mma.sync tiles}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.global_tokens<[0]>) heads(4, 4) scale(0.125) backward deterministic
      tile(<block_m = 128, block_n = 128, warps = 8, mma = "wgmma">) schedule(#attn.launch_schedule)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return %o, %lse : tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
}
