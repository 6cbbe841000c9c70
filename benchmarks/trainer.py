"""mlplab's own trainer, unchanged, timed from outside through its callbacks.

Each evaluation record is stamped when mlplab hands it over (after the test pass). The
training time of a segment is measured from the end of the previous evaluation to the last
optimizer step before this one, so evaluations are not counted as training; the first
segment also holds the setup inside train() (model, optimizer, and what they import).
"""

from __future__ import annotations

import time

import torch

from benchmarks.fastloop import load_mnist
from mlplab import TrainConfig, train


def run(params: dict, emit) -> None:
    """Train with TrainConfig(**params["config"]) on the CPU, emitting every evaluation."""
    data = load_mnist(params.get("train_size"))
    config = TrainConfig(**params["config"])
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

    emit({"kind": "ready"})
    train(config, data, torch.device("cpu"), on_record=on_record, on_step=on_step)
