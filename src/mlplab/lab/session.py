"""LabSession: the lab's experiment, several runs stepped side by side by the lab's own loop.

The web app hands it commands; the lab's thread does them in order. An experiment is 1 to 6
runs (mlplab.lab.experiments); the loop steps each run once in turn, so their curves grow
together, and does what the pages asked between two turns. Pausing is simply not stepping:
when the loop stops, every run that moved is saved (its state and its model) and gives its
lock back, so other tools can use it. Closing (Ctrl-C, SIGTERM, the server stopping) does the
same, then returns. One run is the focused one: the page draws it, looks inside it, and changes
its learning rate.

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

import numpy as np
import torch

from mlplab.config import TrainConfig
from mlplab.data.dataset import Dataset, load_dataset
from mlplab.data.sources import DEFAULT_CACHE
from mlplab.errors import ConfigError, MlplabError
from mlplab.io.rundir import read_config
from mlplab.lab.drawing import drawing
from mlplab.lab.experiments import LAB_OWNED, MAX_RUNS, Experiment, Run, vary
from mlplab.lab.live import LiveRun
from mlplab.lab.runs import LabRun, describe_spec
from mlplab.lab.snapshot import snapshot
from mlplab.training.device import torch_threads
from mlplab.training.engines import resolve_engine
from mlplab.training.resume import resume_with
from mlplab.training.trainer import Trainer

logger = logging.getLogger(__name__)

PROBE = 256  # test images behind the dead-unit share
WATCHED_FOR = 25.0  # seconds a page's "I show the weights" holds; the page repeats it
MAX_JOBS = 16  # looks inside waiting for the lab's thread; more get "busy"
__all__ = ["Busy", "LabSession", "describe_spec"]


class Busy(MlplabError):
    """Too many requests wait for the lab's thread."""


def run_name(experiment: str, label: str) -> str:
    """A run directory's name for a run of an experiment: "activations-activation-tanh"."""
    slug = "".join(c if c.isalnum() else "-" for c in f"{experiment}-{label}".lower())
    return "-".join(part for part in slug.split("-") if part)[:60]


def fields_of(config: TrainConfig) -> dict[str, Any]:
    """A config as the fields that differ from the default job's, without the lab's own."""
    default = TrainConfig().to_dict()
    return {k: v for k, v in config.to_dict().items() if k not in LAB_OWNED and v != default[k]}


