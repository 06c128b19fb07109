"""attnc against its peers on the GPU, in one process, on the same inputs.

For every case of PEERS.md (bench/specs/*.json), times the attnc kernel (through
libattnrt's C API with ctypes: no build step beyond the runtime), FlexAttention
(torch.compile'd flex_attention with create_block_mask) and SDPA (flash and
cuDNN backends, dense and causal cases only), with CUDA events: warm-up, then
the median of REPEATS runs, fresh random inputs (never zeros). Prints useful
TFLOP/s (4 * B * Hq * D * allowed_pairs / time forward; with --backward the
forward and backward together, 14 * B * Hq * D * allowed_pairs / time, the
backward counted as 2.5x the forward as FlashAttention does) and attnc's ratio
to each peer, and writes bench/results/<date>-<gpu>[-backward].json and .md
with the date, GPU and commit. The peers' backward is autograd's
(torch.autograd.grad of their output with the same dO).

    python3 bench/bench.py --lib build-gpu/runtime/libattnrt.so \
        --packages bench/packages --out bench/results [--cases dense,sparse] [--backward]

bench/packages/<case>/ holds the CUDA kernel package and report.json made by
bench/make_packages.sh (attnc needs MLIR, so packages are made where it is).
"""
import argparse, ctypes, datetime, json, math, os, statistics, sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

REPEATS = 10
WARMUP = 3
DENSE = ["dense_h16_n8192_d128", "causal_h16_n8192_d128", "dense_h32_n4096_d64",
         "causal_h32_n4096_d64", "gqa_causal_h32kv8_n8192_d128", "mqa_causal_h32kv1_n8192_d128"]
SPARSE = ["causal_window1024_n16384", "window256_n16384", "dilated256x2_n16384",
          "window256_global512_n16384", "bigbird128_n16384"]
BATCH = {"dense_h16_n8192_d128": 2, "causal_h16_n8192_d128": 2, "dense_h32_n4096_d64": 4,
         "causal_h32_n4096_d64": 4, "gqa_causal_h32kv8_n8192_d128": 2,
         "mqa_causal_h32kv1_n8192_d128": 2}


# ---- libattnrt through ctypes -------------------------------------------------------------

class TensorView(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("shape", ctypes.c_int64 * 4),
                ("strides", ctypes.c_int64 * 4), ("rank", ctypes.c_int32),
                ("dtype", ctypes.c_int32)]


DTYPES = {torch.bfloat16: 1, torch.float16: 2, torch.float32: 3}


def view(t):
    """A kernel_abi.h tensor view of a CUDA tensor (strides in elements)."""
    v = TensorView()
    v.data = t.data_ptr()
    v.rank = t.dim()
    v.dtype = DTYPES[t.dtype]
    for i in range(t.dim()):
        v.shape[i] = t.shape[i]
        v.strides[i] = t.stride(i)
    return v


class Runtime:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.lib.attnrt_last_error.restype = ctypes.c_char_p
        P = ctypes.c_void_p
        self.lib.attnrt_package_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(P)]
        self.lib.attnrt_kernel_create.argtypes = [P, P, ctypes.POINTER(P)]
        V = ctypes.POINTER(TensorView)
        self.lib.attnrt_forward_async.argtypes = [P, V, V, V, V, V, P, ctypes.c_int64,
                                                  ctypes.c_int32, P]
        self.lib.attnrt_backward_async.argtypes = [P, V, V, V, V, V, V, V, V, V, P,
                                                   ctypes.c_int64, ctypes.c_int32, P]

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: {self.lib.attnrt_last_error().decode()}")

    def kernel(self, package_dir):
        package, kernel = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.lib.attnrt_package_load(package_dir.encode(), ctypes.byref(package)),
                   package_dir)
        self.check(self.lib.attnrt_kernel_create(package, None, ctypes.byref(kernel)), package_dir)
        return kernel

    def forward(self, kernel, q, k, v, o, lse):
        views = [view(t) for t in (q, k, v, o, lse)]
        stream = torch.cuda.current_stream().cuda_stream
        self.check(self.lib.attnrt_forward_async(kernel, *[ctypes.byref(x) for x in views], None, 0,
                                                 0, ctypes.c_void_p(stream)), "forward")

    def backward(self, kernel, q, k, v, o, lse, do, dq, dk, dv):
        views = [view(t) for t in (q, k, v, o, lse, do, dq, dk, dv)]
        stream = torch.cuda.current_stream().cuda_stream
        self.check(self.lib.attnrt_backward_async(kernel, *[ctypes.byref(x) for x in views], None,
                                                  0, 0, ctypes.c_void_p(stream)), "backward")


# ---- the masks, as FlexAttention mask_mods with attnc's semantics -------------------------

