"""train(config, data, device) -> TrainResult: the seven-step recipe, fast.

Load data, batch it, build the model, the loss, the optimizer, train, and test every N
iterations. The whole split stays on the device; the host waits for it only at evaluations
(.item() and float() are sync points), never per step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from mlplab.augment import augment
from mlplab.config import TrainConfig
from mlplab.data import (
    TUTORIAL_NORM,
    Dataset,
    Normalization,
    Split,
    batches,
    pixel_stats,
    stratified_split,
)
from mlplab.datasets import REGISTRY
from mlplab.engines import make_engine, resolve_engine
from mlplab.errors import ConfigError
from mlplab.evaluate import Metrics, evaluate
from mlplab.models import MLP, build_model, init_weights

Record = dict
RecordFn = Callable[[Record], None]
StepFn = Callable[[int, int], None]  # (iteration, total iterations)


@dataclass
class TrainResult:
    """The trained model (best by validation when there is one) and what happened."""

    model: MLP
    norm: Normalization
    test: Metrics
    val: Metrics | None
    history: list[Record] = field(default_factory=list)
    iterations: int = 0
    best_iteration: int | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    engine: str = "autograd"  # the engine that trained it (config "auto" resolved)


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu for "auto"; otherwise the named device, checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device: {name!r} requested but MPS is not available")
    return device


def make_normalization(config: TrainConfig, train_split: Split, dataset: str) -> Normalization:
    """tutorial: (0.5, 0.5); none: pixels in [0, 1]; dataset: the training images' mean and
    std, published for the registered datasets and computed otherwise."""
    if config.normalization == "tutorial":
        return Normalization(*TUTORIAL_NORM)
    if config.normalization == "none":
        return Normalization(0.0, 1.0)
    known = REGISTRY[dataset].pixel_stats if dataset in REGISTRY else None
    return Normalization(*(known or pixel_stats(train_split.x)))


def train(
    config: TrainConfig,
    data: Dataset,
    device: torch.device | str | None = None,
    on_record: RecordFn | None = None,
    on_step: StepFn | None = None,
) -> TrainResult:
    """Train a model as the config says.

    Args:
        config: the run's hyperparameters.
        data: a loaded dataset (any device; it is moved to `device` once).
        device: where to train; default: config.device.
        on_record: called with each evaluation and epoch record as it is made.
        on_step: called after each optimizer step with (iteration, total).
    Returns:
        A TrainResult; with a validation split the model is the best one by validation
        accuracy, and `test` is measured on that model for reporting only.
    """
    with torch_threads(config.threads):
        return _train(config, data, device, on_record, on_step)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `threads` (None: unchanged) for the block."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(
    config: TrainConfig,
    data: Dataset,
    device: torch.device | str | None,
    on_record: RecordFn | None,
    on_step: StepFn | None,
) -> TrainResult:
    start = time.perf_counter()
    device = torch.device(device) if device is not None else pick_device(config.device)
    torch.manual_seed(config.seed)
    train_split, val_split = data.train, None
    if config.val_size:
        keep, held = stratified_split(train_split.y, config.val_size, config.seed)
        train_split, val_split = train_split.subset(keep), train_split.subset(held)
        val_split = val_split.to(device)
    train_split, test_split = train_split.to(device), data.test.to(device)
    norm = make_normalization(config, train_split, data.name)
    blank = -norm.mean / norm.std  # a 0 pixel, normalised: what augmentation fills in

    model = init_weights(build_model(config.model_spec), config.init).to(device)
    steps_per_epoch = math.ceil(len(train_split) / config.batch_size)
    total = config.iterations or config.epochs * steps_per_epoch
    engine = make_engine(config, model, total)
    eval_every = config.eval_every or steps_per_epoch
    generator = torch.Generator(device=device).manual_seed(config.seed)

    history: list[Record] = []

    def emit(record: Record):
        history.append(record)
        if on_record:
            on_record(record)

    best_acc, best_iter, bad_evals, stopped = -1.0, None, 0, False
    best = latest = None  # (state, val metrics, test metrics) of the best and last evaluations
    it, epoch = 0, 0
    # Running totals stay on the device; records read them (a sync) and take differences.
    wide = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
    loss_total = torch.zeros((), dtype=wide, device=device)
    correct_total = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    window_start = (0.0, 0)  # (loss total, samples) at the last evaluation
    last_eval = 0
    while it < total and not stopped:
        epoch += 1
        epoch_start = (float(loss_total), int(correct_total), seen)
        for x, y in batches(train_split, config.batch_size, norm, generator):
            x = augment(x, config.augment, blank, generator)
            loss, logits, lr = engine.step(x, y)
            it += 1
            with torch.no_grad():
                loss_total.add_(loss.detach(), alpha=len(y))
                correct_total.add_((logits.argmax(1) == y).sum())
            seen += len(y)
            if on_step:
                on_step(it, total)
            if it % eval_every == 0 or it == total:
                now = float(loss_total)
                record = {
                    "kind": "eval",
                    "iteration": it,
                    "epoch": epoch,
                    "train_loss": (now - window_start[0]) / (seen - window_start[1]),
                    "lr": lr,
                }
                window_start, last_eval = (now, seen), it
                model = engine.module()
                classes = data.num_classes
                val = None if val_split is None else evaluate(model, val_split, norm, classes)
                test = evaluate(model, test_split, norm, classes)
                latest = (None, val, test)
                if val is not None:
                    record.update(val_loss=val.loss, val_accuracy=val.accuracy)
                    if val.accuracy > best_acc:
                        best_acc, best_iter, bad_evals = val.accuracy, it, 0
                        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                        best = (state, val, test)
                    else:
                        bad_evals += 1
                        stopped = bool(config.patience) and bad_evals >= config.patience
                record.update(
                    test_loss=test.loss,
                    test_accuracy=test.accuracy,
                    seconds=time.perf_counter() - start,
                )
                emit(record)
            if it >= total or stopped:
                break
        epoch_n = seen - epoch_start[2]
        emit(
            {
                "kind": "epoch",
                "epoch": epoch,
                "iteration": it,
                "train_loss": (float(loss_total) - epoch_start[0]) / epoch_n,
                "train_accuracy": (int(correct_total) - epoch_start[1]) * 100.0 / epoch_n,
            }
        )

    assert last_eval == it, "the last step is always evaluated"
    # The metrics were measured at that evaluation; the model is the one they describe.
    model = engine.module()
    best_state, val_metrics, test_metrics = best or latest
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model,
        norm=norm,
        test=test_metrics,
        val=val_metrics,
        history=history,
        iterations=it,
        best_iteration=best_iter,
        stopped_early=stopped,
        seconds=time.perf_counter() - start,
        engine=resolve_engine(config),
    )
