"""LabSession: one run at a time, trained by the Trainer on one thread, the lab's.

The web app hands it commands; the lab's thread does them in order. It builds a Trainer from
a config (or opens a run directory and resumes it), trains it through runner.train_into with
a LabControl callback, and looks inside the model between steps, so a page never reads
weights that a step is halfway through changing. A run is an ordinary run directory, made at
its first step: its config, metrics, states and (at each pause and at the end) its model.

`mlplab lab` makes the process's main thread the lab's and serves the page from another:
training on a thread of its own ran 12-25% slower here than on the main one, side by side.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from mlplab.config import TrainConfig
from mlplab.data.dataset import Dataset, load_dataset
from mlplab.data.sources import DEFAULT_CACHE
from mlplab.errors import MlplabError
from mlplab.io.rundir import STATES, RunLock, create_run_dir, read_config
from mlplab.io.states import newest_state
from mlplab.lab.control import LabControl
from mlplab.lab.live import LiveRun
from mlplab.training.callbacks import Evaluation, StateCheckpoints
from mlplab.training.engines import resolve_engine
from mlplab.training.evaluate import evaluate
from mlplab.training.runner import resume_with, train_into, write_model
from mlplab.training.trainer import Interrupted, Trainer

logger = logging.getLogger(__name__)

PROBE = 256  # test images behind the dead-unit share
MAX_JOBS = 16  # looks inside waiting for the lab's thread; more get "busy"


class Busy(MlplabError):
    """Too many requests wait for the lab's thread."""


class _Restart(Exception):
    """Raised out of a pause when a command replaces the run (a build, an open, closing)."""


