"""Between scikit-learn's arrays and mlplab's Trainer: weights, epochs and their bookkeeping.

scikit-learn keeps an MLP as lists of numpy arrays, coefs_ (fan_in, fan_out) and intercepts_,
with a single logistic output for two classes. The Trainer trains an MLP module with a
softmax over every class. Two softmax logits (0, z) give sigmoid(z), so the binary output
moves between the two forms exactly. Each epoch's loss and validation score, and the
tol / n_iter_no_change rule that ends training, follow scikit-learn's MLP and live in a
callback (EpochBook), not in the loop.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlplab.config import TrainConfig
from mlplab.data.dataset import Dataset
from mlplab.nn.model import MLP, build_model
from mlplab.nn.spec import ModelSpec
from mlplab.training.callbacks import Callback, Evaluation
from mlplab.training.trainer import Trainer

Arrays = list[np.ndarray]


def glorot_init(units: list[int], activation: str, rng: np.random.RandomState) -> tuple:
    """scikit-learn's initialisation: weights and biases uniform in +-sqrt(6 / (in + out))
    (2 instead of 6 for logistic), drawn layer by layer, coef before intercept."""
    factor = 2.0 if activation == "logistic" else 6.0
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(units[:-1], units[1:], strict=True):
        bound = math.sqrt(factor / (fan_in + fan_out))
        coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
        intercepts.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
    return coefs, intercepts


def to_model(spec: ModelSpec, coefs: Arrays, intercepts: Arrays) -> MLP:
    """An MLP of `spec` holding these weights; a single (binary) output becomes logits (0, z)."""
    model = build_model(spec)
    layers = model.linears()
    with torch.no_grad():
        for i, (layer, w, b) in enumerate(zip(layers, coefs, intercepts, strict=True)):
            w, b = np.asarray(w, np.float32), np.asarray(b, np.float32)
            if i == len(layers) - 1 and w.shape[1] == 1 and layer.out_features == 2:
                w = np.concatenate([np.zeros_like(w), w], axis=1)
                b = np.concatenate([np.zeros_like(b), b])
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            layer.bias.copy_(torch.from_numpy(b))
    return model


def from_model(model: MLP, binary: bool) -> tuple[Arrays, Arrays]:
    """coefs_ and intercepts_ (float32, scikit-learn's shapes) of a trained MLP."""
    coefs, intercepts = [], []
    for layer in model.linears():
        coefs.append(layer.weight.detach().cpu().numpy().T.copy())
        intercepts.append(layer.bias.detach().cpu().numpy().copy())
    if binary:  # softmax(z0, z1)[1] = sigmoid(z1 - z0)
        w, b = coefs[-1], intercepts[-1]
        coefs[-1], intercepts[-1] = w[:, 1:] - w[:, :1], b[1:] - b[:1]
    return coefs, intercepts


@dataclass
class Progress:
    """scikit-learn's per-epoch record of a fit, carried on by warm starts and partial_fit."""

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] | None = None
    best_loss: float | None = math.inf
    best_validation_score: float | None = None
    no_improvement: int = 0
    n_iter: int = 0
    t: int = 0

    @classmethod
    def fresh(cls, early_stopping: bool) -> Progress:
        if early_stopping:
            return cls(validation_scores=[], best_loss=None, best_validation_score=-math.inf)
        return cls()


@dataclass(frozen=True)
class StopRule:
    """When training ends early: scikit-learn's tol and n_iter_no_change, and its messages."""

    alpha: float
    tol: float
    n_iter_no_change: int
    early_stopping: bool
    stop: bool  # False for partial_fit: one epoch, counted but never cut short
    log: Callable[[str], None] | None = None  # verbose output


