"""Callbacks: every hook fires in order, a callback stops training at its step, and early
stopping, the best checkpoint and the metrics log are callbacks, not loop code."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import head
from mlplab.config import TrainConfig
from mlplab.data.dataset import Dataset
from mlplab.training.callbacks import (
    BestByValidation,
    Callback,
    EarlyStopping,
    MetricsLog,
    final_record,
)
from mlplab.training.trainer import Trainer, train


@pytest.fixture(scope="module")
def small(mnist) -> Dataset:
    return head(mnist, 1000, 500)


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"preset": "c", "device": "cpu", "batch_size": 100, **kw})


class Recorder(Callback):
    """Every hook call, as (hook, iteration)."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, trainer):
        self.calls.append(("begin", trainer.state.iteration))

    def on_step(self, trainer):
        self.calls.append(("step", trainer.state.iteration))

    def on_evaluate(self, trainer, evaluation):
        self.calls.append(("evaluate", evaluation.iteration))

    def on_epoch_end(self, trainer, record):
        self.calls.append(("epoch", record["iteration"]))

    def on_train_end(self, trainer, result):
        self.calls.append(("end", result.iterations))


def test_hooks_fire_in_order(small):
    recorder = Recorder()
    train(cfg(iterations=12, eval_every=5), small, callbacks=[recorder])
    calls = recorder.calls
    assert calls[0] == ("begin", 0) and calls[-1] == ("end", 12)
    assert [it for hook, it in calls if hook == "step"] == list(range(1, 13))
    assert [it for hook, it in calls if hook == "evaluate"] == [5, 10, 12]
    assert [it for hook, it in calls if hook == "epoch"] == [10, 12]  # 10 steps an epoch
    # an evaluation due at an epoch's last step comes before the epoch's end
    assert calls.index(("evaluate", 10)) < calls.index(("epoch", 10))


class StopAt(Callback):
    def __init__(self, iteration: int):
        self.iteration = iteration

    def on_step(self, trainer):
        if trainer.state.iteration == self.iteration:
            trainer.stop(f"asked to stop at {self.iteration}")


def test_a_callback_stops_training_at_that_step(small):
    result = train(cfg(iterations=100, eval_every=5), small, callbacks=[StopAt(7)])
    assert result.iterations == 7
    assert result.stopped_early and result.stop_reason == "asked to stop at 7"
    evals = [r["iteration"] for r in result.history if r["kind"] == "eval"]
    assert evals == [5, 7]  # the stopping step is evaluated, and the result is its model
    assert result.test.accuracy == result.history[-2]["test_accuracy"]
    assert result.history[-1] == {**result.history[-1], "kind": "epoch", "iteration": 7}


def test_a_stop_asked_at_an_evaluation_needs_no_second_one(small):
    class StopOnEvaluate(Callback):
        def on_evaluate(self, trainer, evaluation):
            if evaluation.iteration == 10:
                trainer.stop("enough")

    result = train(cfg(iterations=100, eval_every=5), small, callbacks=[StopOnEvaluate()])
    assert result.iterations == 10
    assert [r["iteration"] for r in result.history if r["kind"] == "eval"] == [5, 10]


def test_early_stopping_and_the_best_checkpoint_are_callbacks(small):
    trainer = Trainer(cfg(iterations=10, val_size=100, patience=2), small)
    kinds = [type(c) for c in trainer.callbacks]
    assert kinds == [BestByValidation, EarlyStopping]
    assert trainer.best is trainer.callbacks[0]
    # without a validation split there is nothing to watch, and no callback
    assert Trainer(cfg(iterations=10), small).callbacks == []


def test_early_stopping_counts_evaluations_without_improvement():
    stopper = EarlyStopping(patience=2)

    class Fake:
        reason = None

        def stop(self, reason, early=True):
            self.reason = reason

    class Val:
        def __init__(self, accuracy):
            self.accuracy = accuracy

    class Ev:
        def __init__(self, accuracy):
            self.val = Val(accuracy)

    trainer = Fake()
    for accuracy in (50.0, 60.0, 60.0, 70.0, 65.0):
        stopper.on_evaluate(trainer, Ev(accuracy))
        assert trainer.reason is None
    stopper.on_evaluate(trainer, Ev(69.9))
    assert trainer.reason == "early stopping: no validation improvement in 2 evaluations"
    assert stopper.state_dict() == {"best": 70.0, "bad_evaluations": 2}


def test_metrics_log_writes_each_record_and_the_final_line(small, tmp_path):
    path = tmp_path / "metrics.jsonl"
    result = train(cfg(iterations=12, eval_every=5), small, callbacks=[MetricsLog(path)])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[:-1] == result.history
    assert lines[-1] == final_record(result)
    assert lines[-1]["kind"] == "final" and lines[-1]["engine"] == "fast"


def test_training_leaves_the_callers_random_stream_alone(small):
    """Init, shuffling, augmentation and dropout each have their own seeded stream."""
    config = cfg(model="784-32-10:relu,dropout=0.3", preset=None, augment="shift", iterations=5)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(config, small)
    assert torch.equal(torch.rand(3), expected)
