"""run(config): the whole job behind `mlplab train` — load data, train, write a run directory.

The run directory, <out>/<date-time>-<name>/, holds config.json, metrics.jsonl (written as
the run goes), model.safetensors and model.json (see mlplab.io.rundir and
mlplab.io.checkpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from mlplab.config import TrainConfig
from mlplab.data.dataset import Dataset, load_dataset
from mlplab.data.sources import DEFAULT_CACHE, ProgressFn
from mlplab.io.atomic import write_json
from mlplab.io.checkpoint import WEIGHTS, model_info, save_checkpoint
from mlplab.io.rundir import METRICS, create_run_dir
from mlplab.training.callbacks import Callback, MetricsLog
from mlplab.training.trainer import Trainer, TrainResult


def run(
    config: TrainConfig,
    data: Dataset | None = None,
    device: torch.device | str | None = None,
    cache_dir: str | Path = DEFAULT_CACHE,
    callbacks: Sequence[Callback] = (),
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
    trainer = Trainer(config, data, device, callbacks)
    run_dir = create_run_dir(config.out, config.run_name)
    write_json(run_dir / "config.json", config.to_dict())
    trainer.callbacks.append(MetricsLog(run_dir / METRICS))
    result = trainer.run()
    write_model(run_dir, result, config, data, trainer.device)
    return run_dir, result


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
