"""Hyperparameter sweeps on Optuna: a study of ordinary training runs, chosen by validation.

Optuna does the searching (TPE, random or grid samplers), the pruning (median, Hyperband)
and the bookkeeping (RDB storage: SQLite, or PostgreSQL shared by workers on many machines;
heartbeats, and one retry of a trial whose worker died). What is ours:

- the objective: one trial is one run directory, SWEEP_DIR/trials/0007-<name>/, trained
  with the test split removed, so that nothing is ever chosen by it; its value is the best
  validation accuracy;
- pruning through the callback protocol: every evaluation reports to the trial, and a trial
  the pruner gives up on is stopped with trainer.stop("pruned"), never by raising out of it;
- the count: `trials` is N finished trials in all (complete, pruned, or failed because its
  sampled config was invalid), across every worker and every resume; see _Gate.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplab.config import TrainConfig
from mlplab.config.targets import parse_logs, redact
from mlplab.data.dataset import Dataset, load_dataset
from mlplab.errors import ConfigError, MlplabError
from mlplab.experiments.sweep_show import TrialRow
from mlplab.experiments.sweep_space import SweepSpace
from mlplab.experiments.sweep_storage import TrialLock, open_storage
from mlplab.experiments.sweep_tracking import StudyRuns
from mlplab.io.atomic import write_json
from mlplab.io.rundir import locked
from mlplab.runner import run, train_into
from mlplab.training.callbacks import Callback, Evaluation
from mlplab.training.trainer import Trainer, TrainResult

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_TRIALS = 20
SPACE_ATTR = "mlplab:space"  # the study's fixed fields and space, as JSON
FIXED_ATTR = "mlplab:fixed"
TRIAL_FILE = "trial.json"  # in each trial's run directory: what the study knows of it


@dataclass(frozen=True)
class SweepPlan:
    """One sweep: its space, study, storage URL, where trials go, and how to search."""

    space: SweepSpace
    study: str
    sweep_dir: Path
    storage: str
    trials: int = DEFAULT_TRIALS
    timeout: float | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int | None = None
    data_dir: str | None = None
    log: tuple[str, ...] = ()  # each trial's tracking (--log), the study a parent MLflow run

    def __post_init__(self):
        parse_logs(self.log)
        if self.trials < 1:
            raise ConfigError(f"--trials: must be at least 1, got {self.trials}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"--timeout: must be positive, got {self.timeout}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler: must be one of {', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner: must be one of {', '.join(PRUNERS)}")
        if self.sampler == "grid":
            points = grid_size(self.space)
            if self.trials > points:
                raise ConfigError(f"--trials: the grid holds only {points} points")

    @property
    def trials_dir(self) -> Path:
        return self.sweep_dir / "trials"


def grid_size(space: SweepSpace) -> int:
    """How many configurations the grid sampler would visit."""
    size = 1
    for values in space.grid().values():
        size *= len(values)
    return size


# --- the study ---------------------------------------------------------------------------


def _sampler(plan: SweepPlan):
    import optuna

    if plan.sampler == "grid":
        return optuna.samplers.GridSampler(plan.space.grid(), seed=plan.seed)
    if plan.sampler == "random":
        return optuna.samplers.RandomSampler(seed=plan.seed)
    return optuna.samplers.TPESampler(seed=plan.seed)


def _pruner(plan: SweepPlan):
    import optuna

    settings = plan.space.settings
    if plan.pruner == "median":
        return optuna.pruners.MedianPruner(
            # steps count evaluations from 1: the first `warmup` of them are never pruned
            n_startup_trials=settings["startup_trials"],
            n_warmup_steps=settings["warmup"] + 1,
        )
    if plan.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    return optuna.pruners.NopPruner()


def open_study(plan: SweepPlan, heartbeat: bool = True):
    """Create the study, or load it when it exists; a resumed study must have this space."""
    import optuna

    settings = plan.space.settings
    storage = open_storage(
        plan.storage,
        settings["heartbeat"] if heartbeat else None,
        settings["grace"] if heartbeat else None,
    )
    study = optuna.create_study(
        study_name=plan.study,
        storage=storage,
        sampler=_sampler(plan),
        pruner=_pruner(plan),
        direction="maximize",
        load_if_exists=True,
    )
    saved = study.user_attrs.get(SPACE_ATTR)
    if saved is None:
        study.set_user_attr(SPACE_ATTR, plan.space.identity())
        study.set_user_attr(FIXED_ATTR, plan.space.fixed)
    elif saved != plan.space.identity():
        raise ConfigError(
            f"{plan.space.path}: its fields or [space] differ from those of study "
            f"{plan.study!r} in {redact(plan.storage)}; give another --study to start anew"
        )
    return study


def load_study(url: str, name: str | None):
    """An existing study (the only one in the storage when `name` is None)."""
    import optuna

    storage = open_storage(url)
    names = optuna.get_all_study_names(storage)
    if name is None and len(names) == 1:
        name = names[0]
    if name not in names:
        known = ", ".join(repr(n) for n in names) or "none"
        want = f"study {name!r}" if name else "--study NAME"
        raise ConfigError(f"{redact(url)}: give {want}; the studies there: {known}")
    return optuna.load_study(study_name=name, storage=storage)


# --- one worker --------------------------------------------------------------------------


def work(
    plan: SweepPlan,
    threads: int | None = None,
    on_trial: Callable[[TrialRow], None] | None = None,
) -> None:
    """Run trials in this process until the study holds plan.trials finished ones (or the
    timeout passes). Any number of workers, here or on other machines, may share a study.

    Args:
        plan: the sweep.
        threads: torch CPU threads for each trial (unless the space file fixes them).
        on_trial: called with each finished trial's row (complete, pruned or failed).
    """
    study = open_study(plan)
    lock = TrialLock(plan.storage, plan.study)
    deadline = time.monotonic() + plan.timeout if plan.timeout else None
    gate = _Gate(plan.trials, lock, deadline, plan.space.settings["heartbeat"])
    runs = StudyRuns.of(plan.log, study, lock)
    objective = _Objective(plan, threads, lock, runs)
    callbacks = [lambda s, t: on_trial(TrialRow.of(t))] if on_trial else []
    if runs is not None:
        callbacks.insert(0, runs.settle)
    try:
        if gate.admit(study):
            study.optimize(
                objective,
                callbacks=[*callbacks, gate],
                catch=(MlplabError,),
                gc_after_trial=False,
            )
    finally:
        lock.close()
        if runs is not None:
            runs.close(study, tally(study)[0] >= plan.trials)


class _Gate:
    """Admits a new trial while the finished and running ones are fewer than N.

    It holds the lock from the count until the objective starts (when Optuna has created
    the trial), so workers never start more than N together. Trials still running when
    the count is reached may yet fail (a dead worker's, once its heartbeat is stale, is
    failed and queued again to retry): the worker waits for them rather than leave.
    """

    def __init__(self, trials: int, lock: TrialLock, deadline: float | None, poll: float):
        self.trials, self.lock, self.deadline, self.poll = trials, lock, deadline, poll

    def admit(self, study) -> bool:
        import optuna

        while self.deadline is None or time.monotonic() < self.deadline:
            self.lock.acquire()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            done, running = tally(study)
            if done + running < self.trials:
                return True  # the lock stays held until the trial exists
            self.lock.release()
            if done >= self.trials:
                return False
            time.sleep(self.poll)
        return False

    def __call__(self, study, trial) -> None:
        if not self.admit(study):
            study.stop()


def tally(study) -> tuple[int, int]:
    """(finished, running) trials: finished counts complete, pruned, and failed for an
    invalid config; not a trial failed by a dead worker, which is retried instead."""
    from optuna.trial import TrialState

    done = running = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            done += 1
        elif t.state == TrialState.FAIL and "error" in t.user_attrs:
            done += 1
        elif t.state == TrialState.RUNNING:
            running += 1
    return done, running


class _Objective:
    """One trial: sample, build the config, train a run directory, return its validation
    accuracy (or raise TrialPruned after the trainer stopped at the pruner's word)."""

    def __init__(self, plan: SweepPlan, threads: int | None, lock: TrialLock, runs):
        self.plan, self.threads, self.lock, self.runs = plan, threads, lock, runs
        self.data: dict[tuple, Dataset] = {}

    def __call__(self, trial) -> float:
        import optuna

        self.lock.release()  # the trial exists: other workers may count it now
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        values = {p.name: p.suggest(trial) for p in self.plan.space.params}
        try:
            config = self.plan.space.config_for(
                values,
                out=str(self.plan.trials_dir),
                threads=self.threads,
                data_dir=self.plan.data_dir,
                log=self.plan.log,
            )
            trainer = Trainer(config, self._data(config), callbacks=[PruneTrial(trial)])
        except MlplabError as e:
            trial.set_user_attr("error", str(e))
            raise
        run_dir = _trial_dir(self.plan.trials_dir, trial.number, config.run_name)
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        runs = self.runs
        with locked(run_dir):
            if runs is None:
                result = train_into(run_dir, trainer)
            else:
                tags = runs.tags(trial.study, trial.number)
                result = train_into(run_dir, trainer, runs.parent, tags)
        trial.set_user_attr("iterations", result.iterations)
        pruned = result.stop_reason == "pruned"
        _write_trial_file(run_dir, self.plan, trial, values, result, pruned)
        if pruned:
            raise optuna.TrialPruned(f"at iteration {result.iterations}")
        return result.val.accuracy

    def _data(self, config: TrainConfig) -> Dataset:
        """The dataset without its test split (never looked at), loaded once per worker."""
        key = (config.dataset, config.data_dir)
        if key not in self.data:
            data = load_dataset(config.dataset, data_dir=config.data_dir)
            self.data[key] = dataclasses.replace(data, test=None)
        return self.data[key]


class PruneTrial(Callback):
    """Reports each evaluation's validation accuracy to the trial (step k: the k-th
    evaluation, so that trials of other batch sizes compare at the same point) and stops
    training when the pruner says so."""

    def __init__(self, trial):
        self.trial, self.step = trial, 0

    def on_evaluate(self, trainer: Trainer, evaluation: Evaluation) -> None:
        if evaluation.val is None:
            return
        self.step += 1
        self.trial.report(evaluation.val.accuracy, self.step)
        last = trainer.state.iteration >= trainer.total
        if not last and self.trial.should_prune():
            trainer.stop("pruned")


def _trial_dir(parent: Path, number: int, name: str) -> Path:
    for i in range(100):
        path = parent / (f"{number:04d}-{name}" + (f"-{i}" if i else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise MlplabError(f"{parent}: cannot create a directory for trial {number}")


def _write_trial_file(run_dir, plan, trial, values, result: TrainResult, pruned: bool) -> None:
    write_json(
        run_dir / TRIAL_FILE,
        {
            "study": plan.study,
            "storage": redact(plan.storage),
            "trial": trial.number,
            "state": "pruned" if pruned else "complete",
            "params": values,
            "val_accuracy": result.val.accuracy if result.val else None,
            "iterations": result.iterations,
        },
    )


# --- what a study holds ------------------------------------------------------------------


def best_config(study) -> dict[str, Any]:
    """The best trial's fixed fields and parameters together (what `mlplab train` takes)."""
    return {**study.user_attrs.get(FIXED_ATTR, {}), **study.best_trial.params}


def train_final(study, out: Path, data_dir: str | None = None) -> tuple[Path, TrainResult]:
    """Retrain the best configuration on the whole training set and test it, once: the
    test accuracy is reported, never used to choose anything."""
    values = {**best_config(study), "val_size": 0, "patience": 0}
    values.update(out=str(out), data_dir=data_dir or values.get("data_dir"))
    config = TrainConfig.from_dict(values, "the best trial")
    run_dir, result = run(config)
    study.set_user_attr(
        "mlplab:final",
        {
            "run_dir": str(run_dir),
            "test_accuracy": result.test.accuracy,
            "trial": study.best_trial.number,
        },
    )
    return run_dir, result
