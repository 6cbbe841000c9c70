"""Data parallelism on this machine: 1 process x 2 threads against 2 ranks x 1 thread.

Claim measured, not assumed: on two CPU cores, two gloo ranks train at least as many samples
per second as one process with two threads. Each run times its steps from the 10th to the
last (evaluation only at the end, so not timed), and the time inside the per-step
all-reduce. Run it through `make bench`, or alone:
python -m torch.distributed.run --standalone --nproc-per-node 2 -m benchmarks.child parallel '{}' 0
"""

from __future__ import annotations

import contextlib
import os
import time

import torch

from benchmarks.timing import Timed
from benchmarks.trainer import load_mnist
from mlplab import TrainConfig
from mlplab.training.callbacks import Callback
from mlplab.training.distributed import StepReducer, from_environment, process_group
from mlplab.training.trainer import Trainer

WARMUP = 10


class _Stamps(Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_step(self, trainer) -> None:
        self.times.append(time.perf_counter())


def _timed_reducer() -> list[float]:
    """Wrap StepReducer.__call__ (in this process only): the list of its seconds per step."""
    spent: list[float] = []
    Timed(StepReducer, "__call__", spent.append)
    return spent


def run(params: dict, emit) -> None:
    """Child entry: one `parallel` record from rank 0 (or the single process)."""
    job = from_environment(os.environ)
    data = load_mnist(params.get("train_size"))
    config = TrainConfig(**params["config"])
    stamps, spent = _Stamps(), _timed_reducer()
    threads = config.threads or (job.threads() if job else torch.get_num_threads())
    with process_group(job) if job else contextlib.nullcontext():
        Trainer(config, data, callbacks=[stamps], dist=job).run()
    if job is not None and not job.main:
        return
    steps = len(stamps.times) - WARMUP
    seconds = stamps.times[-1] - stamps.times[WARMUP - 1]
    emit(
        {
            "kind": "parallel",
            "ranks": job.world_size if job else 1,
            "threads": threads,
            "steps": steps,
            "samples_per_s": steps * config.batch_size / seconds,
            "step_ms": seconds / steps * 1000,
            "allreduce_share": sum(spent[WARMUP:]) / seconds if spent else 0.0,
        }
    )
