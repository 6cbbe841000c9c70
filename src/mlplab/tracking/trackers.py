"""The tracking callbacks a config asks for (its `log`), for one run directory."""

from __future__ import annotations

import time
from pathlib import Path

from mlplab.config import TrainConfig
from mlplab.config.targets import parse_logs
from mlplab.tracking.scalars import StepLoss
from mlplab.training.callbacks import Callback

TB_FOLDER = "tb"  # in the run directory, unless tensorboard=DIR says where


def make_trackers(
    config: TrainConfig,
    run_dir: Path | None,
    parent: str | None = None,
    tags: dict[str, str] | None = None,
    name: str = "mlp",
) -> list[Callback]:
    """A TensorBoardLog and an MlflowLog for the targets in config.log; each checks its
    extra and its destination (a folder it can write; a tracking server that answers) now,
    before training starts.

    Args:
        config: the run's config.
        run_dir: the run directory; the default TensorBoard folder is RUN/tb, and with
            tensorboard=DIR it is DIR/<the run directory's name>. None for training that
            writes no run directory (the scikit-learn estimator): the folder is then
            tb/<date-time>-<name> (or DIR/<date-time>-<name>), and the MLflow run is new.
        name: the run's name when there is no run directory.
        parent: an MLflow run to nest the run under.
        tags: more tags for the MLflow run.
    """
    trackers: list[Callback] = []
    loss = StepLoss()  # shared: one read of the device's loss total on a logged step
    label = run_dir.name if run_dir else f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    for target in parse_logs(config.log):
        if target.kind == "tensorboard":
            from mlplab.tracking.tensorboard_log import TensorBoardLog

            if target.where is not None:
                folder = Path(target.where) / label
            else:
                folder = run_dir / TB_FOLDER if run_dir else Path(TB_FOLDER) / label
            trackers.append(TensorBoardLog(folder, config, loss))
        else:
            from mlplab.tracking.mlflow_log import MlflowLog

            trackers.append(MlflowLog(target.where, run_dir, config, parent, tags, label, loss))
    return trackers


def check_targets(config: TrainConfig) -> None:
    """Fail early, before the data is loaded, for a missing extra, or a tracking server
    named in config.log that does not answer (within mlflow_log.PROBE_TIMEOUT seconds)."""
    for target in parse_logs(config.log):
        if target.kind == "tensorboard":
            from mlplab.tracking.tensorboard_log import summary_writer

            summary_writer()
        elif (target.where or "").startswith(("http://", "https://")):
            from mlplab.tracking.mlflow_log import tracking_uri

            tracking_uri(target.where)
