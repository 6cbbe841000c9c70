"""run(config): the whole job behind `mlplab train` — load data, train, write a run directory.

The run directory (mlplab.io.rundir) gets config.json first, then metrics.jsonl and the
training state as the run goes, and model.safetensors and model.json at the end. A run
that was stopped (a signal, a crash, kill -9) continues with run(resume_from=RUN_DIR) from
its newest valid state, and ends with exactly what it would have given uninterrupted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mlplab.config import TrainConfig
from mlplab.data.dataset import Dataset, load_dataset
from mlplab.data.sources import DEFAULT_CACHE, ProgressFn
from mlplab.io.atomic import atomic_write_text, write_json
from mlplab.io.checkpoint import WEIGHTS, model_info, save_checkpoint
from mlplab.io.rundir import (
    CONFIG,
    METRICS,
    STATES,
    create_run_dir,
    locked,
)
from mlplab.io.states import decode_state
from mlplab.training import resume
from mlplab.training.callbacks import Callback, MetricsLog, StateCheckpoints
from mlplab.training.distributed import Distributed, broadcast_bytes, check_same_config
from mlplab.training.trainer import Interrupted, Trainer, TrainResult


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
    config is then the run's own (config=None), with `changes` to fields in
    mlplab.training.resume.RESUMABLE, or `config` when it differs from the run's only there.
    A finished run finishes again from its state, taking no step: what is missing of its
    directory is written, and result.resumed_from == result.iterations says so. Raises
    Interrupted (with .run_dir) when a signal paused training.

    In a data-parallel job (dist, its process group up), every rank calls run(); rank 0
    alone writes the run directory and reads the saved config and state, which reach the
    other ranks through the process group (no shared filesystem is needed), and the other
    ranks get None for run_dir. After a torchrun restart, the job resumes its own run.
    """
    share = _Sharing(dist)
    if dist is not None and dist.restart and resume_from is None:
        resume_from = share.text(lambda: _restarted_run(config, dist)) or None
    if resume_from is not None:
        config = share.config(resume_from, config, changes or {})
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


class _Sharing:
    """What rank 0 reads from disk, given to every rank as bytes (nothing pickled); for a
    process on its own, just the reading."""

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

    def config(self, run_dir, config: TrainConfig | None, changes: dict) -> TrainConfig:
        """The saved config of the run being resumed, with the changes asked for."""
        saved = json.loads(self.text(lambda: json.dumps(resume.saved_config(run_dir))))
        return resume.resumed_config(*saved, config, changes)

    def resume(self, trainer: Trainer, run_dir: Path | None) -> None:
        """The newest valid state, loaded on every rank."""
        if self.dist is None:
            resume.load(trainer, run_dir)
            return
        blob = self.bytes(lambda: resume.newest_bytes(run_dir))
        if blob:
            trainer.load_state_dict(decode_state(blob))


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
