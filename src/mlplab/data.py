"""Datasets in memory and batches on the training device.

Each split is one uint8 tensor on the device; a batch is x[idx] with idx from a permutation
made on that device by a seeded generator, normalised on the fly. No DataLoader, and no
per-sample Python: for 60,000 28x28 images this is all the input pipeline there is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from mlplab.datasets import DEFAULT_CACHE, ProgressFn, get_info, locate
from mlplab.errors import DataError
from mlplab.idx import read_idx

TUTORIAL_NORM = (0.5, 0.5)  # transforms.Normalize((0.5,), (0.5,)) in the tutorials


@dataclass(frozen=True)
class Split:
    """Images (N, 28, 28) uint8 and labels (N,) int64, on one device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def subset(self, idx: torch.Tensor) -> Split:
        return Split(self.x[idx], self.y[idx])


@dataclass(frozen=True)
class Dataset:
    """A dataset's train and test splits, class names, and the files they came from."""

    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split
    files: dict[str, Path]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_dataset(
    name: str = "mnist",
    data_dir: str | Path | None = None,
    cache_dir: str | Path = DEFAULT_CACHE,
    download: bool = True,
    progress: ProgressFn | None = None,
    **locate_kwargs,
) -> Dataset:
    """Load a registered dataset onto the CPU, fetching its files if needed."""
    info = get_info(name)
    files = locate(
        name,
        data_dir=data_dir,
        cache_dir=cache_dir,
        download=download,
        progress=progress,
        **locate_kwargs,
    )
    tensors = {role: read_idx(path) for role, path in files.items()}
    splits = {}
    for split in ("train", "test"):
        x, y = tensors[f"{split}_images"], tensors[f"{split}_labels"]
        splits[split] = _make_split(
            x, y, files[f"{split}_images"], files[f"{split}_labels"], info.num_classes
        )
    return Dataset(name, info.classes, splits["train"], splits["test"], files)


def _make_split(
    x: torch.Tensor, y: torch.Tensor, x_path: Path, y_path: Path, num_classes: int
) -> Split:
    if x.dim() != 3:
        raise DataError(f"{x_path}: images must have 3 dimensions (N, H, W), got {tuple(x.shape)}")
    if y.dim() != 1:
        raise DataError(f"{y_path}: labels must have 1 dimension (N,), got {tuple(y.shape)}")
    if len(x) != len(y):
        raise DataError(f"{x_path.name} has {len(x)} images but {y_path.name} has {len(y)} labels")
    if len(y) and int(y.max()) >= num_classes:
        raise DataError(f"{y_path}: label {int(y.max())} is out of range for {num_classes} classes")
    return Split(x, y.long())


@dataclass(frozen=True)
class Normalization:
    """Pixels in [0, 1] map to (p - mean) / std."""

    mean: float
    std: float

    def __post_init__(self):
        if not self.std > 0:
            raise DataError(f"normalization std must be positive, got {self.std}")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images (B, ...) -> float32 (B, 784), normalised."""
        scale, shift = 1.0 / (255.0 * self.std), -self.mean / self.std
        # copy=True: a float input must not be changed in place by mul_ and add_.
        return x.reshape(len(x), -1).to(torch.float32, copy=True).mul_(scale).add_(shift)


def pixel_stats(x: torch.Tensor) -> tuple[float, float]:
    """Mean and std of uint8 pixels, scaled to [0, 1], computed in float64."""
    flat = x.reshape(-1)
    total, total_sq, n = 0.0, 0.0, flat.numel()
    for chunk in flat.split(1 << 24):
        c = chunk.double()
        total += float(c.sum())
        total_sq += float((c * c).sum())
    mean = total / n
    var = max(total_sq / n - mean * mean, 0.0)
    return mean / 255.0, var**0.5 / 255.0


def stratified_split(y: torch.Tensor, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (keep, held_out) indices, with each class held out in proportion to its count."""
    n = len(y)
    if not 0 < size < n:
        raise DataError(f"validation size must be between 1 and {n - 1}, got {size}")
    g = torch.Generator().manual_seed(seed)
    y = y.cpu()
    classes, counts = torch.unique(y, return_counts=True)
    quota = counts.double() * size / n
    take = quota.floor().long()
    # Largest remainders get the leftover places, so the sizes add up exactly.
    short = size - int(take.sum())
    take[torch.argsort(quota - take, descending=True)[:short]] += 1
    held = []
    for c, k in zip(classes.tolist(), take.tolist(), strict=True):
        members = torch.nonzero(y == c).squeeze(1)
        held.append(members[torch.randperm(len(members), generator=g)[:k]])
    held_idx = torch.cat(held).sort().values
    mask = torch.ones(n, dtype=torch.bool)
    mask[held_idx] = False
    return torch.nonzero(mask).squeeze(1), held_idx


def batches(
    split: Split, batch_size: int, norm: Normalization, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, ...]]:
    """One epoch of (x, y) batches, shuffled when a generator is given, on the split's device.

    x: (B, 784) float32, normalised; y: (B,) int64. The last batch may be smaller.
    """
    if batch_size < 1:
        # range() would raise for 0 and silently yield nothing for a negative size.
        raise DataError(f"batch size must be positive, got {batch_size}")
    n = len(split)
    if generator is None:
        order = torch.arange(n, device=split.x.device)
    else:
        order = torch.randperm(n, generator=generator, device=split.x.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        # index_select: several times faster than x[idx] for a batch of rows on the CPU
        yield norm.apply(split.x.index_select(0, idx)), split.y.index_select(0, idx)
