"""Loss, accuracy, per-class accuracy and the confusion matrix of a classifier on a split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.data.dataset import Split
from mlplab.nn.normalization import Normalization


@dataclass(frozen=True)
class Metrics:
    """Mean cross-entropy, accuracy in %, per-class accuracy in %, confusion[true, predicted]."""

    loss: float
    accuracy: float
    per_class_accuracy: list[float]
    confusion: list[list[int]]
    count: int

    @classmethod
    def from_dict(cls, d: dict) -> Metrics:
        return cls(
            loss=float(d["loss"]),
            accuracy=float(d["accuracy"]),
            per_class_accuracy=[float(a) for a in d["per_class_accuracy"]],
            confusion=[[int(v) for v in row] for row in d["confusion"]],
            count=int(d["count"]),
        )

    def to_dict(self) -> dict:
        return {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "count": self.count,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion": self.confusion,
        }


@torch.inference_mode()
def predict_logits(
    model: nn.Module, x: torch.Tensor, norm: Normalization, batch_size: int = 10_000
) -> torch.Tensor:
    """Logits (N, classes) for uint8 images (N, 28, 28), in eval mode, in large batches."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(norm.apply(xb)) for xb in x.split(batch_size)])
    finally:
        model.train(was_training)


def evaluate(
    model: nn.Module,
    split: Split,
    norm: Normalization,
    num_classes: int = 10,
    batch_size: int = 10_000,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Metrics:
    """Every metric of the model on a split; the split and model share a device.

    With `reduce` (an all-reduce across processes), `split` is this process's shard, and
    the loss sum and the confusion counts are summed over every shard before the metrics
    are taken, so that every process gets the metrics of the whole split.
    """
    logits = predict_logits(model, split.x, norm, batch_size)
    y = split.y
    loss = F.cross_entropy(logits.float(), y, reduction="sum")
    confusion = torch.bincount(y * num_classes + logits.argmax(1), minlength=num_classes**2)
    count = len(y)
    if reduce is not None:
        summed = reduce(torch.cat([loss.double().view(1), confusion.double()]))
        loss, confusion = summed[0], summed[1:].round().long()
        count = int(confusion.sum())
    confusion = confusion.reshape(num_classes, num_classes).cpu()
    return _metrics(float(loss / max(count, 1)), confusion, count)


def _metrics(loss: float, confusion: torch.Tensor, count: int) -> Metrics:
    support = confusion.sum(1)
    per_class = torch.where(
        support > 0,
        confusion.diag().double() * 100.0 / support.clamp(min=1),
        torch.full_like(support, float("nan"), dtype=torch.float64),
    )
    return Metrics(
        loss=loss,
        accuracy=float(confusion.diag().sum()) * 100.0 / max(count, 1),
        per_class_accuracy=[float(a) for a in per_class],
        confusion=confusion.tolist(),
        count=count,
    )
