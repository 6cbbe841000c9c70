"""run(config): the whole job behind `mlplab train` — load data, train, write a run directory.

The run directory (mlplab.io.rundir) gets config.json first, then metrics.jsonl and the
training state as the run goes, and model.safetensors and model.json at the end. A run
that was stopped (a signal, a crash, kill -9) continues with run(resume_from=RUN_DIR) from
its newest valid state, and ends with exactly what it would have given uninterrupted.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mlplab.config import TrainConfig
from mlplab.data.dataset import Dataset, load_dataset
from mlplab.data.sources import DEFAULT_CACHE, ProgressFn
from mlplab.errors import ConfigError, MlplabError, MlplabWarning
from mlplab.io.atomic import atomic_write_text, write_json
from mlplab.io.checkpoint import WEIGHTS, model_info, save_checkpoint
from mlplab.io.rundir import (
    CONFIG,
    METRICS,
    STATES,
    create_run_dir,
    locked,
    read_config,
    read_metrics,
)
from mlplab.io.states import decode_state, encode_state, newest_state
from mlplab.training.callbacks import Callback, MetricsLog, StateCheckpoints
from mlplab.training.distributed import Distributed, broadcast_bytes, check_same_config
from mlplab.training.trainer import Interrupted, Trainer, TrainResult

# What a resumed run may change: its length, and what cannot change a step it takes.
RESUMABLE = (
    "epochs",
    "iterations",
    "eval_every",
    "checkpoint_every",
    "threads",
    "device",
    "log",
)
# ... and where to find the data, which is checked against its checksums wherever it is.
RESUMABLE_ANYWHERE = ("data_dir",)


def run(
    config: TrainConfig | None,
    data: Dataset | None = None,
    device: torch.device | str | None = None,
    cache_dir: str | Path = DEFAULT_CACHE,
    callbacks: Sequence[Callback] = (),
    download_progress: ProgressFn | None = None,
    resume_from: str | Path | None = None,
    dist: Distributed | None = None,
    changes: dict[str, Any] | None = None,
) -> tuple[Path | None, TrainResult]:
    """Train as the config says and write a run directory; returns (run_dir, result).

    With resume_from=RUN_DIR, continue that run from its newest valid state instead; the
    config is then the run's own (config=None), with `changes` to fields in RESUMABLE, or
    `config` when it differs from the run's only there. Raises Interrupted (with .run_dir)
    when a signal paused training.

    In a data-parallel job (dist, its process group up), every rank calls run(); rank 0
    alone writes the run directory and reads the saved config and state, which reach the
    other ranks through the process group (no shared filesystem is needed), and the other
    ranks get None for run_dir. After a torchrun restart, the job resumes its own run.
    """
    share = _Sharing(dist)
    if dist is not None and dist.restart and resume_from is None:
        resume_from = share.text(lambda: _restarted_run(config, dist)) or None
    if resume_from is not None:
        config = share.config(lambda: _config_json(resume_from), config, changes or {})
    if dist is not None:
        check_same_config(config.to_dict(), share.device)
    if data is None:
        data = load_dataset(
            config.dataset,
            data_dir=config.data_dir,
            cache_dir=cache_dir,
            progress=download_progress,
        )
    trainer = Trainer(config, data, device, callbacks, dist=dist)
    if not share.main:
        if resume_from is not None:
            share.resume(trainer, None)
        return None, _train(trainer, None)
    run_dir = Path(resume_from) if resume_from else _new_run_dir(config, dist)
    with locked(run_dir):
        if resume_from is not None:
            share.resume(trainer, run_dir)
        try:
            result = train_into(run_dir, trainer)
        except Interrupted:
            _forget_restart(config, dist)  # a clean stop: torchrun will not restart it
            raise
    _forget_restart(config, dist)
    return run_dir, result


def train_into(
    run_dir: Path,
    trainer: Trainer,
    parent: str | None = None,
    tags: dict[str, str] | None = None,
) -> TrainResult:
    """Train into a run directory that the caller holds locked: its config, metrics, states
    and, at the end, its model; and to the trackers config.log names (mlplab.tracking).
    `parent` and `tags` go to an MLflow run (a sweep nests its trials). Raises Interrupted
    (with .run_dir) when a signal paused it."""
    attach_run_dir(run_dir, trainer, parent, tags)
    result = _train(trainer, run_dir)
    complete_run_dir(run_dir, trainer, result)
    return result


def attach_run_dir(
    run_dir: Path,
    trainer: Trainer,
    parent: str | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """What a run directory gets before training: its config, and the callbacks that write
    its metrics and states as the trainer steps (and the trackers config.log names). For a
    loop of one's own (the lab's): attach, then begin(), step() and finish() the trainer, then
    complete_run_dir."""
    from mlplab.tracking.trackers import make_trackers

    config = trainer.config
    write_json(run_dir / CONFIG, config.to_dict())
    with trainer.clock_stopped():
        trackers = make_trackers(config, run_dir, parent, tags)
    trainer.callbacks += [
        *trackers,
        MetricsLog(run_dir / METRICS),
        StateCheckpoints(run_dir / STATES, config.checkpoint_every),
    ]


def complete_run_dir(run_dir: Path, trainer: Trainer, result: TrainResult) -> None:
    """A finished run's model in its run directory; then the callbacks' on_saved."""
    write_model(run_dir, result, trainer.config, trainer.data, trainer.device)
    trainer.saved(run_dir)


def _train(trainer: Trainer, run_dir: Path | None) -> TrainResult:
    try:
        return trainer.run()
    except Interrupted as e:
        e.run_dir = run_dir
        raise


def _new_run_dir(config: TrainConfig, dist: Distributed | None) -> Path:
    """A new run directory; in a torchrun job, marked so that a restart finds it again."""
    run_dir = create_run_dir(config.out, config.run_name)
    if dist is not None and dist.run_id:
        atomic_write_text(Path(config.out) / f".torchrun-{dist.run_id}", str(run_dir))
    return run_dir


def _forget_restart(config: TrainConfig, dist: Distributed | None) -> None:
    if dist is not None and dist.run_id:
        (Path(config.out) / f".torchrun-{dist.run_id}").unlink(missing_ok=True)


def _restarted_run(config: TrainConfig, dist: Distributed) -> str:
    """The run directory that this torchrun job made before torchrun restarted it."""
    marker = Path(config.out) / f".torchrun-{dist.run_id}"
    try:
        return marker.read_text(encoding="utf-8").strip()
    except OSError:
        return ""  # the job died before it made one: start afresh


def _config_json(run_dir: str | Path) -> str:
    return json.dumps(read_config(run_dir))


class _Sharing:
    """What rank 0 reads from disk, given to every rank (nothing pickled); for a process
    on its own, just the reading."""

    def __init__(self, dist: Distributed | None):
        self.dist = dist
        self.main = dist is None or dist.main
        self.device = torch.device("cpu")  # the group's gloo part carries these bytes

    def bytes(self, read) -> bytes:
        if self.dist is None:
            return read()
        return broadcast_bytes(read() if self.main else None, self.device)

    def text(self, read) -> str:
        return self.bytes(lambda: read().encode()).decode()

    def config(self, read, config: TrainConfig | None, changes: dict) -> TrainConfig:
        """The saved config of the run being resumed, with the changes asked for."""
        values = json.loads(self.text(read))
        saved = TrainConfig.from_dict(values, CONFIG)
        if config is not None:
            changes = {**_changes(saved, config), **changes}
        return resume_with(saved, {k: v for k, v in changes.items() if getattr(saved, k) != v})

    def resume(self, trainer: Trainer, run_dir: Path | None) -> None:
        """Load the newest valid state on every rank; refuse to train a finished run."""
        if self.dist is None:
            _load_newest(trainer, run_dir)
            return
        blob = self.bytes(lambda: _newest_blob(trainer, run_dir))
        if blob:
            trainer.load_state_dict(decode_state(blob))
        done = self.bytes(lambda: b"1" if _is_finished(trainer, run_dir) else b"0")
        if done == b"1":
            raise MlplabError(f"{run_dir or 'the run'}: the run is finished")


def _newest_blob(trainer: Trainer, run_dir: Path) -> bytes:
    found = _newest(run_dir)
    return encode_state(found[1]) if found is not None else b""


def _newest(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """(the newest valid state's folder, its tree), or None (with a warning) when there is
    none yet."""
    found = newest_state(run_dir / STATES)
    if found is None:
        warnings.warn(
            f"{run_dir / STATES}: no saved state yet; starting the run from the beginning",
            MlplabWarning,
            stacklevel=4,
        )
    return found


def _is_finished(trainer: Trainer, run_dir: Path) -> bool:
    return bool(trainer.finished and _final_records(run_dir) and (run_dir / WEIGHTS).is_file())


def _changes(saved: TrainConfig, config: TrainConfig) -> dict[str, Any]:
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(config, f.name) != getattr(saved, f.name)
    }


def resumed_config(run_dir: str | Path, config: TrainConfig | None) -> TrainConfig:
    """The run's saved config, or `config` when it changes only what a resume may change."""
    saved = TrainConfig.from_dict(read_config(run_dir), str(Path(run_dir) / CONFIG))
    return saved if config is None else resume_with(saved, _changes(saved, config))


def resume_with(saved: TrainConfig, changes: dict[str, Any]) -> TrainConfig:
    """The saved config with `changes`, each checked: a resumed run must take the same steps
    as the run it continues, so only its length and how it is watched may change."""
    for name in changes:
        if name not in RESUMABLE + RESUMABLE_ANYWHERE:
            allowed = ", ".join(f"--{n.replace('_', '-')}" for n in RESUMABLE)
            raise ConfigError(
                f"{name}: cannot change when resuming (it would change the run); "
                f"a resumed run may change only {allowed}"
            )
    if "eval_every" in changes and saved.val_size:
        raise ConfigError(
            "eval_every: the best model and early stopping are chosen at evaluations, so "
            "changing when they happen would change the result"
        )
    if "epochs" in changes and "iterations" not in changes:
        changes = {**changes, "iterations": None}  # --epochs replaces a length in iterations
    return saved.replace(**changes)


def _load_newest(trainer: Trainer, run_dir: Path) -> None:
    """The newest valid state into the trainer; a finished run is not trained again."""
    found = _newest(run_dir)
    if found is None:
        return
    trainer.load_state_dict(found[1], str(found[0] / "state.json"))
    if not _is_finished(trainer, run_dir):
        return  # more to train, or killed while finishing: run() finishes it
    s = trainer.state
    if s.stop_reason:
        raise MlplabError(
            f"{run_dir}: the run is finished ({s.stop_reason}, iteration {s.iteration})"
        )
    field = "iterations" if trainer.config.iterations else "epochs"
    raise MlplabError(
        f"{run_dir}: the run is finished (iteration {s.iteration}); "
        f"give a larger --{field} to extend it"
    )


def _final_records(run_dir: Path) -> list[dict]:
    try:
        return [r for r in read_metrics(run_dir) if r.get("kind") == "final"]
    except (OSError, MlplabError):
        return []


def write_model(
    run_dir: Path, result: TrainResult, config: TrainConfig, data: Dataset, device: torch.device
) -> Path:
    """model.safetensors and model.json: the chosen model and what it says of itself."""
    model = result.model.cpu()
    info = model_info(
        model,
        data.name,
        data.classes,
        result.norm,
        test_accuracy=result.test.accuracy if result.test else None,
        test_loss=result.test.loss if result.test else None,
        val_accuracy=result.val.accuracy if result.val else None,
        per_class_accuracy=result.test.per_class_accuracy if result.test else None,
        iterations=result.iterations,
        best_iteration=result.best_iteration,
        stopped_early=result.stopped_early,
        seconds=result.seconds,
        engine=result.engine,
        seed=config.seed,
        device=str(device),
        config=config.to_dict(),
    )
    path = save_checkpoint(run_dir / WEIGHTS, model, info)
    write_json(run_dir / "model.json", info)
    return path