class LabSession:
    """The lab's run and its thread; every public method may be called from any thread."""

    def __init__(
        self,
        out: str | Path = "runs",
        data_dir: str | None = None,
        threads: int | None = None,
        cache_dir: str | Path = DEFAULT_CACHE,
        snapshots_per_second: float = 2.0,
        datasets: dict[str, Dataset] | None = None,
    ):
        self.out, self.data_dir, self.threads, self.cache_dir = out, data_dir, threads, cache_dir
        self.snapshots_per_second = snapshots_per_second
        self.live = LiveRun()
        self.commands: queue.SimpleQueue = queue.SimpleQueue()  # put() is safe in a signal handler
        self.trainer: Trainer | None = None
        self.run_dir: Path | None = None
        self.lock: RunLock | None = None
        self.status, self.message = "starting", ""
        self.mode, self.steps_left = "pause", 0
        self.probe: torch.Tensor | None = None
        self._datasets: dict[str, Dataset] = dict(datasets or {})  # by name; loaded when asked
        self._jobs = threading.BoundedSemaphore(MAX_JOBS)
        self._replacement: tuple | None = None  # the command a restart is for
        self._closed = threading.Event()
        self.thread: threading.Thread | None = None

    def run(self, run_dir: str | Path | None = None, config: TrainConfig | None = None):
        """Open a run directory, or build a config (default: the default job), then do what
        the pages ask on the calling thread until close(); returns what it left (summary)."""
        self._first(run_dir, config)
        self._main()
        return self.summary()

    def start(self, run_dir: str | Path | None = None, config: TrainConfig | None = None):
        """run() in a thread of its own; close() ends it."""
        self._first(run_dir, config)
        self.thread = threading.Thread(target=self._main, name="mlplab-lab", daemon=True)
        self.thread.start()

    def _first(self, run_dir: str | Path | None, config: TrainConfig | None) -> None:
        if run_dir is not None:
            self.commands.put(("open", Path(run_dir)))
        else:
            self.commands.put(("build", config or self.base_config()))

    # --- from any thread -----------------------------------------------------------------

    def base_config(self, **fields: Any) -> TrainConfig:
        """The default job, with this lab's out, data_dir and threads, and `fields` over it."""
        values = {"out": str(self.out), "data_dir": self.data_dir, "threads": self.threads}
        config = TrainConfig.from_dict({**values, **fields}, "lab")
        resolve_engine(config)  # an engine that cannot train it is an error now, not later
        return config

    def send(self, *command) -> None:
        """play, pause, step; build CONFIG; open RUN_DIR; extend EPOCHS."""
        self.commands.put(command)

    def ask(self, fn: Callable[[Trainer], Any]) -> concurrent.futures.Future:
        """Run fn(trainer) on the lab's thread between two steps; its result as a Future."""
        if not self._jobs.acquire(blocking=False):
            raise Busy(f"the lab is busy: {MAX_JOBS} requests wait for it; retry shortly")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.commands.put(("job", fn, future))
        return future

    def request_close(self, reason: str = "the lab closed") -> None:
        """Ask the lab to stop training (its state saved, as Ctrl-C does) and return from
        run(); safe in a signal handler."""
        self.commands.put(("close",))
        trainer = self.trainer
        if trainer is not None:
            trainer.interrupt(reason)

    def close(self, timeout: float = 60.0) -> dict[str, Any]:
        """request_close(), then wait for a start()ed thread to end; what it left."""
        self.request_close()
        if self.thread is not None:
            self.thread.join(timeout)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """The run directory, the iteration reached and whether the run finished."""
        trainer = self.trainer
        return {
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "iteration": trainer.state.iteration if trainer else 0,
            "finished": bool(trainer and trainer.finished),
        }

    # --- the lab's thread ----------------------------------------------------------------

    def _main(self) -> None:
        while not self._closed.is_set():
            command = self._replacement or self.commands.get()
            self._replacement = None
            try:
                self._do(command)
                while self._wants_training():
                    self._train()
            except Exception as e:  # a bug must not end the lab: the page shows it
                logger.exception("the lab's thread failed")
                self.mode, self.steps_left = "pause", 0
                self._publish_status("error", f"{type(e).__name__}: {e}")

    def _wants_training(self) -> bool:
        trainer = self.trainer
        return (
            not self._closed.is_set()
            and self._replacement is None
            and trainer is not None
            and not trainer.finished
            and trainer.interrupted is None  # an interrupted trainer is done: a new one goes on
            and (self.mode == "play" or self.steps_left > 0)
        )

    def _do(self, command: tuple) -> None:
        """Do one command outside training."""
        kind = command[0]
        if kind == "job":
            self._job(*command[1:])
        elif kind in ("play", "pause", "step", "lr"):
            self._steer(command)
        elif kind == "close":
            self._closed.set()
        else:
            self._replace(command)

    def take_commands(self, block: bool) -> None:
        """Between two steps: do what was asked; a restart interrupts the run."""
        while self._replacement is None:
            try:
                command = self.commands.get(block=block)
            except queue.Empty:
                return
            kind = command[0]
            if kind in ("close", "build", "open", "extend"):
                self._replacement = command
                self.trainer.interrupt(f"the lab: {kind}")
                return
            self._do(command)
            if block and not self.wants_pause():
                return

    def wants_pause(self) -> bool:
        return self.mode == "pause" and self.steps_left == 0

    def _steer(self, command: tuple) -> None:
        kind = command[0]
        if kind == "play":
            self.mode, self.steps_left = "play", 0
        elif kind == "pause":
            self.mode, self.steps_left = "pause", 0
        elif kind == "step":
            self.mode, self.steps_left = "pause", self.steps_left + 1
        else:  # lr VALUE FUTURE
            _, lr, future = command
            try:
                if self.trainer is None:
                    raise MlplabError("lr: there is no run to change yet")
                future.set_result(self.trainer.set_lr(lr))
            except MlplabError as e:
                future.set_exception(e)
            self._publish_status(self.status)

    def _job(self, fn, future: concurrent.futures.Future) -> None:
        try:
            if self.trainer is None:
                raise MlplabError("the lab has no run yet; build one first")
            if future.set_running_or_notify_cancel():
                future.set_result(fn(self.trainer))
        except Exception as e:  # the page gets the error; the lab goes on
            if not future.done():
                future.set_exception(e)
        finally:
            self._jobs.release()

    def pause_here(self) -> None:
        """Inside training: save, give the lock back, and wait for play, step or a restart."""
        self._save_paused()
        self.lock.release()  # first: a tool that sees "paused" finds the run free
        self._publish_status("paused")
        paused = time.perf_counter()
        while self.wants_pause() and self._replacement is None:
            self.take_commands(block=True)
        self.trainer.started += time.perf_counter() - paused  # a pause is not training time
        if self._replacement is None:
            self._retake_lock()
            self._publish_status("playing")

    def _retake_lock(self) -> None:
        """Take the lock back after a pause; if another process trained the run meanwhile,
        open it again from its newest state."""
        try:
            self.lock.acquire()
        except MlplabError as e:
            self._replacement = ("open", self.run_dir, str(e))
            self.trainer.interrupt("another process trains the run")
            return
        found = newest_state(self.run_dir / STATES)
        if found is not None and int(found[1]["loop"]["iteration"]) != self.trainer.state.iteration:
            self._replacement = ("open", self.run_dir, "another process trained the run")
            self.trainer.interrupt("another process trained the run")

    def _save_paused(self) -> None:
        """The state and the model as they are now, and the test split's confusion."""
        trainer = self.trainer
        checkpoints = next(c for c in trainer.callbacks if isinstance(c, StateCheckpoints))
        if checkpoints.saved != trainer.state.iteration:
            checkpoints.save(trainer)
        test = self.score_test(trainer)
        result = replace(trainer.result(), test=test) if test else trainer.result()
        write_model(self.run_dir, result, trainer.config, trainer.data, trainer.device)

    def score_test(self, trainer: Trainer):
        """Metrics of the model now on the test split, published as the confusion."""
        if trainer.test_split is None:
            return None
        metrics = evaluate(trainer.eval_module(), trainer.test_split, trainer.norm)
        self.live.publish(
            "confusion",
            {
                "iteration": trainer.state.iteration,
                "matrix": metrics.confusion,
                "accuracy": metrics.accuracy,
            },
        )
        return metrics

    def _train(self) -> None:
        """Train the run until it finishes, pauses for good or is interrupted."""
        trainer = self.trainer
        if self.run_dir is None:
            self.run_dir = create_run_dir(trainer.config.out, trainer.config.run_name)
            self.lock = RunLock(self.run_dir)
        try:
            self.lock.acquire()
        except MlplabError as e:
            self.mode, self.steps_left = "pause", 0
            self._publish_status("error", str(e))
            return
        self._publish_status("playing")
        try:
            try:
                result = train_into(self.run_dir, trainer)
            finally:
                self.lock.release()  # first: a tool that sees the new status finds the run free
        except Interrupted:
            self.mode, self.steps_left = "pause", 0
            self._publish_status("stopped")
            return
        except MlplabError as e:
            self.mode, self.steps_left = "pause", 0
            self._publish_status("error", str(e))
            return
        self.mode, self.steps_left = "pause", 0
        accuracy = result.test.accuracy if result.test else None
        self._publish_status("finished", "" if accuracy is None else f"test {accuracy:.2f}%")

    # --- making runs ---------------------------------------------------------------------

    def _replace(self, command: tuple) -> None:
        """build CONFIG, open RUN_DIR [WHY], extend EPOCHS: a new trainer; paused, unsaved."""
        kind = command[0]
        self.mode, self.steps_left = "pause", 0
        self._publish_status("building")
        try:
            if kind == "build":
                self._build(command[1], None)
            elif kind == "open":
                self._open(command[1], command[2] if len(command) > 2 else "")
            else:
                self._extend(command[1])
        except MlplabError as e:
            self._publish_status("error", str(e))

    def _dataset(self, config: TrainConfig) -> Dataset:
        if config.dataset not in self._datasets:
            self._datasets = {  # keep one: a dataset is 50-200 MB
                config.dataset: load_dataset(
                    config.dataset, data_dir=config.data_dir, cache_dir=self.cache_dir
                )
            }
        return self._datasets[config.dataset]

    def _build(self, config: TrainConfig, run_dir: Path | None) -> Trainer:
        trainer = Trainer(
            config, self._dataset(config), callbacks=[LabControl(self, self.snapshots_per_second)]
        )
        if run_dir is not None:
            trainer.resume(run_dir)
        self.trainer, self.run_dir = trainer, run_dir
        self.lock = RunLock(run_dir) if run_dir else None
        source = trainer.test_split if trainer.test_split is not None else trainer.train_split
        self.probe = trainer.norm.apply(source.x[:PROBE])
        self._publish_begin()
        self.score_test(trainer)
        LabControl(self, self.snapshots_per_second).publish_snapshot(trainer, 0.0)
        status = "finished" if trainer.finished else "ready"
        self._publish_status(status)
        return trainer

    def _open(self, run_dir: Path, why: str = "") -> None:
        config = TrainConfig.from_dict(read_config(run_dir), str(run_dir / "config.json"))
        self._build(config, run_dir)
        if why:
            self._publish_status(self.status, f"{why}; opened it again")

    def _extend(self, epochs: int) -> None:
        """A finished or stopped run, made longer (where its schedule allows)."""
        if self.run_dir is None:
            self._build(self.trainer.config.replace(epochs=epochs, iterations=None), None)
            return
        self._build(resume_with(self.trainer.config, {"epochs": epochs}), self.run_dir)

    # --- what the pages see --------------------------------------------------------------

    def publish_evaluation(self, evaluation: Evaluation) -> None:
        self.live.publish("eval", evaluation.record)
        if evaluation.test is not None:
            self.live.publish(
                "confusion",
                {
                    "iteration": evaluation.iteration,
                    "matrix": evaluation.test.confusion,
                    "accuracy": evaluation.test.accuracy,
                },
            )

    def _publish_begin(self) -> None:
        trainer = self.trainer
        spec = trainer.config.parsed_spec
        self.live.publish(
            "begin",
            {
                "config": trainer.config.to_dict(),
                "spec": describe_spec(spec),
                "engine": trainer.engine_name,
                "classes": trainer.data.classes,
                "run_dir": str(self.run_dir) if self.run_dir else None,
                "total": trainer.total,
                "eval_every": trainer.eval_every,
                "test_size": len(trainer.test_split) if trainer.test_split is not None else 0,
            },
        )
        for record in trainer.state.records:  # an opened run's curves so far
            if record.get("kind") == "eval":
                self.live.publish("eval", record)

    def _publish_status(self, status: str, message: str = "") -> None:
        self.status, self.message = status, message
        trainer = self.trainer
        s = trainer.state if trainer else None
        self.live.publish(
            "status",
            {
                "status": status,
                "message": message,
                "mode": self.mode,
                "iteration": s.iteration if s else 0,
                "total": trainer.total if trainer else 0,
                "epoch": trainer.sampler.epoch if trainer else 0,
                "lr": trainer.schedule(s.iteration) if trainer else None,
                "run_dir": str(self.run_dir) if self.run_dir else None,
            },
        )


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
