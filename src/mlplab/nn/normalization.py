"""Input normalisation: (p - mean) / std, with uint8 pixels first scaled to [0, 1]."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mlplab.errors import ConfigError, DataError

TUTORIAL_NORM = (0.5, 0.5)  # transforms.Normalize((0.5,), (0.5,)) in the tutorials
MODES = ("tutorial", "dataset", "none")


@dataclass(frozen=True)
class Normalization:
    """uint8 pixels p map to (p / 255 - mean) / std; float features x to (x - mean) / std."""

    mean: float
    std: float

    def __post_init__(self):
        if not (self.std > 0 and math.isfinite(self.std)):
            raise DataError(f"normalization std must be positive and finite, got {self.std}")
        if not math.isfinite(self.mean):
            raise DataError(f"normalization mean must be finite, got {self.mean}")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ...) uint8 images or float features -> float32 (B, features), normalised."""
        scale = 1.0 / self.std
        if x.dtype == torch.uint8:
            scale /= 255.0
        # copy=True: a float input must not be changed in place by mul_ and add_.
        flat = x.reshape(len(x), -1).to(torch.float32, copy=True)
        return flat.mul_(scale).add_(-self.mean / self.std)

    @property
    def blank(self) -> float:
        """A zero input, normalised: what augmentation fills uncovered pixels with."""
        return -self.mean / self.std


def value_stats(x: torch.Tensor) -> tuple[float, float]:
    """Mean and std of all values (uint8 pixels scaled to [0, 1]), computed in float64."""
    flat = x.reshape(-1)
    total, total_sq, n = 0.0, 0.0, flat.numel()
    if n == 0:
        raise DataError("cannot compute the mean and std of no values")
    for chunk in flat.split(1 << 24):
        c = chunk.double()
        total += float(c.sum())
        total_sq += float((c * c).sum())
    mean = total / n
    std = max(total_sq / n - mean * mean, 0.0) ** 0.5
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    return mean / scale, std / scale


def make_normalization(
    mode: str, train_x: torch.Tensor, known: tuple[float, float] | None = None
) -> Normalization:
    """tutorial: (0.5, 0.5); none: the identity on [0, 1] pixels; dataset: the training
    inputs' mean and std, `known` when the data's source publishes them, else computed."""
    if mode == "tutorial":
        return Normalization(*TUTORIAL_NORM)
    if mode == "none":
        return Normalization(0.0, 1.0)
    if mode != "dataset":
        raise ConfigError(
            f"normalization: must be one of {', '.join(MODES)}, got {mode!r}", field="normalization"
        )
    mean, std = known or value_stats(train_x)
    if not std > 0:
        raise DataError("normalization dataset: the training inputs are constant (std 0)")
    return Normalization(mean, std)
