"""TabularMLPClassifier's training loop: the whole table on the device, no DataLoader.

A batch is rows picked by a permutation made on the device. The learning rate follows
RealMLP's coslog4 schedule (four cosine cycles, each twice as long as the last, so the rate
restarts often early and settles late); weight decay and dropout stay flat for half the run
and then fall to zero along a half cosine. Every epoch the validation rows are scored, and
the weights of the best epoch (fewest errors; later epochs win ties) are the ones kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mlplab.sklearn.tabular_model import TabularNet, parameter_groups
from mlplab.training.optim import Adam

LR_SCHEDULES = ("coslog4", "cosine", "constant")
BETAS = (0.9, 0.95)  # RealMLP's: a short memory for the second moment


def schedule(name: str, t: float) -> float:
    """The factor at progress t in [0, 1] of the learning-rate schedule `name`."""
    if name == "coslog4":
        return 0.5 * (1 - math.cos(2 * math.pi * math.log2(1 + 15 * t)))
    if name == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


def flat_cos(t: float) -> float:
    """1 for the first half, then a half cosine down to 0."""
    return 1.0 if t <= 0.5 else 0.5 * (1 + math.cos(math.pi * (2 * t - 1)))


@dataclass(frozen=True)
class Plan:
    """How one fit trains: the numbers the estimator's parameters come down to."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    dropout: float
    label_smoothing: float
    lr_schedule: str
    best_epoch: bool


@dataclass
class Record:
    """What a fit leaves behind: the epoch kept, and the validation error per epoch."""

    best_epoch: int
    validation_errors: list[float]
    steps: int


def validation_split(y: np.ndarray, fraction: float, rng: np.random.Generator):
    """Stratified (train, validation) row indices; no validation rows where a class has fewer
    than 2 rows or where the fraction leaves fewer than one row per class."""
    classes, counts = np.unique(y, return_counts=True)
    if fraction <= 0 or counts.min() < 2 or fraction * len(y) < len(classes):
        return np.arange(len(y)), np.arange(0)
    val = []
    for c in classes:
        rows = rng.permutation(np.flatnonzero(y == c))
        val.append(rows[: max(1, round(fraction * len(rows)))])
    val = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(len(y)), val), val


def train(
    net: TabularNet, x: torch.Tensor, y: torch.Tensor, val: tuple | None, plan: Plan, gen
) -> Record:
    """Train `net` in place on (x, y) and leave it at its best epoch on `val`, if given."""
    decay, rest = parameter_groups(net)
    # mlplab's AdamW (torch's fused kernel), one for the weights that decay and one for the
    # rest; torch.optim would import torch._dynamo on first use, 1.4 s.
    opts = (
        Adam(decay, betas=BETAS, weight_decay=plan.weight_decay, decoupled=True),
        Adam(rest, betas=BETAS),
    )
    n = x.shape[0]
    batch = min(plan.batch_size, n)
    per_epoch = max(1, n // batch)  # the last, incomplete batch is dropped
    total = plan.epochs * per_epoch
    best, errors, step = (math.inf, 0, None), [], 0
    for epoch in range(1, plan.epochs + 1):
        net.train()
        order = torch.randperm(n, device=x.device, generator=gen)
        for i in range(per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            t = step / total
            logits = net(x[idx], plan.dropout * flat_cos(t))  # (B, k, C)
            _loss(logits, y[idx], plan.label_smoothing).backward()
            _step(opts, plan, t)
            step += 1
        if val is not None and plan.best_epoch:
            error = _error(net, *val)
            errors.append(error)
            if error <= best[0]:
                best = (error, epoch, _snapshot(net))
    if best[2] is not None:
        net.load_state_dict(best[2])
    return Record(best[1] if best[2] is not None else plan.epochs, errors, step)


def _step(opts: tuple[Adam, Adam], plan: Plan, t: float) -> None:
    """One optimizer step at progress t, then the gradients dropped."""
    opts[0].weight_decay = plan.weight_decay * flat_cos(t)
    lr = plan.lr * schedule(plan.lr_schedule, t)
    for opt in opts:
        opt.step([p.grad for p in opt.params], lr)
        for p in opt.params:
            p.grad = None


def _loss(logits: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    """The mean of the members' cross-entropies: each member learns on its own."""
    k = logits.shape[1]
    return F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(k), label_smoothing=smoothing)


@torch.inference_mode()
def _error(net: TabularNet, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    probs = net(x).softmax(-1).mean(1)
    return (probs.argmax(1) != y).float().mean().item()  # a sync point, once an epoch


def _snapshot(net: TabularNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}
