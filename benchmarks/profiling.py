"""torch.profiler summaries of mlplab's trainer, for the targets that were missed.

A short run of each recipe under the profiler; the table lists operators by their own CPU
time, which says whether the time goes to matmuls (the hardware), to elementwise work, or
to the Python around them.
"""

from __future__ import annotations

import time

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.trainer import load_mnist
from mlplab import TrainConfig, train


def run(params: dict, emit) -> None:
    """Child entry: one `profile` record per labelled config, holding the table text."""
    data = load_mnist(params.get("train_size"))
    for item in params["runs"]:
        config = TrainConfig(**item["config"])
        train(config.replace(iterations=3), data)  # imports, allocator
        start = time.perf_counter()
        with profile(activities=_activities(config.device)) as prof:
            train(config, data)
        seconds = time.perf_counter() - start
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=params["rows"])
        emit({"kind": "profile", "label": item["label"], "seconds": seconds, "table": table})


def _activities(device: str) -> list:
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