def mask_mod(spec, device):
    """The spec's mask as a FlexAttention mask_mod (Nq == Nk here, so p = i)."""
    m = spec["mask"]
    if "causal" in m:
        return lambda b, h, q, k: q >= k
    if "window" in m:
        w = m["window"]
        left, right, d = w["left"], w["right"], w.get("dilation", 1)
        return lambda b, h, q, k: ((q - k) <= left * d) & ((k - q) <= right * d) & ((q - k) % d == 0)
    if "union" in m:  # window 256 + global every 512th token
        w = m["union"][0]["window"]
        stride = m["union"][1]["global"]["stride"]
        return lambda b, h, q, k: (((q - k).abs() <= w["left"]) | (q % stride == 0) |
                                   (k % stride == 0))
    if "block_sparse" in m:
        block = m["block_sparse"]["block"]
        rows = json.load(open(os.path.join(os.path.dirname(spec["__path"]),
                                           m["block_sparse"]["file"])))["layout"]
        lay = torch.zeros(len(rows), len(rows), dtype=torch.bool)
        for i, cols in enumerate(rows):
            lay[i, cols] = True
        lay = lay.to(device)
        return lambda b, h, q, k: lay[q // block, k // block]
    return None  # full


# ---- timing ------------------------------------------------------------------------------

def bench(fn):
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(REPEATS)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(REPEATS)]
    for s, e in zip(starts, ends):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))


def run_case(rt, name, args, flex):
    spec_path = os.path.join(args.specs, name + ".json")
    spec = json.load(open(spec_path))
    spec["__path"] = spec_path
    report = json.load(open(os.path.join(args.packages, name, "report.json")))
    B = BATCH.get(name, 1)
    N, Hq, Hkv, D = spec["seq_len"]["q"], spec["heads"]["query"], spec["heads"]["kv"], spec["head_dim"]
    flops = (14 if args.backward else 4) * B * Hq * D * report["allowed_pairs"]
    dev = "cuda"
    torch.manual_seed(0)
    q = torch.randn(B, N, Hq, D, device=dev, dtype=torch.bfloat16)
    k = torch.randn(B, N, Hkv, D, device=dev, dtype=torch.bfloat16)
    v = torch.randn(B, N, Hkv, D, device=dev, dtype=torch.bfloat16)
    o = torch.empty_like(q)
    lse = torch.empty(B, Hq, N, device=dev, dtype=torch.float32)
    # Peers take [B, H, N, D]: views of the same memory.
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
    gqa = Hq != Hkv
    rec = {"case": name, "B": B, "N": N, "Hq": Hq, "Hkv": Hkv, "D": D,
           "density": report["density"], "allowed_pairs": report["allowed_pairs"]}

    kernel = rt.kernel(os.path.join(args.packages, name))
    if args.backward:
        do = torch.randn_like(q)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)

        def attnc_fn():
            rt.forward(kernel, q, k, v, o, lse)
            rt.backward(kernel, q, k, v, o, lse, do, dq, dk, dv)
    else:
        attnc_fn = lambda: rt.forward(kernel, q, k, v, o, lse)
    attnc_fn()
    torch.cuda.synchronize()
    peers = {}
    mm = mask_mod(spec, dev)
    if "full" in spec["mask"] or "causal" in spec["mask"]:
        causal = "causal" in spec["mask"]
        for peer, backend in (("sdpa_flash", SDPBackend.FLASH_ATTENTION),
                              ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
            def f(backend=backend):
                with sdpa_kernel([backend]):
                    return F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal,
                                                          enable_gqa=gqa)
            peers[peer] = f
    block_mask = None if mm is None else create_block_mask(mm, None, None, N, N, device=dev)
    peers["flex"] = lambda: flex(qt, kt, vt, block_mask=block_mask, enable_gqa=gqa)

    if args.backward:
        # Forward and backward through autograd, on leaf copies of the inputs.
        qg, kg, vg = (x.detach().clone().requires_grad_() for x in (qt, kt, vt))
        dot = do.transpose(1, 2)

        def with_backward(f):
            def fb():
                out = f(qg, kg, vg)
                return torch.autograd.grad(out, (qg, kg, vg), dot)
            return fb
        forwards = peers
        peers = {}
        for peer in list(forwards):
            if peer == "flex":
                peers[peer] = with_backward(
                    lambda a, b, c: flex(a, b, c, block_mask=block_mask, enable_gqa=gqa))
            else:
                backend = (SDPBackend.FLASH_ATTENTION if peer == "sdpa_flash"
                           else SDPBackend.CUDNN_ATTENTION)
                causal = "causal" in spec["mask"]

                def sd(a, b, c, backend=backend, causal=causal):
                    with sdpa_kernel([backend]):
                        return F.scaled_dot_product_attention(a, b, c, is_causal=causal,
                                                              enable_gqa=gqa)
                peers[peer] = with_backward(sd)
        # Correctness spot check of the gradients against the first peer.
        grads = next(iter(peers.values()))()
        for nm, mine, ref in zip(("dq", "dk", "dv"), (dq, dk, dv), grads):
            ref = ref.transpose(1, 2).float()
            rec[f"{nm}_max_abs_diff_vs_peer"] = float((mine.float() - ref).abs().max())
            rec[f"{nm}_rel_l2_vs_peer"] = float((mine.float() - ref).norm() / ref.norm())
    else:
        # Correctness spot check against the first peer (same inputs).
        ref = next(iter(peers.values()))().transpose(1, 2).float()
        rec["max_abs_diff_vs_peer"] = float((o.float() - ref).abs().max())
    rec["attnc_ms"] = bench(attnc_fn)
    rec["attnc_tflops"] = flops / rec["attnc_ms"] / 1e9
    for peer, f in peers.items():
        try:
            ms = bench(f)
            rec[f"{peer}_ms"] = ms
            rec[f"{peer}_tflops"] = flops / ms / 1e9
            rec[f"ratio_vs_{peer}"] = ms / rec["attnc_ms"]
        except Exception as ex:  # a peer that cannot run this case is recorded, not fatal
            rec[f"{peer}_error"] = f"{type(ex).__name__}: {str(ex)[:160]}"
    print(json.dumps(rec), flush=True)
    return rec


