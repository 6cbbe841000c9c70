"""This machine's float32 matmul peak, measured with torch.mm, and what a training run gets of it.

Square matrices, warmed up, the median of several calls into a preallocated output. Training
is counted at 6 x parameters x samples FLOPs (2 forward, 4 backward per weight), the usual
approximation; it slightly overcounts the first layer, whose input needs no gradient.
"""

from __future__ import annotations

import statistics
import time

import torch


def matmul_gflops(n: int, repeats: int, warmup: int = 2, device: str = "cpu") -> float:
    """Median GFLOP/s of torch.mm on (n, n) float32 matrices on the device."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        torch.mm(a, b, out=c)
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        torch.mm(a, b, out=c)
        sync()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def run(params: dict, emit) -> None:
    """Child entry: one record per (threads, size)."""
    for threads in params["thread_counts"]:
        torch.set_num_threads(threads)
        for n in params["sizes"]:
            # Fewer calls for big sizes: 4096^3 is over a second on two slow cores.
            repeats = params["repeats"] if n <= 2048 else max(3, params["repeats"] // 3)
            emit(
                {
                    "kind": "matmul",
                    "threads": threads,
                    "size": n,
                    "gflops": matmul_gflops(n, repeats, device=params.get("device", "cpu")),
                }
            )


def training_flops(params: int, samples: int) -> float:
    return 6.0 * params * samples


def count_params(sizes: list[int]) -> int:
    """Weights and biases of a dense MLP with these layer sizes."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
