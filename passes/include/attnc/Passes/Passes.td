//===- Passes.td - attnc passes ----------------------------*- tablegen -*-===//

#ifndef ATTNC_PASSES_TD
#define ATTNC_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnCanonicalizeMask : Pass<"attn-canonicalize-mask"> {
  let summary = "Bring every attn.attention mask to its algebraic normal form";
  let description = [{
    Rewrites the mask attribute of each `attn.attention` with the mask
    algebra (mask::canonicalize): dilation 1 windows become plain windows,
    nested unions and intersections flatten, a causal mask intersected with a
    window becomes a window with right 0, global tokens are sorted and
    deduplicated, and full and empty masks are detected. The predicate of the
    mask never changes.

    Before:
    ```mlir
    mask(#attn.intersect<[#attn.causal,
                          #attn.union<[#attn.window<left = 64, right = 64>]>]>)
    ```
    After:
    ```mlir
    mask(#attn.window<left = 64, right = 0>)
    ```
  }];
  let dependentDialects = ["::attnc::attn::AttnDialect"];
}

def AttnPlanLayout : Pass<"attn-plan-layout"> {
  let summary = "Re-index dilated windows by residue class";
  let description = [{
    A dilated window allows p - k only in multiples of d: every tile of its
    band is PARTIAL and half or more of it is masked. Positions of one residue
    class r = p mod d attend only to keys of the same class, and re-indexed
    by p -> p / d the class sees a plain window. So a mask that is a single
    window{L, R, d} with d > 1 becomes window{L, R} with `residues(d)`: the
    kernel is the dense band kernel, launched once per class on strided views
    of Q, K, V, O and LSE (the runtime does the split). Other masks are left
    alone. Runs after attn-canonicalize-mask.

    Before: `mask(#attn.window<left = 256, right = 256, dilation = 2>)`
    After: `mask(#attn.window<left = 256, right = 256>) residues(2)`
  }];
  let dependentDialects = ["::attnc::attn::AttnDialect"];
}

