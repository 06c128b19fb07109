// RUN: attnc-opt %s -split-input-file --attn-lower-to-loops -verify-diagnostics

func.func @untiled(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>) {
  // expected-error @+1 {{needs a tile and a schedule: run attn-tile and attn-classify-blocks first}}
  %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16> -> tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>
  return
}

// -----

func.func @untiled_grad(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>, %v: tensor<?x?x4x64xbf16>, %o: tensor<?x?x4x64xbf16>, %lse: tensor<?x4x?xf32>, %do: tensor<?x?x4x64xbf16>) {
  // expected-error @+1 {{needs a tile and a schedule: run attn-schedule-recompute after attn-classify-blocks}}
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %lse, %do mask(#attn.causal) heads(4, 4) scale(0.125)
      : tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x4x?xf32>, tensor<?x?x4x64xbf16>
      -> tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>
  return
}
