"""train(config, data, device) -> TrainResult: the seven-step recipe, fast.

Load data, batch it, build the model, the loss, the optimizer, train, and test every N
iterations. The whole split stays on the device; the host waits for it only at evaluations
(.item() and float() are sync points), never per step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

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
from mlplab.errors import ConfigError
from mlplab.evaluate import Metrics, evaluate
from mlplab.models import MLP, build_model, init_weights
from mlplab.scratch import ScratchMLP

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


def make_normalization(config: TrainConfig, train_split: Split) -> Normalization:
    if config.normalization == "tutorial":
        return Normalization(*TUTORIAL_NORM)
    if config.normalization == "none":
        return Normalization(0.0, 1.0)
    return Normalization(*pixel_stats(train_split.x))


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def make_schedule(config: TrainConfig, optimizer, total: int):
    """A per-iteration learning-rate schedule over `total` steps."""
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=total,
            cycle_momentum=config.optimizer == "sgd" and config.momentum > 0,
        )
    if config.schedule == "step":
        step = config.step_size or max(total // 3, 1)
        factor = lambda it: config.gamma ** (it // step)  # noqa: E731
    elif config.schedule == "cosine":
        factor = lambda it: 0.5 * (1 + math.cos(math.pi * min(it, total) / total))  # noqa: E731
    else:
        factor = lambda it: 1.0  # noqa: E731
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class AutogradEngine:
    """nn.Module, autograd and torch.optim: the engine for every model and optimizer."""

    def __init__(self, config: TrainConfig, model: MLP, total: int):
        self.config, self.model = config, model.train()
        self.optimizer = make_optimizer(config, model.parameters())
        self.schedule = make_schedule(config, self.optimizer, total)

    def step(self, x: torch.Tensor, y: torch.Tensor):
        """One optimizer step; returns (loss, logits, the lr this step used)."""
        logits = self.model(x)  # (B, 784) -> (B, classes)
        if self.config.loss == "nll":
            loss = F.nll_loss(F.log_softmax(logits, dim=1), y)
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # After schedule.step() the group holds the next step's lr, which past the last step
        # is an extrapolation (OneCycleLR swings back up).
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.schedule.step()
        return loss.detach(), logits.detach(), lr

    def module(self) -> MLP:
        return self.model


class ScratchEngine:
    """Plain tensors, hand-written backprop and a hand-written SGD step (mlplab.scratch)."""

    def __init__(self, config: TrainConfig, model: MLP, total: int):
        self.net = ScratchMLP.from_module(model)  # the same init as the autograd engine
        self.device = next(model.parameters()).device
        # torch's schedulers drive an optimizer; this one holds no weights, only the lr,
        # so both engines follow exactly the same lr curve.
        self.clock = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
        self.schedule = make_schedule(config, self.clock, total)

    def step(self, x: torch.Tensor, y: torch.Tensor):
        lr = self.clock.param_groups[0]["lr"]
        loss, logits = self.net.train_step(x, y, lr)
        self.clock.step()
        self.schedule.step()
        return loss, logits, lr

    def module(self) -> MLP:
        return self.net.to_module().to(self.device)


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
    start = time.perf_counter()
    device = torch.device(device) if device is not None else pick_device(config.device)
    torch.manual_seed(config.seed)
    train_split, val_split = data.train, None
    if config.val_size:
        keep, held = stratified_split(train_split.y, config.val_size, config.seed)
        train_split, val_split = train_split.subset(keep), train_split.subset(held)
        val_split = val_split.to(device)
    train_split, test_split = train_split.to(device), data.test.to(device)
    norm = make_normalization(config, train_split)

    model = init_weights(build_model(config.model_spec), config.init).to(device)
    steps_per_epoch = math.ceil(len(train_split) / config.batch_size)
    total = config.iterations or config.epochs * steps_per_epoch
    engine = (ScratchEngine if config.engine == "scratch" else AutogradEngine)(config, model, total)
    eval_every = config.eval_every or steps_per_epoch
    generator = torch.Generator(device=device).manual_seed(config.seed)

    history: list[Record] = []

    def emit(record: Record):
        history.append(record)
        if on_record:
            on_record(record)

    best_acc, best_iter, best_state, bad_evals, stopped = -1.0, None, None, 0, False
    it, epoch = 0, 0
    zero = torch.zeros((), device=device)
    window_loss, window_n = zero.clone(), 0
    last_eval = 0
    while it < total and not stopped:
        epoch += 1
        epoch_loss, epoch_correct, epoch_n = zero.clone(), zero.clone(), 0
        for x, y in batches(train_split, config.batch_size, norm, generator):
            loss, logits, lr = engine.step(x, y)
            it += 1
            with torch.no_grad():
                batch_loss = loss * len(y)
                epoch_loss += batch_loss
                window_loss += batch_loss
                epoch_correct += (logits.argmax(1) == y).sum()
            epoch_n += len(y)
            window_n += len(y)
            if on_step:
                on_step(it, total)
            if it % eval_every == 0 or it == total:
                record = {
                    "kind": "eval",
                    "iteration": it,
                    "epoch": epoch,
                    "train_loss": float(window_loss) / window_n,
                    "lr": lr,
                }
                window_loss.zero_()
                window_n, last_eval = 0, it
                model = engine.module()
                if val_split is not None:
                    val = evaluate(model, val_split, norm, data.num_classes)
                    record.update(val_loss=val.loss, val_accuracy=val.accuracy)
                    if val.accuracy > best_acc:
                        best_acc, best_iter, bad_evals = val.accuracy, it, 0
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        bad_evals += 1
                        stopped = bool(config.patience) and bad_evals >= config.patience
                test = evaluate(model, test_split, norm, data.num_classes)
                record.update(
                    test_loss=test.loss,
                    test_accuracy=test.accuracy,
                    seconds=time.perf_counter() - start,
                )
                emit(record)
            if it >= total or stopped:
                break
        emit(
            {
                "kind": "epoch",
                "epoch": epoch,
                "iteration": it,
                "train_loss": float(epoch_loss) / epoch_n,
                "train_accuracy": float(epoch_correct) * 100.0 / epoch_n,
            }
        )

    assert last_eval == it, "the last step is always evaluated"
    model = engine.module()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    val_metrics = evaluate(model, val_split, norm, data.num_classes) if val_split else None
    test_metrics = evaluate(model, test_split, norm, data.num_classes)
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
    )