def markdown(meta, rows):
    out = [f"# attnc vs peers: {meta['date']}, {meta['gpu']}, commit {meta['commit']}", "",
           f"PyTorch {meta['torch']}; {meta['pass']}, bf16; useful TFLOP/s = "
           f"{meta['flops_per_pair_dim']}*B*Hq*D*allowed_pairs/time;"
           f" median of {REPEATS} after {WARMUP} warm-up runs; ratio = peer time / attnc time.", "",
           "| case | density | attnc | sdpa_flash | sdpa_cudnn | flex | vs flash | vs cudnn | vs flex |",
           "|---|---|---|---|---|---|---|---|---|"]
    f = lambda r, k: f"{r[k]:.0f}" if k in r else "-"
    g = lambda r, k: f"{r[k]:.2f}x" if k in r else "-"
    for r in rows:
        out.append(f"| {r['case']} | {r['density']:.3f} | {f(r, 'attnc_tflops')} | "
                   f"{f(r, 'sdpa_flash_tflops')} | {f(r, 'sdpa_cudnn_tflops')} | {f(r, 'flex_tflops')} | "
                   f"{g(r, 'ratio_vs_sdpa_flash')} | {g(r, 'ratio_vs_sdpa_cudnn')} | "
                   f"{g(r, 'ratio_vs_flex')} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", required=True, help="path to libattnrt.so")
    ap.add_argument("--packages", required=True, help="bench/packages made by make_packages.sh")
    ap.add_argument("--specs", default=os.path.join(os.path.dirname(__file__), "specs"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    ap.add_argument("--cases", default="dense,sparse", help="dense, sparse or case names")
    ap.add_argument("--backward", action="store_true",
                    help="time forward + backward (packages made with \"backward\": true)")
    args = ap.parse_args()
    names = []
    for c in args.cases.split(","):
        names += DENSE if c == "dense" else SPARSE if c == "sparse" else [c]
    torch.backends.cuda.matmul.allow_tf32 = False
    # Every case brings new mask closures: let torch.compile keep them all
    # (past its default limit it silently falls back to unfused flex_attention).
    torch._dynamo.config.cache_size_limit = 256
    torch._dynamo.config.accumulated_cache_size_limit = 4096
    rt = Runtime(args.lib)
    flex = torch.compile(flex_attention, dynamic=False)
    commit_file = os.path.join(args.packages, "COMMIT")
    meta = {"date": datetime.date.today().isoformat(), "gpu": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "commit": open(commit_file).read().strip() if os.path.exists(commit_file) else "unknown",
            "pass": "forward+backward" if args.backward else "forward",
            "flops_per_pair_dim": 14 if args.backward else 4}
    print(json.dumps(meta), flush=True)
    rows = []
    for name in names:
        try:
            rows.append(run_case(rt, name, args, flex))
        except Exception as ex:
            rows.append({"case": name, "error": f"{type(ex).__name__}: {str(ex)[:300]}"})
            print(json.dumps(rows[-1]), flush=True)
        torch.cuda.empty_cache()
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"{meta['date']}-{meta['gpu'].replace(' ', '_')}" +
                        ("-backward" if args.backward else ""))
    json.dump({"meta": meta, "rows": rows}, open(stem + ".json", "w"), indent=1)
    open(stem + ".md", "w").write(markdown(meta, [r for r in rows if "attnc_tflops" in r]))
    print(markdown(meta, [r for r in rows if "attnc_tflops" in r]))


if __name__ == "__main__":
    main()
