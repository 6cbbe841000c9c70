"""run(config): the whole job behind `mlplab train` — load data, train, write a run directory.

The run directory (mlplab.io.rundir) gets config.json first, then metrics.jsonl and the
training state as the run goes, and model.safetensors and model.json at the end. A run
that was stopped (a signal, a crash, kill -9) continues with run(resume_from=RUN_DIR) from
its newest valid state, and ends with exactly what it would have given uninterrupted.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mlplab.config import TrainConfig
from mlplab.data.dataset import Dataset, load_dataset
from mlplab.data.sources import DEFAULT_CACHE, ProgressFn
from mlplab.errors import ConfigError, MlplabError, MlplabWarning
from mlplab.io.atomic import write_json
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
from mlplab.training.callbacks import Callback, MetricsLog, StateCheckpoints
from mlplab.training.trainer import Interrupted, Trainer, TrainResult

# What a resumed run may change: its length, and what cannot change a step it takes.
RESUMABLE = ("epochs", "iterations", "eval_every", "checkpoint_every", "threads", "device")
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
) -> tuple[Path, TrainResult]:
    """Train as the config says and write a run directory; returns (run_dir, result).

    With resume_from=RUN_DIR, continue that run from its newest valid state instead; the
    config is then the run's own (config=None), or that config with only the fields in
    RESUMABLE changed. Raises Interrupted (with .run_dir) when a signal paused training.
    """
    if resume_from is not None:
        config = resumed_config(resume_from, config)
    if data is None:
        data = load_dataset(
            config.dataset,
            data_dir=config.data_dir,
            cache_dir=cache_dir,
            progress=download_progress,
        )
    trainer = Trainer(config, data, device, callbacks)
    run_dir = Path(resume_from) if resume_from else create_run_dir(config.out, config.run_name)
    with locked(run_dir):
        if resume_from is not None:
            _load_newest(trainer, run_dir)
        write_json(run_dir / CONFIG, config.to_dict())
        trainer.callbacks += [
            MetricsLog(run_dir / METRICS),
            StateCheckpoints(run_dir / STATES, config.checkpoint_every),
        ]
        try:
            result = trainer.run()
        except Interrupted as e:
            e.run_dir = run_dir
            raise
        write_model(run_dir, result, config, data, trainer.device)
    return run_dir, result


def resumed_config(run_dir: str | Path, config: TrainConfig | None) -> TrainConfig:
    """The run's saved config, or `config` when it changes only what a resume may change."""
    saved = TrainConfig.from_dict(read_config(run_dir), str(Path(run_dir) / CONFIG))
    if config is None:
        return saved
    changes = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(config, f.name) != getattr(saved, f.name)
    }
    return resume_with(saved, changes)


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
    loaded = trainer.resume(run_dir)
    if loaded is None:
        warnings.warn(
            f"{run_dir / STATES}: no saved state yet; starting the run from the beginning",
            MlplabWarning,
            stacklevel=3,
        )
        return
    if not (trainer.finished and _final_records(run_dir) and (run_dir / WEIGHTS).is_file()):
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