class EpochBook(Callback):
    """Records each epoch's loss (with the L2 term, as scikit-learn reports it) and
    validation score, and stops training as scikit-learn's MLP would."""

    def __init__(self, progress: Progress, rule: StopRule):
        self.progress, self.rule = progress, rule
        self.score: float | None = None
        self.message: str | None = None

    def on_evaluate(self, trainer: Trainer, evaluation: Evaluation) -> None:
        self.score = evaluation.val.accuracy / 100.0 if evaluation.val is not None else None

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        p, rule = self.progress, self.rule
        n = len(trainer.train_split)
        loss = record["train_loss"] + self._penalty(trainer, n)
        p.loss_curve.append(loss)
        p.n_iter += 1
        p.t += n
        if rule.log:
            rule.log(f"Iteration {p.n_iter}, loss = {loss:.8f}")
        if rule.early_stopping and self.score is not None:
            self._count_by_score(self.score)
            what = "Validation score"
        else:
            self._count_by_loss(loss)
            what = "Training loss"
        if rule.stop and p.no_improvement > rule.n_iter_no_change:
            self.message = (
                f"{what} did not improve more than tol={rule.tol:f} for "
                f"{rule.n_iter_no_change} consecutive epochs. Stopping."
            )
            if rule.log:
                rule.log(self.message)
            trainer.stop(self.message)

    def _penalty(self, trainer: Trainer, n: int) -> float:
        """scikit-learn adds 0.5 * alpha * ||W||^2 / batch to each batch's loss; over an
        epoch that averages to this (with the weights at the epoch's end)."""
        if not self.rule.alpha:
            return 0.0
        with torch.no_grad():
            squares = sum(float(layer.weight.square().sum()) for layer in _linears(trainer))
        return 0.5 * self.rule.alpha * squares * trainer.sampler.batches_per_epoch / n

    def _count_by_score(self, score: float) -> None:
        p = self.progress
        p.validation_scores.append(score)
        if self.rule.log:
            self.rule.log(f"Validation score: {score:f}")
        improved = score >= p.best_validation_score + self.rule.tol
        p.no_improvement = 0 if improved else p.no_improvement + 1
        p.best_validation_score = max(p.best_validation_score, score)

    def _count_by_loss(self, loss: float) -> None:
        p = self.progress
        improved = loss <= p.best_loss - self.rule.tol
        p.no_improvement = 0 if improved else p.no_improvement + 1
        p.best_loss = min(p.best_loss, loss)


def _linears(trainer: Trainer) -> list[torch.nn.Linear]:
    return trainer.model().linears()


def train_epochs(
    config: TrainConfig,
    data: Dataset,
    model: MLP,
    book: EpochBook,
    optimizer_state: tuple[str, dict] | None,
    trackers: list[Callback],
) -> tuple[MLP, tuple[str, dict], bool]:
    """Train `model` on `data` for config.epochs epochs (or until the book stops it),
    logging to `trackers` (see Tracking).

    Returns the model (the best by validation with a validation split), the optimizer's
    state on the CPU (keyed by engine, for a partial_fit to continue it), and whether
    training stopped before its last epoch.
    """
    trainer = Trainer(config, data, callbacks=[book, *trackers], initial=model)
    if optimizer_state is not None and optimizer_state[0] == _engine_key(trainer, config):
        trainer.load_optimizer_state(optimizer_state[1])
    result = trainer.run()
    state = _to_cpu(trainer.optimizer_state())
    return result.model, (_engine_key(trainer, config), state), result.stop_reason is not None


class Tracking:
    """The trackers of one fit (config.log), and the end of its MLflow runs: with the
    estimator's own file (MLPClassifier.save) as model/mlpclassifier.safetensors once
    fitted, else FAILED when the fit raised.

        with Tracking(config) as tracking:
            train_epochs(..., tracking.trackers)
            ...  # the fitted attributes
            tracking.fitted(estimator)
    """

    FILE = "mlpclassifier.safetensors"

    def __init__(self, config: TrainConfig):
        from mlplab.tracking.trackers import make_trackers

        self.trackers = make_trackers(config, None, name="mlpclassifier")
        self.runs = [t for t in self.trackers if hasattr(t, "log_fitted")]

    def fitted(self, estimator) -> None:
        if not self.runs:
            return
        with tempfile.TemporaryDirectory(prefix="mlplab-fit-") as folder:
            path = Path(folder) / self.FILE
            estimator.save(path)
            for run in self.runs:
                run.log_fitted(path)  # waits for the upload

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, *exc) -> None:
        for run in self.runs:
            run.end("FAILED")  # no-op for a run that has ended


def _engine_key(trainer: Trainer, config: TrainConfig) -> str:
    """Optimizer states fit only the engine and solver that made them."""
    return f"{trainer.engine_name}:{config.optimizer}"


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value
