"""LabRun: one run of the lab's experiment, stepped by the lab's own loop.

A LabRun holds a Trainer and, from its first step, an ordinary run directory: its config,
metrics and states as it trains, and its model at every pause and at the end, so that
`mlplab runs`, `report`, `serve`, `predict` and `train --resume` work on it. The lab's loop
(mlplab.lab.session) calls step() on each run in turn; its clock runs only during its own
steps, so its seconds and its steps per second are its own. Pausing is not stepping: pause()
saves the state and the model and gives the run's lock back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlplab.errors import MlplabError
from mlplab.io.rundir import STATES, RunLock, create_run_dir
from mlplab.io.states import newest_state
from mlplab.lab.live import LiveRun
from mlplab.runner import attach_run_dir, complete_run_dir, write_model
from mlplab.training.callbacks import Callback, Evaluation
from mlplab.training.evaluate import Metrics, evaluate
from mlplab.training.state import Mark
from mlplab.training.trainer import Trainer

# seconds between a run's metrics events while it trains (the page draws every 0.75 s)
METRICS_EVERY = 0.5


class Publish(Callback):
    """Hands each of a run's evaluations to the page, and the focused run's confusion."""

    def __init__(self, run: LabRun):
        self.run = run

    def on_evaluate(self, trainer, evaluation: Evaluation) -> None:
        run = self.run
        run.live.publish("eval", {"run": run.id, **evaluation.record})
        if run.focused and evaluation.test is not None:
            run.publish_confusion(evaluation.test, evaluation.iteration)


@dataclass(eq=False)
class LabRun:
    """One run of the experiment; see the module docstring."""

    id: int
    label: str
    trainer: Trainer
    live: LiveRun
    run_dir: Path | None = None
    status: str = "ready"  # ready, paused, training, finished, error
    message: str = ""
    lock: RunLock | None = None
    attached: bool = False  # its run directory's callbacks are on the trainer
    dirty: bool = False  # stepped since it was last saved
    stepped: bool = False  # has taken a step in this process (so it has gradients)
    focused: bool = False  # the run the page draws and looks inside
    _mark: Mark = field(default_factory=Mark)
    _seconds: float = 0.0
    _last_metrics: float = 0.0

    def __post_init__(self):
        self.trainer.callbacks.append(Publish(self))
        self.trainer.clock.stop()  # runs only during this run's own steps
        self._mark, self._seconds = self.trainer.state.mark(), self.trainer.seconds
        if self.trainer.finished:
            self.status = "finished"

    @property
    def can_step(self) -> bool:
        return self.status in ("ready", "paused", "training") and not self.trainer.finished

    def step(self) -> None:
        """One optimizer step (with its evaluation when due); the run is finished after the
        last one. The first step makes the run directory and takes its lock."""
        if self.status != "training":
            self._start()
        trainer = self.trainer
        trainer.clock.start()
        try:
            trainer.step()
        finally:
            trainer.clock.stop()
        self.dirty = self.stepped = True
        if trainer.finished:
            self._finish()

    def _start(self) -> None:
        trainer = self.trainer
        if self.run_dir is None:
            self.run_dir = create_run_dir(trainer.config.out, trainer.config.run_name)
        self.lock = self.lock or RunLock(self.run_dir)
        self.lock.acquire()
        found = newest_state(self.run_dir / STATES)
        if found is not None and int(found[1]["loop"]["iteration"]) != trainer.state.iteration:
            self.lock.release()
            raise MlplabError(f"{self.run_dir}: another process trained this run; open it again")
        if not self.attached:
            attach_run_dir(self.run_dir, trainer)
            trainer.begin()
            self.attached = True
        self.status = "training"

    def _finish(self) -> None:
        result = self.trainer.finish()
        complete_run_dir(self.run_dir, self.trainer, result)
        self.lock.release()
        self.status, self.dirty = "finished", False
        if result.test is not None:
            self.message = f"test {result.test.accuracy:.2f}%"

    def pause(self) -> None:
        """Stop training for now: the state and the model as they are (a run a page paused
        can be reported, served or resumed), and the lock given back."""
        if self.status != "training":
            return
        if self.dirty:
            self.trainer.pause()  # the callbacks save the state
            test = self.score_test()
            result = self.trainer.result()
            result = replace(result, test=test) if test else result
            trainer = self.trainer
            write_model(self.run_dir, result, trainer.config, trainer.data, trainer.device)
            self.dirty = False
        self.lock.release()
        self.status = "paused"

    def fail(self, message: str) -> None:
        """An error stops this run (the others go on); its lock is given back."""
        if self.lock is not None and self.status == "training":
            self.lock.release()
        self.status, self.message = "error", message

    def score_test(self) -> Metrics | None:
        """Metrics of the model now on the test split (for the focused run, published as the
        confusion)."""
        trainer = self.trainer
        if trainer.test_split is None:
            return None
        metrics = evaluate(trainer.eval_module(), trainer.test_split, trainer.norm)
        if self.focused:
            self.publish_confusion(metrics, trainer.state.iteration)
        return metrics

    def publish_confusion(self, metrics: Metrics, iteration: int) -> None:
        self.live.publish(
            "confusion",
            {
                "run": self.id,
                "iteration": iteration,
                "matrix": metrics.confusion,
                "accuracy": metrics.accuracy,
            },
        )

    def metrics(self, now: float, force: bool = False) -> None:
        """A metrics event when one is due (every METRICS_EVERY seconds while training): the
        training loss and accuracy since the last one, and the run's own steps per second."""
        if not force and now - self._last_metrics < METRICS_EVERY:
            return
        s = self.trainer.state
        mark, seconds = s.mark(), self.trainer.seconds
        window = mark.since(self._mark)
        if window["seen"] <= 0:
            return
        spent = seconds - self._seconds
        self.live.publish(
            "metrics",
            {
                "run": self.id,
                "iteration": s.iteration,
                "epoch": self.trainer.sampler.epoch,
                "train_loss": window["train_loss"],
                "train_accuracy": window["train_accuracy"],
                "lr": s.lr,
                "seconds": round(seconds, 3),
                "steps_per_second": round(window["steps"] / spent, 2) if spent > 0 else None,
            },
        )
        self._mark, self._seconds, self._last_metrics = mark, seconds, now

    def describe(self) -> dict[str, Any]:
        """What the page shows of the run: its label, config, network, length and state."""
        trainer = self.trainer
        spec = trainer.config.parsed_spec
        latest = trainer.state.latest.get("test") or {}
        return {
            "id": self.id,
            "label": self.label,
            "config": trainer.config.to_dict(),
            "spec": describe_spec(spec),
            "engine": trainer.engine_name,
            "classes": list(trainer.data.classes),
            "total": trainer.total,
            "eval_every": trainer.eval_every,
            "train_size": len(trainer.train_split),
            "test_size": len(trainer.test_split) if trainer.test_split is not None else 0,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "status": self.status,
            "message": self.message,
            "iteration": trainer.state.iteration,
            "seconds": round(trainer.seconds, 3),
            "test_accuracy": latest.get("accuracy"),
        }


def describe_spec(spec) -> dict[str, Any]:
    """What the page draws of a network: sizes, options and the parameter count."""
    return {
        "text": str(spec),
        "sizes": list(spec.sizes),
        "activation": spec.activation,
        "dropout": spec.dropout,
        "input_dropout": spec.input_dropout,
        "batch_norm": spec.batch_norm,
        "parameters": spec.num_parameters,
    }
