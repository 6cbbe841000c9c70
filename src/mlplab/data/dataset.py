"""Datasets in memory: a registered dataset's IDX files, or any arrays of features and labels.

Each split is one tensor (uint8 images, or float features) and its int64 labels; the trainer
moves it to the training device once. No DataLoader, and no per-sample Python: for 60,000
28x28 images this is all the input pipeline there is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlplab.data.idx import read_idx
from mlplab.data.registry import get_info
from mlplab.data.sources import DEFAULT_CACHE, ProgressFn, locate
from mlplab.errors import DataError
from mlplab.nn.normalization import Normalization


@dataclass(frozen=True)
class Split:
    """Inputs (N, ...) — uint8 images or float features — and labels (N,) int64, on one device;
    optionally each row's weight in the loss, w (N,) float32 (None: every row weighs 1).

    x may also be any rows-first matrix whose index_select gives dense rows, and whose split
    gives dense chunks (mlplab.sklearn's sparse rows, densified batch by batch).
    """

    x: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        w = self.w.to(device) if self.w is not None else None
        return Split(self.x.to(device), self.y.to(device), w)

    def subset(self, idx: torch.Tensor) -> Split:
        return Split(self.x[idx], self.y[idx], self.w[idx] if self.w is not None else None)

    def batch(self, idx: torch.Tensor, norm: Normalization) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows at idx: x (B, features) float32 normalised, y (B,) int64."""
        # index_select: several times faster than x[idx] for a batch of rows on the CPU
        return norm.apply(self.x.index_select(0, idx)), self.y.index_select(0, idx)

    def weights(self, idx: torch.Tensor) -> torch.Tensor | None:
        """The weights (B,) of the rows at idx; None when every row weighs 1."""
        return self.w.index_select(0, idx) if self.w is not None else None

    @property
    def num_features(self) -> int:
        return int(np.prod(self.x.shape[1:]))


@dataclass(frozen=True)
class Dataset:
    """Train and (optionally) test splits, class names, where they came from, and, when the
    source publishes them, the training inputs' mean and std (normalization "dataset")."""

    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split | None = None
    files: dict[str, Path] = field(default_factory=dict)
    stats: tuple[float, float] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_features(self) -> int:
        return self.train.num_features

    @classmethod
    def from_arrays(
        cls,
        x: Any,
        y: Any,
        x_test: Any = None,
        y_test: Any = None,
        name: str = "arrays",
        classes: tuple[str, ...] | None = None,
        weights: Any = None,
    ) -> Dataset:
        """A dataset from in-memory arrays: x (N, features) numbers, y (N,) labels of any kind.

        The classes are the sorted distinct training labels (or `classes`, when given, in
        that order); labels are stored as their index. uint8 inputs are taken as pixels.
        `weights`, when given, weighs each training row in the loss: (N,) finite numbers.
        """
        labels = np.asarray(y)
        if classes is None:
            classes = tuple(str(c) for c in np.unique(labels))
        index = {c: i for i, c in enumerate(classes)}
        train = _split_from_arrays(x, labels, index, "x", "y")
        if weights is not None:
            train = Split(train.x, train.y, as_weights(weights, len(train)))
        test = None
        if x_test is not None or y_test is not None:
            if x_test is None or y_test is None:
                raise DataError("x_test and y_test: give both or neither")
            test = _split_from_arrays(x_test, np.asarray(y_test), index, "x_test", "y_test")
            if test.num_features != train.num_features:
                raise DataError(
                    f"x_test: has {test.num_features} features but x has {train.num_features}"
                )
        return cls(name, tuple(classes), train, test)


def _split_from_arrays(x: Any, labels: np.ndarray, index: dict, x_name: str, y_name: str) -> Split:
    xt = _as_inputs(x, x_name)
    if labels.ndim != 1 or len(labels) != len(xt):
        raise DataError(
            f"{y_name}: expected {len(xt)} labels (one per row of {x_name}), got shape "
            f"{labels.shape}"
        )
    try:
        codes = [index[str(c)] for c in labels.tolist()]
    except KeyError as e:
        raise DataError(f"{y_name}: label {e.args[0]!r} is not one of the classes") from None
    return Split(xt, torch.tensor(codes, dtype=torch.int64))


def as_weights(weights: Any, n: int, name: str = "weights") -> torch.Tensor:
    """Per-row loss weights as a (n,) float32 tensor: finite numbers, one per row."""
    try:
        arr = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name}: expected numbers, one per row") from None
    if arr.shape != (n,):
        raise DataError(f"{name}: expected shape ({n},), one per row, got {arr.shape}")
    w = torch.from_numpy(arr).to(torch.float32)
    if not torch.isfinite(w).all():
        raise DataError(f"{name}: has NaN or infinite values (or values beyond float32's range)")
    return w


def _as_inputs(x: Any, name: str) -> torch.Tensor:
    """x as a (N, ...) tensor: uint8 kept as pixels, other numbers as float32, all finite."""
    if isinstance(x, torch.Tensor):
        xt = x.detach().cpu()
        if xt.dtype == torch.bool or xt.is_complex():
            raise DataError(f"{name}: expected numbers, got {xt.dtype}")
    else:
        try:
            arr = np.asarray(x)
        except ValueError as e:  # ragged nested lists
            raise DataError(f"{name}: not a rectangular array: {e}") from None
        if arr.dtype.kind not in "iuf":
            raise DataError(f"{name}: expected numbers, got dtype {arr.dtype}")
        xt = torch.from_numpy(np.ascontiguousarray(arr))
    if xt.dim() < 2 or len(xt) == 0:
        raise DataError(f"{name}: expected (samples, features), got shape {tuple(xt.shape)}")
    if xt.dtype != torch.uint8:
        xt = xt.to(torch.float32)
        if not torch.isfinite(xt).all():
            raise DataError(f"{name}: has NaN or infinite values")
    return xt.contiguous()


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
    return Dataset(name, info.classes, splits["train"], splits["test"], files, info.pixel_stats)


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
