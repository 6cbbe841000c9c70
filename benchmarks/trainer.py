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
from mlplab.data.dataset import Dataset, load_dataset
from mlplab.training.callbacks import Callback


def load_mnist(train_size: int | None = None) -> Dataset:
    """MNIST on the CPU, or its first `train_size` training images for smoke runs."""
    data = load_dataset("mnist", download=False)
    if train_size:
        data = replace(data, train=data.train.subset(torch.arange(train_size)))
    return data


class _Timer(Callback):
    """Emits each evaluation with the training time of its segment; stops the run once it
    reaches `stop_at` test accuracy (through the callback protocol, not by raising)."""

    def __init__(self, emit, data_size: int, batch_size: int, stop_at: float | None):
        self.emit, self.stop_at = emit, stop_at
        self.epoch_size = data_size / batch_size  # steps per epoch, as a float
        self.segment_start = time.perf_counter()
        self.last_step = None

    def on_step(self, trainer) -> None:
        self.last_step = time.perf_counter()

    def on_evaluate(self, trainer, evaluation) -> None:
        record = evaluation.record
        now = time.perf_counter()
        seconds = self.last_step - self.segment_start
        self.segment_start = now
        self.emit(
            {
                "kind": "eval",
                "epoch": record["iteration"] / self.epoch_size,
                "segment_seconds": seconds,
                "test_accuracy": record["test_accuracy"],
                "train_loss": record["train_loss"],
            }
        )
        if self.stop_at is not None and record["test_accuracy"] >= self.stop_at:
            trainer.stop(f"reached {self.stop_at}% test accuracy")


def run(params: dict, emit) -> None:
    """Train with TrainConfig(**params["config"]), emitting every evaluation.

    params: config (TrainConfig fields), train_size (smoke runs), stop_at (end the run at
    the first evaluation with at least this test accuracy).
    """
    data = load_mnist(params.get("train_size"))
    config = TrainConfig(**params["config"])
    timer = _Timer(emit, len(data.train), config.batch_size, params.get("stop_at"))
    emit({"kind": "ready"})
    train(config, data, callbacks=[timer])
