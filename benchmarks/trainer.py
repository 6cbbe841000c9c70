"""mlplab's own trainer, unchanged, timed from outside through its callbacks.

Each evaluation record is stamped when mlplab hands it over (after the test pass). The
training time of a segment is measured from the end of the previous evaluation to the last
optimizer step before this one, so evaluations are not counted as training; the first
segment also holds the setup inside train() (model, optimizer, and what they import).
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from mlplab import TrainConfig, train
from mlplab.data import Dataset, load_dataset


def load_mnist(train_size: int | None = None) -> Dataset:
    """MNIST on the CPU, or its first `train_size` training images for smoke runs."""
    data = load_dataset("mnist", download=False)
    if train_size:
        data = replace(data, train=data.train.subset(torch.arange(train_size)))
    return data


class _Reached(Exception):
    """Raised from a callback to end a run once it has reached the accuracy asked about."""


def run(params: dict, emit) -> None:
    """Train with TrainConfig(**params["config"]), emitting every evaluation.

    params: config (TrainConfig fields), train_size (smoke runs), stop_at (end the run at
    the first evaluation with at least this test accuracy).
    """
    data = load_mnist(params.get("train_size"))
    config = TrainConfig(**params["config"])
    stop_at = params.get("stop_at")
    mark = {"segment_start": time.perf_counter(), "last_step": None}

    def on_step(iteration: int, total: int):
        mark["last_step"] = time.perf_counter()

    def on_record(record: dict):
        if record["kind"] != "eval":
            return
        now = time.perf_counter()
        seconds = mark["last_step"] - mark["segment_start"]
        mark["segment_start"] = now
        emit(
            {
                "kind": "eval",
                "epoch": record["iteration"] * config.batch_size / len(data.train),
                "segment_seconds": seconds,
                "test_accuracy": record["test_accuracy"],
                "train_loss": record["train_loss"],
            }
        )
        if stop_at is not None and record["test_accuracy"] >= stop_at:
            raise _Reached

    emit({"kind": "ready"})
    try:
        train(config, data, on_record=on_record, on_step=on_step)
    except _Reached:
        pass
