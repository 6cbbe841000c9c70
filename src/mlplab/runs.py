"""Run directories: runs/<date-time>-<name>/ with config.json, metrics.jsonl, the checkpoint.

run(config) is the whole job behind `mlplab train`: load data, train, and write every file.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from mlplab.checkpoint import WEIGHTS, model_info, save_checkpoint
from mlplab.config import TrainConfig
from mlplab.data import Dataset, load_dataset
from mlplab.datasets import DEFAULT_CACHE, ProgressFn
from mlplab.errors import CheckpointError
from mlplab.idx import atomic_write
from mlplab.train import RecordFn, StepFn, TrainResult, pick_device, train


def write_json(path: Path, value: Any) -> None:
    atomic_write(path, (json.dumps(value, indent=2) + "\n").encode())


def create_run_dir(out: str | Path, name: str, now: datetime | None = None) -> Path:
    """A new <out>/<date-time>-<name>/ folder; a numeric suffix avoids collisions."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = Path(out) / f"{stamp}-{name}"
    for i in range(1000):
        path = base if i == 0 else base.with_name(f"{base.name}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise CheckpointError(f"{base}: cannot create a new run directory")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of a run's metrics.jsonl, in order."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(
    config: TrainConfig,
    data: Dataset | None = None,
    device: torch.device | None = None,
    cache_dir: str | Path = DEFAULT_CACHE,
    on_record: RecordFn | None = None,
    on_step: StepFn | None = None,
    download_progress: ProgressFn | None = None,
) -> tuple[Path, TrainResult]:
    """Train as the config says and write a run directory; returns (run_dir, result)."""
    if data is None:
        data = load_dataset(
            config.dataset,
            data_dir=config.data_dir,
            cache_dir=cache_dir,
            progress=download_progress,
        )
    device = device or pick_device(config.device)
    run_dir = create_run_dir(config.out, config.run_name)
    write_json(run_dir / "config.json", config.to_dict())
    with (run_dir / "metrics.jsonl").open("w", encoding="utf-8") as log:

        def record(r: dict):
            log.write(json.dumps(r) + "\n")
            log.flush()
            if on_record:
                on_record(r)

        result = train(config, data, device, on_record=record, on_step=on_step)
        final = {
            "kind": "final",
            "iteration": result.iterations,
            "test_loss": result.test.loss,
            "test_accuracy": result.test.accuracy,
            "seconds": result.seconds,
            "engine": result.engine,
        }
        if result.val is not None:
            final.update(
                val_loss=result.val.loss,
                val_accuracy=result.val.accuracy,
                best_iteration=result.best_iteration,
            )
        log.write(json.dumps(final) + "\n")
    model = result.model.cpu()
    info = model_info(
        model,
        data.name,
        data.classes,
        result.norm,
        test_accuracy=result.test.accuracy,
        test_loss=result.test.loss,
        val_accuracy=result.val.accuracy if result.val else None,
        per_class_accuracy=result.test.per_class_accuracy,
        iterations=result.iterations,
        best_iteration=result.best_iteration,
        stopped_early=result.stopped_early,
        seconds=result.seconds,
        engine=result.engine,
        seed=config.seed,
        device=str(device),
        config=config.to_dict(),
    )
    save_checkpoint(run_dir / WEIGHTS, model, info)
    write_json(run_dir / "model.json", info)
    return run_dir, result
