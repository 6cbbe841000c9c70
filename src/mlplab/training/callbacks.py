"""Callbacks: what varies around the training loop hooks in here, not into the loop.

The Trainer calls each callback at the start, after every optimizer step, after every
evaluation, at the end of every epoch, at the end of every iteration (when the state is
whole and can be saved), when it is interrupted, and at the end; and a run that writes a
run directory calls on_saved once its model is written. A callback may ask training
to stop (`trainer.stop(reason)`); training then ends cleanly at that step, with a final
evaluation if the step had none. Nothing raises out of `train` to stop it.

A callback with state (the best weights so far, a patience counter) returns it from
state_dict(), so a saved run continues exactly. Its `name` keys that state.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from mlplab.errors import CheckpointError
from mlplab.io.atomic import append_line, atomic_write_text
from mlplab.io.states import prune_states, save_state, state_path
from mlplab.training.evaluate import Metrics
from mlplab.training.state import TrainState


class TrainerView(Protocol):
    """What a callback may use of the Trainer that calls it (the Trainer imports this module,
    so this one names only the Trainer's surface, never the class)."""

    state: TrainState
    total: int  # the iterations the run is planned for

    @property
    def finished(self) -> bool: ...

    def eval_module(self) -> torch.nn.Module: ...

    def model(self) -> torch.nn.Module: ...

    def last_grads(self) -> list[torch.Tensor | None]: ...

    def stop(self, reason: str, early: bool = True) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...


class ResultView(Protocol):
    """What the metrics log reads of a finished run's TrainResult."""

    iterations: int
    test: Metrics | None
    val: Metrics | None
    seconds: float
    engine: str
    best_iteration: int | None
    stop_reason: str | None


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: its record (as logged) and the metrics behind it."""

    record: dict[str, Any]
    val: Metrics | None
    test: Metrics | None

    @property
    def iteration(self) -> int:
        return self.record["iteration"]


class Callback:
    """The protocol; every hook is optional. Override what you need."""

    name: str = ""  # set it when the callback has state to save

    def on_train_begin(self, trainer: TrainerView) -> None:
        pass

    def on_step(self, trainer: TrainerView) -> None:
        """After each optimizer step; trainer.state.iteration counts the steps taken."""

    def on_evaluate(self, trainer: TrainerView, evaluation: Evaluation) -> None:
        pass

    def on_epoch_end(self, trainer: TrainerView, record: dict[str, Any]) -> None:
        pass

    def on_iteration_end(self, trainer: TrainerView) -> None:
        """After everything an iteration does: the state is whole, and saving it here lets a
        run continue exactly."""

    def on_interrupt(self, trainer: TrainerView) -> None:
        """Training pauses after this iteration (trainer.interrupt); run() raises next."""

    def on_train_end(self, trainer: TrainerView, result: ResultView) -> None:
        pass

    def on_saved(self, trainer: TrainerView, run_dir: Path) -> None:
        """After a run directory is whole: its model written (never without one, so never on
        a data-parallel run's other ranks)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class BestByValidation(Callback):
    """Keeps the weights and metrics of the evaluation with the best validation accuracy."""

    name = "best"

    def __init__(self):
        self.accuracy = -math.inf
        self.iteration: int | None = None
        self.weights: dict[str, torch.Tensor] | None = None
        self.val: Metrics | None = None
        self.test: Metrics | None = None

    def on_evaluate(self, trainer: TrainerView, evaluation: Evaluation) -> None:
        val = evaluation.val
        if val is None or not val.accuracy > self.accuracy:
            return
        state = trainer.eval_module().state_dict()  # the weight average's, with ema
        self.weights = {k: v.detach().clone() for k, v in state.items()}
        self.accuracy, self.iteration = val.accuracy, evaluation.iteration
        self.val, self.test = val, evaluation.test

    def state_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy if self.iteration is not None else None,
            "iteration": self.iteration,
            "weights": self.weights,
            "val": self.val.to_dict() if self.val else None,
            "test": self.test.to_dict() if self.test else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = state["iteration"]
        self.accuracy = -math.inf if self.iteration is None else float(state["accuracy"])
        self.weights = state["weights"]
        self.val = Metrics.from_dict(state["val"]) if state["val"] else None
        self.test = Metrics.from_dict(state["test"]) if state["test"] else None


class EarlyStopping(Callback):
    """Stops training after `patience` evaluations in a row without a better validation
    accuracy than the best so far."""

    name = "early_stopping"

    def __init__(self, patience: int):
        self.patience = patience
        self.best = -math.inf
        self.bad_evaluations = 0

    def on_evaluate(self, trainer: TrainerView, evaluation: Evaluation) -> None:
        if evaluation.val is None:
            return
        if evaluation.val.accuracy > self.best:
            self.best, self.bad_evaluations = evaluation.val.accuracy, 0
            return
        self.bad_evaluations += 1
        if self.bad_evaluations >= self.patience:
            trainer.stop(
                f"early stopping: no validation improvement in {self.patience} evaluations",
                early=True,
            )

    def state_dict(self) -> dict[str, Any]:
        best = None if self.best == -math.inf else self.best
        return {"best": best, "bad_evaluations": self.bad_evaluations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = -math.inf if state["best"] is None else float(state["best"])
        self.bad_evaluations = int(state["bad_evaluations"])


class MetricsLog(Callback):
    """Appends each record to a JSON-lines file as it is made, and a `final` line at the end.

    Each line goes out in one write() of the whole line, so a crash leaves at most an
    unfinished last line, which mlplab.io.rundir.read_metrics ignores. At the start the file
    is rewritten, atomically, from the records the trainer already holds: none for a new
    run, those of the saved state for a resumed one, so that records made after that state
    are dropped and made again.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_begin(self, trainer: TrainerView) -> None:
        atomic_write_text(self.path, "".join(_line(r) for r in trainer.state.records))

    def _append(self, record: dict[str, Any]) -> None:
        append_line(self.path, _line(record))

    def on_evaluate(self, trainer: TrainerView, evaluation: Evaluation) -> None:
        self._append(evaluation.record)

    def on_epoch_end(self, trainer: TrainerView, record: dict[str, Any]) -> None:
        self._append(record)

    def on_train_end(self, trainer: TrainerView, result: ResultView) -> None:
        self._append(final_record(result))


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record) + "\n"


class StateCheckpoints(Callback):
    """Saves the whole training state to FOLDER/<iteration>/ and keeps the newest `keep`.

    It saves every `every` iterations (None: after every evaluation; 0: never on a
    schedule), at the last iteration before the run finishes (so the run can be extended),
    and when training is interrupted. A failed write (a full disk, a read-only folder)
    stops training with an error that names the path; the previous state stays valid.
    """

    def __init__(self, folder: str | Path, every: int | None = None, keep: int = 2):
        self.folder, self.every, self.keep = Path(folder), every, keep
        self.saved: int | None = None

    def on_iteration_end(self, trainer: TrainerView) -> None:
        s = trainer.state
        if self.every is None:
            due = s.last_eval == s.iteration
        else:
            due = self.every > 0 and s.iteration % self.every == 0
        if due or trainer.finished:
            self.save(trainer)

    def on_interrupt(self, trainer: TrainerView) -> None:
        if self.saved != trainer.state.iteration:
            self.save(trainer)

    def save(self, trainer: TrainerView) -> Path:
        path = state_path(self.folder, trainer.state.iteration)
        try:
            save_state(path, trainer.state_dict())
        except OSError as e:
            raise CheckpointError(
                f"{path}: cannot write the training state: {e.strerror or e}"
            ) from None
        self.saved = trainer.state.iteration
        prune_states(self.folder, self.keep)
        return path


def final_record(result: ResultView) -> dict[str, Any]:
    """The `final` line of metrics.jsonl: the chosen evaluation's metrics and the engine."""
    final: dict[str, Any] = {"kind": "final", "iteration": result.iterations}
    if result.test is not None:
        final.update(test_loss=result.test.loss, test_accuracy=result.test.accuracy)
    final.update(seconds=result.seconds, engine=result.engine)
    if result.val is not None:
        final.update(
            val_loss=result.val.loss,
            val_accuracy=result.val.accuracy,
            best_iteration=result.best_iteration,
        )
    if result.stop_reason:
        final["stop_reason"] = result.stop_reason
    return final
