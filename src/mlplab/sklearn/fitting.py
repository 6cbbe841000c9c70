"""Between scikit-learn's arrays and mlplab's Trainer: weights, epochs and their bookkeeping.

scikit-learn keeps an MLP as lists of numpy arrays, coefs_ (fan_in, fan_out) and intercepts_,
with a single logistic output for two classes. The Trainer trains an MLP module with a
softmax over every class. Two softmax logits (0, z) give sigmoid(z), so the binary output
moves between the two forms exactly. Each epoch's loss and validation score, and the
tol / n_iter_no_change rule that ends training, follow scikit-learn's MLP and live in a
callback (EpochBook), not in the loop.

scikit-learn's loss of an epoch is the mean over its batches, each weighted by its number
of rows, of the batch's (weighted) mean log-loss plus its L2 term 0.5 alpha ||coefs_||^2 /
sum(batch's weights), with coefs_ as they were when the batch was taken. EpochBook adds up
||coefs_||^2 on the device after each step, so the L2 term is exactly that for unweighted
rows; with sample weights each batch's sum of weights is taken as its size times the mean
weight (the same number the weight decay is scaled by).
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
from mlplab.data.dataset import Dataset, Split, as_weights
from mlplab.nn.model import MLP, build_model
from mlplab.nn.normalization import Normalization
from mlplab.nn.spec import ModelSpec
from mlplab.sklearn.sparse import SparseRows
from mlplab.training.callbacks import Callback, Evaluation
from mlplab.training.evaluate import predict_logits
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


def make_dataset(x: Any, codes: np.ndarray, weights: np.ndarray | None, n_classes: int) -> Dataset:
    """The Trainer's data: x (n, features) float32, dense or scipy sparse (kept sparse, and
    densified batch by batch on the device), class indices and optional sample weights."""
    classes = tuple(str(i) for i in range(n_classes))
    if not isinstance(x, np.ndarray):  # scipy sparse, checked by validate_data
        w = as_weights(weights, len(codes), "sample_weight") if weights is not None else None
        split = Split(SparseRows.from_scipy(x), torch.from_numpy(codes), w)
        return Dataset("sklearn", classes, split)
    x = x if x.flags.writeable else x.copy()  # torch shares the memory; memmaps are read-only
    return Dataset.from_arrays(x, codes, name="sklearn", classes=classes, weights=weights)


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
    """When training ends early: scikit-learn's tol and n_iter_no_change, and its messages,
    and what the loss it watches is made of (see the module docstring)."""

    alpha: float
    tol: float
    n_iter_no_change: int
    early_stopping: bool
    stop: bool  # False for partial_fit: one epoch, counted but never cut short
    log: Callable[[str], None] | None = None  # verbose output
    binary: bool = False  # coefs_ hold one logistic output, the 2-way softmax's difference
    weight_mean: float = 1.0  # the training rows' mean sample weight


class EpochBook(Callback):
    """Records each epoch's loss (with the L2 term, as scikit-learn reports it) and
    validation score, and stops training as scikit-learn's MLP would. With weighted
    validation rows the score is their weighted accuracy, and the best model by it is kept
    in best_state."""

    def __init__(self, progress: Progress, rule: StopRule):
        self.progress, self.rule = progress, rule
        self.score: float | None = None
        self.message: str | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        # ||coefs_||^2 as the epoch's first batch found them, and summed after each step
        self._first: torch.Tensor | None = None
        self._after_steps: torch.Tensor | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.rule.alpha:
            self._first = torch.zeros((), dtype=torch.float64, device=trainer.device)
            _add_squares(self._first, trainer, self.rule.binary)
            self._after_steps = torch.zeros_like(self._first)

    def on_step(self, trainer: Trainer) -> None:
        if self.rule.alpha:  # a sum on the device: nothing here waits for it
            _add_squares(self._after_steps, trainer, self.rule.binary)

    def on_evaluate(self, trainer: Trainer, evaluation: Evaluation) -> None:
        val = trainer.val_split
        if evaluation.val is None:
            self.score = None
        elif val.w is None:
            self.score = evaluation.val.accuracy / 100.0
        else:
            self.score = _weighted_accuracy(trainer.eval_module(), val, trainer.norm)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        p, rule = self.progress, self.rule
        loss = record["train_loss"] + self._penalty(trainer)
        p.loss_curve.append(loss)
        p.n_iter += 1
        p.t += len(trainer.train_split)
        if rule.log:
            rule.log(f"Iteration {p.n_iter}, loss = {loss:.8f}")
        if rule.early_stopping and self.score is not None:
            if self._count_by_score(self.score) and trainer.val_split.w is not None:
                state = trainer.eval_module().state_dict()
                self.best_state = {k: v.detach().clone() for k, v in state.items()}
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

    def _penalty(self, trainer: Trainer) -> float:
        """The epoch's mean L2 term: 0.5 alpha ||coefs_||^2 / (batch size x mean weight) for
        each batch, weighted by its size, summed and divided by the n rows."""
        if not self.rule.alpha:
            return 0.0
        # the batches found the weights of the epoch's start and after each step but the last
        last = torch.zeros_like(self._first)
        _add_squares(last, trainer, self.rule.binary)
        squares = float(self._first + self._after_steps - last)
        self._first, self._after_steps = last, self._after_steps.zero_()
        n = len(trainer.train_split)
        return 0.5 * self.rule.alpha * squares / (n * self.rule.weight_mean)

    def _count_by_score(self, score: float) -> bool:
        """Count the epoch by its validation score; whether it is the best so far."""
        p = self.progress
        p.validation_scores.append(score)
        if self.rule.log:
            self.rule.log(f"Validation score: {score:f}")
        improved = score >= p.best_validation_score + self.rule.tol
        p.no_improvement = 0 if improved else p.no_improvement + 1
        best = score > p.best_validation_score
        p.best_validation_score = max(p.best_validation_score, score)
        return best

    def _count_by_loss(self, loss: float) -> None:
        p = self.progress
        improved = loss <= p.best_loss - self.rule.tol
        p.no_improvement = 0 if improved else p.no_improvement + 1
        p.best_loss = min(p.best_loss, loss)


@torch.no_grad()
def _add_squares(total: torch.Tensor, trainer: Trainer, binary: bool) -> None:
    """Add ||coefs_||^2 of the live weights, in scikit-learn's form (its L2 term leaves out
    the intercepts), to `total` on the device, reading the weights without a copy."""
    if trainer.engine_name == "fast":
        coefs = list(trainer.engine.weights)  # kept transposed: (fan_in, fan_out)
        if binary:  # softmax(z0, z1)[1] = sigmoid(z1 - z0)
            coefs[-1] = coefs[-1][:, 1] - coefs[-1][:, 0]
    else:
        coefs = [layer.weight for layer in trainer.model().linears()]  # (fan_out, fan_in)
        if binary:
            coefs[-1] = coefs[-1][1] - coefs[-1][0]
    for c in coefs:
        flat = c.reshape(-1)
        total.add_(torch.dot(flat, flat))


@torch.no_grad()
def _weighted_accuracy(model: MLP, split: Split, norm: Normalization) -> float:
    """The share of the split's weight that the model classifies right (NaN if it weighs 0)."""
    hit = (predict_logits(model, split.x, norm).argmax(1) == split.y).to(split.w.dtype)
    total = float(split.w.sum())
    return float(hit @ split.w) / total if total else math.nan


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
    if book.best_state is not None:  # the best by weighted validation accuracy
        result.model.load_state_dict(book.best_state)
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
