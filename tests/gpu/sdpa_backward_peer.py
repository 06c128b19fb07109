"""Times FlashAttention-2's backward (PyTorch SDPA, flash backend) on the shapes of the backward
reference kernel's benchmark (test_backward_reference.cu --bench: B2 H16 N8192, D128 and D64,
causal and dense, bf16), on the same GPU: CUDA events around torch.autograd.grad of one forward's
output (the forward is not timed), 3 warm-ups, median of 10. Useful FLOPs = 2.5x the forward's
4*B*H*D*allowed_pairs, as FlashAttention counts them.

    python3 tests/gpu/sdpa_backward_peer.py
"""

import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

B, H, N = 2, 16, 8192
WARMUPS, RUNS = 3, 10


def bench_backward(d, causal, backend, name):
    torch.manual_seed(0)
    # The reference kernel's layout is [B, N, H, D]; SDPA takes [B, H, N, D] views of it.
    q, k, v = (torch.randn(B, N, H, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    do = torch.randn(B, N, H, d, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    pairs = N * (N + 1) // 2 if causal else N * N
    flops = 2.5 * 4.0 * B * H * d * pairs
    with sdpa_kernel(backend):
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=causal)
        run = lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True)
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
    mask = "causal" if causal else "dense"
    print(f"PEER backward {name} {mask} bf16 B{B} H{H} N{N} D{d}: median {ms:.3f} ms "
          f"(min {min(times):.3f}) = {flops / (ms * 1e-3) / 1e12:.1f} TFLOP/s", flush=True)


def main():
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    for d in (128, 64):
        for causal in (True, False):
            for name, backend in (("sdpa_flash", SDPBackend.FLASH_ATTENTION),
                                  ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
                try:
                    bench_backward(d, causal, backend, name)
                except Exception as error:  # a backend may be unavailable for these inputs
                    print(f"PEER backward {name} D{d}: not run ({type(error).__name__}: {error})")


if __name__ == "__main__":
    main()