class LabSession:
    """The lab's experiment and its thread; every public method may be called from any
    thread."""

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
        self.snapshot_every = 1.0 / snapshots_per_second
        self.live = LiveRun()
        self.commands: queue.SimpleQueue = queue.SimpleQueue()  # put() is safe in a signal handler
        self.experiment: Experiment | None = None
        self.runs: list[LabRun] = []
        self.focus: LabRun | None = None
        self.status, self.message = "starting", ""
        self.mode, self.steps_left = "pause", 0
        self.input: dict[str, Any] = {"test_index": 0}  # what the drawing shows
        self._next_id = 1
        self._datasets: dict[str, Dataset] = dict(datasets or {})
        self._jobs = threading.BoundedSemaphore(MAX_JOBS)
        self._closing = threading.Event()
        self._last_drawing = 0.0
        self._snapshots_until = 0.0  # a page shows the weights until then (watch_snapshots)
        self.thread: threading.Thread | None = None

    # --- from any thread -----------------------------------------------------------------

    def run(self, run_dir=None, config=None, experiment: Experiment | None = None):
        """Open a run directory, or build an experiment or a config (default: the default
        job), then do what the pages ask on the calling thread until close(); returns what
        it left (summary)."""
        self._first(run_dir, config, experiment)
        self._main()
        return self.summary()

    def start(self, run_dir=None, config=None, experiment: Experiment | None = None):
        """run() in a thread of its own; close() ends it."""
        self._first(run_dir, config, experiment)
        self.thread = threading.Thread(target=self._main, name="mlplab-lab", daemon=True)
        self.thread.start()

    def _first(self, run_dir, config, experiment) -> None:
        if run_dir is not None:
            self.commands.put(("open", Path(run_dir)))
        elif experiment is not None:
            self.commands.put(("experiment", experiment))
        else:
            self.commands.put(("build", config or self.base_config()))

    def base_config(self, **fields: Any) -> TrainConfig:
        """The default job, with this lab's out, data_dir and threads, and `fields` over it."""
        config = TrainConfig.from_dict({**self.lab_fields(), **fields}, "lab")
        resolve_engine(config)  # an engine that cannot train it is an error now, not later
        return config

    def lab_fields(self) -> dict[str, Any]:
        return {"out": str(self.out), "data_dir": self.data_dir, "threads": self.threads}

    def send(self, *command) -> None:
        """play, pause, step, reset; experiment EXPERIMENT; build CONFIG; open RUN_DIR;
        vary SETTING VALUE; remove ID; focus ID; input GIVEN; extend EPOCHS; lr VALUE FUTURE."""
        self.commands.put(command)

    def ask(self, fn: Callable[[Trainer], Any]) -> concurrent.futures.Future:
        """Run fn(the focused run's trainer) on the lab's thread between two turns; its result
        as a Future."""
        if not self._jobs.acquire(blocking=False):
            raise Busy(f"the lab is busy: {MAX_JOBS} requests wait for it; retry shortly")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.commands.put(("job", fn, future))
        return future

    def watch_snapshots(self) -> None:
        """A page shows the focused run's weights: make snapshots (tiles, histograms, norms)
        for the next WATCHED_FOR seconds, not only at pauses."""
        self._snapshots_until = time.perf_counter() + WATCHED_FOR

    def request_close(self, reason: str = "the lab closed") -> None:
        """Ask the lab to stop training (every run's state saved, as Ctrl-C does in mlplab
        train) and return from run(); safe in a signal handler."""
        self._closing.set()
        self.commands.put(("close", reason))

    def close(self, timeout: float = 60.0) -> dict[str, Any]:
        """request_close(), then wait for a start()ed thread to end; what it left."""
        self.request_close()
        if self.thread is not None:
            self.thread.join(timeout)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Each run's directory, the iteration it reached and whether it finished; and the
        focused run's, as run_dir, iteration and finished."""
        runs = {
            run.id: {
                "label": run.label,
                "run_dir": str(run.run_dir) if run.run_dir else None,
                "iteration": run.trainer.state.iteration,
                "finished": run.trainer.finished,
            }
            for run in self.runs
        }
        focus = runs.get(self.focus.id) if self.focus else None
        return {
            "run_dir": focus["run_dir"] if focus else None,
            "iteration": focus["iteration"] if focus else 0,
            "finished": bool(focus and focus["finished"]),
            "runs": list(runs.values()),
        }

    @property
    def trainer(self) -> Trainer | None:
        """The focused run's trainer."""
        return self.focus.trainer if self.focus else None

    @property
    def run_dir(self) -> Path | None:
        return self.focus.run_dir if self.focus else None

    # --- the lab's thread ----------------------------------------------------------------

    def _main(self) -> None:
        with torch_threads(self.threads):
            while not self._closing.is_set():
                try:
                    if self._wants_steps():
                        self._turn()
                        self._take_commands()
                    else:
                        self._settle()
                        self._do(self.commands.get())
                except Exception as e:  # a bug must not end the lab: the page shows it
                    logger.exception("the lab's thread failed")
                    self.mode, self.steps_left = "pause", 0
                    self._publish_status("error", f"{type(e).__name__}: {e}")
            self._settle()

    def _wants_steps(self) -> bool:
        wanted = self.mode == "play" or self.steps_left > 0
        return wanted and any(run.can_step for run in self.runs)

    def _turn(self) -> None:
        """One step of every run that can take one, then the events that are due. (Steps in
        chunks of 10 or 50 a run were no faster, measured: the runs' weights stay in cache.)"""
        changed = False
        for run in self.runs:
            if not run.can_step:
                continue
            before = run.status
            try:
                run.step()
            except MlplabError as e:
                run.fail(str(e))
            changed |= run.status != before
        if self.steps_left > 0:
            self.steps_left -= 1
        now = time.perf_counter()
        for run in self.runs:
            if run.status == "training":
                run.metrics(now, force=self.steps_left == 0 and self.mode != "play")
        if now - self._last_drawing >= self.snapshot_every:
            self._publish_drawing(now)
        if changed:  # a run began, finished or failed; when training stops, _settle says so
            self._publish_runs()
            if self._wants_steps():
                self._publish_status("playing")

    def _take_commands(self) -> None:
        """Between two turns: do everything asked meanwhile."""
        while not self._closing.is_set():
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            self._do(command)

    def _settle(self) -> None:
        """Training stopped (a pause, a finish, a close): save every run that moved, give
        their locks back, and say so."""
        moved = [run for run in self.runs if run.status == "training"]
        for run in self.runs:
            now = time.perf_counter()
            if run.status == "training":
                run.metrics(now, force=True)
            try:
                run.pause()
            except MlplabError as e:
                run.fail(str(e))
        if self.mode == "play" and not any(run.can_step for run in self.runs):
            self.mode = "pause"
        if moved or self.status in ("playing", "starting"):
            self._publish_drawing(time.perf_counter())
            self._publish_runs()
            self._publish_status(self._lab_status())

    def _lab_status(self) -> str:
        if not self.runs:
            return "ready"
        if self._wants_steps():
            return "playing"
        if all(run.status in ("finished", "error") for run in self.runs):
            return "finished" if any(r.status == "finished" for r in self.runs) else "error"
        if any(run.stepped or run.trainer.state.iteration for run in self.runs):
            return "paused"
        return "ready"

    def _do(self, command: tuple) -> None:
        kind = command[0]
        try:
            if kind == "job":
                self._job(*command[1:])
            elif kind in ("play", "pause", "step"):
                self._steer(kind)
            elif kind == "lr":
                self._set_lr(*command[1:])
            elif kind == "close":
                self._closing.set()
            elif kind in ("focus", "input"):
                self._look(kind, command[1])
            elif kind in ("vary", "remove"):
                self._edit(command)
            else:
                self._replace(command)
        except MlplabError as e:
            self._publish_status(self._lab_status(), str(e))

    def _steer(self, kind: str) -> None:
        if kind == "play":
            self.mode, self.steps_left = "play", 0
        elif kind == "pause":
            self.mode, self.steps_left = "pause", 0
        else:
            self.mode, self.steps_left = "pause", self.steps_left + 1
        if self._wants_steps():  # a stop is said by _settle, once every run is saved
            self._publish_status("playing")

    def _set_lr(self, lr: Any, future: concurrent.futures.Future) -> None:
        try:
            if self.focus is None:
                raise ConfigError("lr: there is no run to change yet", field="lr")
            future.set_result(self.focus.trainer.set_lr(lr))
        except MlplabError as e:
            future.set_exception(e)
        self._publish_status(self.status)

    def _job(self, fn, future: concurrent.futures.Future) -> None:
        try:
            if self.focus is None:
                raise MlplabError("the lab has no run yet; build one first")
            if future.set_running_or_notify_cancel():
                future.set_result(fn(self.focus.trainer))
        except Exception as e:  # the page gets the error; the lab goes on
            if not future.done():
                future.set_exception(e)
        finally:
            self._jobs.release()

    def _look(self, kind: str, value: Any) -> None:
        if kind == "focus":
            run = self._run(value)
            self._set_focus(run)
            self._publish_runs()
            run.score_test()
        else:
            self.input = value
        self._publish_drawing(time.perf_counter())

    def _run(self, run_id: Any) -> LabRun:
        for run in self.runs:
            if run.id == run_id:
                return run
        raise ConfigError(f"run: no run {run_id!r} in this experiment", field="run")

    def _set_focus(self, run: LabRun) -> None:
        for other in self.runs:
            other.focused = other is run
        self.focus = run

    # --- making and changing experiments -------------------------------------------------

    def _replace(self, command: tuple) -> None:
        """experiment EXPERIMENT, build CONFIG, open RUN_DIR, reset, extend EPOCHS: new runs,
        paused and unsaved (the old ones saved first)."""
        kind = command[0]
        self._settle()
        self.mode, self.steps_left = "pause", 0
        self._publish_status("building")
        try:
            if kind == "experiment":
                self._build(command[1])
            elif kind == "build":
                config = command[1]
                self._build(Experiment("", "one run", fields_of(config), (Run("run 1"),)))
            elif kind == "open":
                self._open(command[1])
            elif kind == "reset":
                self._build(self.experiment)
            else:
                self._extend(command[1])
        except MlplabError as e:
            self._publish_status("error", str(e))

    def _dataset(self, name: str, data_dir: str | None) -> Dataset:
        if name not in self._datasets:
            self._datasets[name] = load_dataset(name, data_dir=data_dir, cache_dir=self.cache_dir)
        return self._datasets[name]

    def _new_run(self, label: str, config: TrainConfig, run_dir: Path | None = None) -> LabRun:
        trainer = Trainer(config, self._dataset(config.dataset, config.data_dir))
        if run_dir is not None:
            trainer.resume(run_dir)
        run = LabRun(self._next_id, label, trainer, self.live, run_dir=run_dir)
        if run_dir is not None and trainer.state.iteration:
            run.status = "finished" if trainer.finished else "paused"
        self._next_id += 1
        return run

    def _build(self, experiment: Experiment | None) -> None:
        if experiment is None:
            raise MlplabError("reset: there is no experiment to build again yet")
        configs = [
            config.replace(name=run_name(experiment.name or "lab", run.label))
            for config, run in zip(
                experiment.configs(**self.lab_fields()), experiment.runs, strict=True
            )
        ]
        needed = {c.dataset for c in configs}
        self._datasets = {k: v for k, v in self._datasets.items() if k in needed}
        runs = [self._new_run(r.label, c) for r, c in zip(experiment.runs, configs, strict=True)]
        self._install(experiment, runs)

    def _open(self, run_dir: Path) -> None:
        """A run directory as an experiment of one run: it keeps its own config and place."""
        config = TrainConfig.from_dict(read_config(run_dir), str(run_dir / "config.json"))
        self._datasets = {k: v for k, v in self._datasets.items() if k == config.dataset}
        run = self._new_run(run_dir.name, config, run_dir)
        self._install(Experiment("", run_dir.name, fields_of(config), (Run(run_dir.name),)), [run])

    def _install(self, experiment: Experiment, runs: list[LabRun]) -> None:
        self.experiment, self.runs = experiment, runs
        self._set_focus(runs[0])
        self._publish_experiment()
        self.focus.score_test()
        self._publish_drawing(time.perf_counter())
        self._publish_status(self._lab_status())

    def _extend(self, epochs: int) -> None:
        """The focused run, made longer (where its schedule allows)."""
        run = self.focus
        if run is None:
            raise MlplabError("extend: there is no run to continue yet")
        config = run.trainer.config
        if run.run_dir is None:
            longer = config.replace(epochs=epochs, iterations=None)
            new = self._new_run(run.label, longer)
        else:
            new = self._new_run(run.label, resume_with(config, {"epochs": epochs}), run.run_dir)
        self.runs[self.runs.index(run)] = new
        self._set_focus(new)
        self._publish_runs()
        self._publish_status(self._lab_status())

    def _edit(self, command: tuple) -> None:
        """vary SETTING VALUE: a run like the focused one but for that setting; remove ID."""
        if self.experiment is None or self.focus is None:
            raise MlplabError("there is no experiment to change yet")
        runs = list(self.experiment.runs)
        if command[0] == "vary":
            if len(self.runs) >= MAX_RUNS:
                raise ConfigError(f"runs: an experiment has at most {MAX_RUNS} runs", field="runs")
            index = self.runs.index(self.focus)
            label, fields = vary(self.focus.trainer.config, command[1], command[2])
            fields = {**runs[index].fields, **fields}
            name = run_name(self.experiment.name or "lab", label)
            config = self.focus.trainer.config.replace(**fields, name=name)
            self.runs.append(self._new_run(label, config))
            runs.append(Run(label, fields))
        else:
            run = self._run(command[1])
            if len(self.runs) == 1:
                raise ConfigError("run: the experiment's last run cannot be removed", field="run")
            run.pause()
            index = self.runs.index(run)
            del self.runs[index], runs[index]
            if run is self.focus:
                self._set_focus(self.runs[0])
        self.experiment = replace(self.experiment, runs=tuple(runs))
        self._publish_runs()
        self._publish_drawing(time.perf_counter())
        self._publish_status(self._lab_status())

    # --- what the pages see --------------------------------------------------------------

    def _runs_event(self) -> dict[str, Any]:
        experiment = self.experiment
        return {
            "runs": [run.describe() for run in self.runs],
            "focus": self.focus.id if self.focus else None,
            "link": experiment.link() if experiment else "",
        }

    def _publish_experiment(self) -> None:
        e = self.experiment
        self.live.publish(
            "experiment",
            {
                "name": e.name,
                "title": e.title,
                "summary": e.summary,
                "look_for": e.look_for,
                "lesson": e.lesson,
                "axis": e.axis,
                **self._runs_event(),
            },
        )
        for run in self.runs:  # an opened run's curves so far
            for record in run.trainer.state.records:
                if record.get("kind") == "eval":
                    self.live.publish("eval", {"run": run.id, **record})

    def _publish_runs(self) -> None:
        self.live.publish("runs", self._runs_event())

    def _publish_status(self, status: str, message: str = "") -> None:
        self.status, self.message = status, message
        self.live.publish(
            "status",
            {
                "status": status,
                "message": message,
                "mode": self.mode,
                "runs": [
                    {
                        "id": r.id,
                        "status": r.status,
                        "iteration": r.trainer.state.iteration,
                        "total": r.trainer.total,
                        "lr": r.trainer.schedule(r.trainer.state.iteration),
                        "message": r.message,
                    }
                    for r in self.runs
                ],
                "focus": self.focus.id if self.focus else None,
            },
        )

    def _publish_drawing(self, now: float) -> None:
        """The focused run's snapshot (tiles, histograms, norms, dead units) and its live
        drawing for the current input."""
        run = self.focus
        self._last_drawing = now
        if run is None:
            return
        trainer = run.trainer
        if now < self._snapshots_until or not self._wants_steps():  # paused: one is cheap
            model = trainer.model()
            n = len(model.linears())
            grads = trainer.last_grads() if run.stepped else [None] * n
            source = trainer.test_split if trainer.test_split is not None else trainer.train_split
            data = snapshot(model, grads, trainer.norm.apply(source.x[:PROBE]))
            self.live.publish(
                "snapshot", {"run": run.id, "iteration": trainer.state.iteration, **data}
            )
        pixels, label = self._input_pixels(trainer)
        x = trainer.norm.apply(pixels.reshape(1, -1))[0].to(trainer.device)
        picture = drawing(trainer.eval_module(), x)
        image = (pixels.reshape(-1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        self.live.publish(
            "network",
            {
                "run": run.id,
                "iteration": trainer.state.iteration,
                "label": label,
                "input": list(image.tobytes()),
                **picture,
            },
        )

    def _input_pixels(self, trainer: Trainer) -> tuple[torch.Tensor, int | None]:
        """The drawing's input: (28, 28) pixels in [0, 1], and its label for a test image."""
        given = self.input
        if "pixels" in given:
            return torch.as_tensor(np.asarray(given["pixels"]), dtype=torch.float32), None
        split = trainer.test_split if trainer.test_split is not None else trainer.train_split
        index = min(int(given.get("test_index", 0)), len(split) - 1)
        return split.x[index].float().cpu() / 255.0, int(split.y[index])
