"""Times the peer of the reference kernel's benchmark on the same GPU: PyTorch SDPA
(flash backend = FlashAttention-2, and cuDNN) on causal GQA Hq32/Hkv8 B2 N8192 D128
bf16, with CUDA events (3 warm-ups, median of 10), as PEERS.md measures it.

    python3 tests/gpu/sdpa_peer.py
"""

import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

B, HQ, HKV, N, D = 2, 32, 8, 8192, 128
WARMUPS, RUNS = 3, 10


def main():
    torch.manual_seed(0)
    # SDPA takes [B, H, N, D]; the layout of the reference kernel is [B, N, H, D].
    q = torch.randn(B, N, HQ, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    k = torch.randn(B, N, HKV, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    v = torch.randn(B, N, HKV, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    allowed_pairs = N * (N + 1) // 2
    flops = 4.0 * B * HQ * D * allowed_pairs
    for name, backend in (("sdpa_flash", SDPBackend.FLASH_ATTENTION),
                          ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
        try:
            with sdpa_kernel(backend):
                run = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
                for _ in range(WARMUPS):
                    run()
                torch.cuda.synchronize()
                times = []
                for _ in range(RUNS):
                    start = torch.cuda.Event(enable_timing=True)
                    stop = torch.cuda.Event(enable_timing=True)
                    start.record()
                    run()
                    stop.record()
                    stop.synchronize()
                    times.append(start.elapsed_time(stop))
            ms = statistics.median(times)
            print(f"PEER {name} causal GQA B{B} Hq{HQ}/Hkv{HKV} N{N} D{D}: median {ms:.3f} ms "
                  f"(min {min(times):.3f}) = {flops / (ms * 1e-3) / 1e12:.1f} TFLOP/s")
        except Exception as error:  # a backend may be unavailable for these inputs
            print(f"PEER {name}: not run ({type(error).__name__}: {error})")


if __name__ == "__main__":
    main()