def AttnTile : Pass<"attn-tile"> {
  let summary = "Attach the tile configuration (BLOCK_M x BLOCK_N) to attn.attention";
  let description = [{
    Sets `tile` on every `attn.attention` from the options, or, where they are
    0, from a heuristic by head_dim and dtype: head_dim <= 128 -> 64x64,
    larger -> 64x32 (bf16 and fp16 are both 2-byte types and tile alike; the
    Q fragments and the O accumulator stay in registers, measured best on an
    H100 among the shapes tried). GPU warps: 16 query rows each, at most 8;
    two pipeline stages. An existing tile is replaced.

    `mma=wgmma` (the pipeline sets it for `--arch sm_90a`) gives the Hopper
    warpgroup-MMA forward tile `block_m = 128, block_n = 128, warps = 8,
    mma = "wgmma"` to every attention with head_dim 64 or 128 (bf16 or fp16)
    whose mask has a closed-form band schedule, or a table one whose 128x128
    tiles visit at most 1.25x the query-key pairs of 64x64 tiles (at the
    static lengths, else 4096; scattered global tokens and small blocks fail
    this) and whose backward, if any, computes dQ by atomics (it then gets a
    table of its own tiles); a table whose backward is deterministic (the
    attention's `deterministic`, or the option) keeps mma.sync, as its dQ
    pass walks the forward's table. The others, and every attention when a
    tile side is given, get the mma.sync tile above.

    Before:
    ```mlir
    attn.attention %q, %k, %v mask(#attn.causal) heads(16, 16) scale(0.088) : ...
    ```
    After (head_dim 128):
    ```mlir
    attn.attention %q, %k, %v mask(#attn.causal) heads(16, 16) scale(0.088)
        tile(#attn.tile<block_m = 64, block_n = 64, warps = 4>) : ...
    ```
  }];
  let options = [
    Option<"blockM", "block-m", "int64_t", "0",
           "BLOCK_M, a power of two in [16, 256] (0: heuristic)">,
    Option<"blockN", "block-n", "int64_t", "0",
           "BLOCK_N, a power of two in [16, 256] (0: heuristic)">,
    Option<"mma", "mma", "std::string", "\"sync\"",
           "the CUDA forward's MMA: sync (mma.sync, sm_80+) or wgmma (Hopper, sm_90a: "
           "where eligible and no tile side is given)">,
    Option<"deterministic", "deterministic", "bool", "false",
           "the backward computes dQ in the separate deterministic pass (as "
           "attn-schedule-recompute's option): table schedules then keep mma.sync">,
  ];
  let dependentDialects = ["::attnc::attn::AttnDialect"];
}

def AttnClassifyBlocks : Pass<"attn-classify-blocks"> {
  let summary = "Decide, per query tile, which kv tiles to visit and which are FULL";
  let description = [{
    Runs the block classification analysis (mask::BlockSchedule) on every
    tiled `attn.attention` and records the schedule kind:
    - banded masks (full, causal, windows, dilated windows, intersections):
      `#attn.band_schedule<lo, hi, period>`, a closed form over tile indices;
    - other masks with static lengths: `#attn.table_schedule<...>` with the
      table's shape and its FULL/PARTIAL counts;
    - other masks with lengths or global tokens given at launch:
      `#attn.launch_schedule`.
    EMPTY tiles are never visited; FULL tiles need no mask arithmetic. The
    classification is exact (tested against brute force).

    Before:
    ```mlir
    attn.attention ... mask(#attn.window<left = 256, right = 0>) ... tile(#attn.tile<block_m = 128, block_n = 64>)
    ```
    After:
    ```mlir
    attn.attention ... tile(#attn.tile<block_m = 128, block_n = 64>)
        schedule(#attn.band_schedule<lo = 0, hi = 256, period = 1>)
    ```
  }];
  let dependentDialects = ["::attnc::attn::AttnDialect"];
}

def AttnScheduleRecompute : Pass<"attn-schedule-recompute", "::mlir::ModuleOp"> {
  let summary = "Plan the backward pass: recompute P from the saved LSE";
  let description = [{
    For every function whose `attn.attention` has `backward`, adds the
    function `@NAME_backward(Q, K, V, O, LSE, dO) -> (dQ, dK, dV)` holding one
    `attn.attention_grad` with the forward's mask, heads, scale, tile,
    schedule and residue classes. Its operands are what the forward saves: its
    inputs, O and the float32 LSE; the backward never stores the N x N
    probabilities (attn-lower-to-loops gives it the FlashAttention-2 plan:
    delta = rowsum(dO * O); a kv-stationary pass over the transposed schedule
    recomputing P tile by tile for dK, dV; dQ by float32 atomics or a separate
    q-stationary pass). `deterministic` on the attention, or the option, picks
    the separate dQ pass (bitwise reproducible); the CPU target always uses it.
    The backward's query-grid kernels use mma.sync: a Hopper forward tile
    (`mma = "wgmma"`) gives the backward the tile attn-tile picks without
    wgmma for its head_dim. Under a band, the kv-stationary pass (`kv_tile`)
    takes 128-key kv tiles; with a Hopper forward its kv tile is a wgmma one
    (`mma = "wgmma"`: two warpgroups of 64 keys, steps of block_m query
    rows), under a band or a table (whose backward then has a table of its
    own tiles, block_m x 128, built by the runtime beside the forward's; a
    wgmma tile with a table and deterministic dQ is an error: that dQ pass
    walks the forward's table).

    Before:
    ```mlir
    func.func @f(%q: ..., %k: ..., %v: ...) -> (...) {
      %o, %lse = attn.attention %q, %k, %v mask(#attn.causal) heads(8, 2) scale(0.125) backward tile(...) schedule(...) : ...
    ```
    After (added):
    ```mlir
    func.func @f_backward(%q: ..., %k: ..., %v: ..., %o: ..., %lse: ..., %do: ...) -> (...) {
      %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %lse, %do mask(#attn.causal) heads(8, 2) scale(0.125) tile(...) schedule(...) : ...
    ```
  }];
  let options = [
    Option<"deterministic", "deterministic", "bool", "false",
           "compute dQ in a separate deterministic pass (no float32 atomics)">,
  ];
  let dependentDialects = ["::attnc::attn::AttnDialect", "::mlir::func::FuncDialect"];
}

def AttnLowerToLoops : Pass<"attn-lower-to-loops"> {
  let summary = "Lower tiled, classified attn.attention to the flash loop";
  let description = [{
    Replaces each `attn.attention` (with `tile` and `schedule`) by an
    `attn.flash_loop` over (batch, query head, query tile) whose body is the
    FlashAttention-2 forward with online softmax, as explicit ops:

    ```
    kvh    = h / (Hq / Hkv)                        GQA: the kv head of query head h
    Q      = load_tile q[b, qt, h] * scale*log2(e) log2(e) folded into the scale
    m = -inf, l = 0, O = 0
    for (kt, partial) in schedule(qt):             EMPTY tiles never visited
      K, V   = load_tile k/v[b, kt, kvh]
      S      = Q K^T
      S      = mask(S) if partial                  FULL tiles do no mask arithmetic
      m_new  = max(m, rowmax S)
      P      = exp2(S - m_new)
      alpha  = exp2(m - m_new)
      l      = alpha * l + rowsum P
      O      = alpha * O + P V
      m      = m_new
    O, LSE = O / l, (m + log2 l) * ln 2            O = 0, LSE = -inf where l = 0
    ```
  }];
  let dependentDialects = ["::attnc::attn::AttnDialect", "::mlir::arith::ArithDialect"];
}

def AttnPrepareForEmission : Pass<"attn-prepare-for-emission"> {
  let summary = "Legalize the flash loop so that the target printers decide nothing";
  let description = [{
    Sets the form of every `attn.mask_tile` from its loop's schedule
    (`"band"`: the closed-form predicate of the band; `"bitmask"`: the
    launch-time table's per-tile bits), and checks that every op left is one
    the printers know (func, arith index constants and division, the
    attn.flash_loop family); anything else is an error naming the op.

    Before: `%s1 = attn.mask_tile %s tile(%qt, %kt) if(%partial) : tensor<128x64xf32>`
    After: `%s1 = attn.mask_tile %s tile(%qt, %kt) if(%partial) {form = "band"} : tensor<128x64xf32>`
  }];
  let dependentDialects = ["::attnc::attn::AttnDialect"];
}

#endif // ATTNC_PASSES_TD
