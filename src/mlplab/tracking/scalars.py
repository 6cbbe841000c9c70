"""The numbers both trackers log, named alike: `train/loss` by step, `val/accuracy` and
`test/loss` at evaluations, `train/epoch_accuracy` at epoch ends, `lr`; and the config as
flat hyperparameters."""

from __future__ import annotations

from typing import Any

from mlplab.config import TrainConfig
from mlplab.training.callbacks import Evaluation, ResultView
from mlplab.training.evaluate import Metrics
from mlplab.training.state import Mark, TrainState

LOSS_EVERY = 10  # log the loss of every 10th training step (Lightning: every 50th)
FINAL = "final/"  # the returned model's metrics, logged once at the end


class StepLoss:
    """The loss of every LOSS_EVERY-th step, read from the state's running totals: the change
    over that one step, so a resumed run logs the same value at the same step. Costs a host
    sync on two steps in LOSS_EVERY. Both trackers share one: a second call at the same
    iteration returns the first call's answer without reading the device again."""

    def __init__(self):
        self._mark: Mark | None = None  # the totals before the next logged step
        self._last: tuple[int, dict[str, float]] | None = None  # (iteration, its answer)

    def begin(self, s: TrainState) -> None:
        self._mark = s.mark(accuracy=False)
        self._last = None

    def after_step(self, s: TrainState) -> dict[str, float]:
        """{'train/loss': ..., 'lr': ...} on a logged step, else {}."""
        if self._last is not None and self._last[0] == s.iteration:
            return self._last[1]
        out = {}
        if s.iteration % LOSS_EVERY == 0 and self._mark and self._mark.iteration == s.iteration - 1:
            out = {"train/loss": s.mark(accuracy=False).since(self._mark)["train_loss"], "lr": s.lr}
        if (s.iteration + 1) % LOSS_EVERY == 0:
            self._mark = s.mark(accuracy=False)
        self._last = (s.iteration, out)
        return out


def _split_scalars(splits: dict[str, Metrics | None], name: str) -> dict[str, float]:
    """Loss and accuracy of each split there is, named by `name` (split, what)."""
    out = {}
    for split, metrics in splits.items():
        if metrics is not None:
            out[name.format(split=split, what="loss")] = metrics.loss
            out[name.format(split=split, what="accuracy")] = metrics.accuracy
    return out


def evaluation_scalars(evaluation: Evaluation) -> dict[str, float]:
    return _split_scalars({"val": evaluation.val, "test": evaluation.test}, "{split}/{what}")


def epoch_scalars(record: dict[str, Any]) -> dict[str, float]:
    return {"train/epoch_accuracy": record["train_accuracy"]}


def final_scalars(result: ResultView) -> dict[str, float]:
    """The returned model's metrics (the best by validation, when there is a validation
    split), as the hparams table and the MLflow run list show them."""
    splits = {"test": result.test, "val": result.val}
    return _split_scalars(splits, FINAL + "{split}_{what}")


def hparam_values(config: TrainConfig) -> dict[str, Any]:
    """The config as flat hyperparameters: numbers, strings and booleans (None and lists as
    text), without where things are (out, data_dir, log)."""
    out = {}
    for key, value in config.to_dict().items():
        if key in ("log", "out", "data_dir"):
            continue
        if value is None or isinstance(value, list | tuple):
            value = str(value if value is None else list(value))
        out[key] = value
    return out
