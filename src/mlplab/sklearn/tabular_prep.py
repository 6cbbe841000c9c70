"""A table as the network's input: numbers scaled robustly, categories one-hot, gaps flagged.

RealMLP's preprocessing (Holzmüller et al. 2024), in numpy: each numeric column is centred
on its median and divided by its interquartile range (half its range where that is zero),
then squashed smoothly into (-3, 3) by x / sqrt(1 + (x/3)^2), so an outlier stays an
outlier without dominating a layer. A missing number becomes the median and gets a 0/1
column of its own. A categorical column (`category`, `object`, `string` or `bool` in a
DataFrame) becomes one column per level seen in training (the `max_levels` most frequent),
two levels one +-1 column; a level never seen, at predict time, is all zeros. The one-hot
columns are scaled the same way as the numbers, as RealMLP does.

The output is one float32 matrix: the numeric columns first (those get periodic
embeddings in the network), then the indicators and the one-hot columns.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MISSING = "<missing>"  # the level a missing category value gets
SCALINGS = ("robust", "standard")


@dataclass
class TablePrep:
    """What fit learned about each column, enough to transform any later table the same way.

    kinds[j] is "num" or "cat" for input column j; levels[j] lists a categorical column's
    levels (strings), most frequent first; flagged lists the numeric columns (input
    indices) that had missing values in training; center and scale have one entry per
    output column and turn it into (x - center) * scale.
    """

    kinds: list[str]
    levels: dict[int, list[str]] = field(default_factory=dict)
    flagged: list[int] = field(default_factory=list)
    scaling: str = "robust"
    center: np.ndarray | None = None
    scale: np.ndarray | None = None

    @property
    def n_numeric(self) -> int:
        return self.kinds.count("num")

    def spec(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON-able values (the arrays are saved as tensors)."""
        return {
            "kinds": self.kinds,
            "levels": {str(j): v for j, v in self.levels.items()},
            "flagged": self.flagged,
            "scaling": self.scaling,
        }

    @classmethod
    def from_spec(cls, spec: dict, center: np.ndarray, scale: np.ndarray) -> TablePrep:
        levels = {int(j): [str(v) for v in lv] for j, lv in spec["levels"].items()}
        kinds = [str(k) for k in spec["kinds"]]
        if set(kinds) - {"num", "cat"} or sorted(levels) != [
            j for j, k in enumerate(kinds) if k == "cat"
        ]:
            raise ValueError("column kinds and levels do not match")
        prep = cls(kinds, levels, [int(j) for j in spec["flagged"]], str(spec["scaling"]))
        prep.center, prep.scale = center, scale
        if center.shape != (prep.width(),) or scale.shape != center.shape:
            raise ValueError(f"{center.shape[0]} scaling entries for {prep.width()} columns")
        return prep

    def width(self) -> int:
        """The number of output columns."""
        cats = sum(1 if len(lv) <= 2 else len(lv) for lv in self.levels.values())
        return self.n_numeric + len(self.flagged) + cats

    def fit(self, columns: list[np.ndarray], max_levels: int) -> TablePrep:
        """Learn levels, missing-value flags and the scaling from the training columns."""
        for j, kind in enumerate(self.kinds):
            if kind == "cat":
                self.levels[j] = _top_levels(columns[j], max_levels)
            elif np.isnan(columns[j]).any():
                self.flagged.append(j)
        raw = self._encode(columns)
        self.center, self.scale = _scaling(raw, self.scaling)
        return self

    def transform(self, columns: list[np.ndarray]) -> np.ndarray:
        """(n_samples, width()) float32, every value finite."""
        x = (self._encode(columns) - self.center) * self.scale
        if self.scaling == "robust":
            x = x / np.sqrt(1 + (x / 3) ** 2)
        return np.nan_to_num(x, nan=0.0).astype(np.float32)

    def _encode(self, columns: list[np.ndarray]) -> np.ndarray:
        """Numbers as they are (NaN kept), then missing flags, then the one-hot columns."""
        numeric = [columns[j] for j, k in enumerate(self.kinds) if k == "num"]
        flags = [np.isnan(columns[j]).astype(np.float64) for j in self.flagged]
        onehot = [_one_hot(columns[j], lv) for j, lv in self.levels.items()]
        n = len(columns[0]) if columns else 0
        parts = [np.column_stack(numeric + flags)] if numeric or flags else []
        return np.concatenate([*parts, *onehot], axis=1) if parts or onehot else np.zeros((n, 0))


def _top_levels(values: np.ndarray, max_levels: int) -> list[str]:
    """The most frequent levels first, ties in sorted order; at most max_levels of them."""
    found, counts = np.unique(values, return_counts=True)
    order = sorted(range(len(found)), key=lambda i: (-counts[i], found[i]))
    return [str(found[i]) for i in order[:max_levels]]


def _one_hot(values: np.ndarray, levels: list[str]) -> np.ndarray:
    """(n, len(levels)) 0/1, or (n, 1) -1/+1 for two levels (0 for one or an unseen level)."""
    index = {level: i for i, level in enumerate(levels)}
    codes = np.fromiter((index.get(v, -1) for v in values), dtype=np.int64, count=len(values))
    if len(levels) <= 2:
        return np.where(codes < 0, 0.0, 2.0 * codes - 1.0)[:, None] * (len(levels) == 2)
    out = np.zeros((len(values), len(levels)))
    seen = codes >= 0
    out[np.flatnonzero(seen), codes[seen]] = 1.0
    return out


def _scaling(raw: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """center and scale per column: median and 1 / IQR (robust), or mean and 1 / std."""
    if raw.shape[1] == 0:
        return np.zeros(0), np.zeros(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column that is all NaN
        if scaling == "standard":
            center, spread = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
        else:
            q25, center, q75 = np.nanquantile(raw, [0.25, 0.5, 0.75], axis=0)
            half_range = 0.5 * (np.nanmax(raw, axis=0) - np.nanmin(raw, axis=0))
            spread = np.where(q75 - q25 == 0, half_range, q75 - q25)
    usable = np.isfinite(spread) & (spread > 0)  # a constant column carries nothing: scale 0
    scale = np.where(usable, 1.0 / np.where(usable, spread, 1.0), 0.0)
    return np.nan_to_num(center, nan=0.0), scale


def is_frame(x: Any) -> bool:
    """A pandas DataFrame (checked by its shape, so pandas is imported only when one is given)."""
    return hasattr(x, "columns") and hasattr(x, "dtypes") and hasattr(x, "iloc")


def frame_kinds(frame: Any) -> list[str]:
    """ "num" or "cat" for each column; a one-line ValueError naming a column of another type."""
    import pandas as pd

    kinds = []
    for name, dtype in frame.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(
                dtype, pd.PeriodDtype | pd.IntervalDtype
            ):
                raise ValueError(
                    f"column {name!r}: dtype {dtype} is not supported; give numbers or "
                    "categories (category, object, string, bool)"
                )
            kinds.append("cat")
        elif pd.api.types.is_complex_dtype(dtype):
            raise ValueError(f"column {name!r}: complex data is not supported")
        else:
            kinds.append("num")
    return kinds


def frame_columns(frame: Any, kinds: list[str]) -> list[np.ndarray]:
    """Each column as float64 (NaN for missing) or as strings (MISSING for missing)."""
    import pandas as pd

    columns = []
    for (name, series), kind in zip(frame.items(), kinds, strict=True):
        if kind == "cat":
            values = np.asarray(series.astype(object), dtype=object)
            missing = pd.isna(values)
            text = values.astype(str)
            text[missing] = MISSING
            columns.append(text)
            continue
        try:
            numbers = pd.to_numeric(series, errors="raise").to_numpy(np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise ValueError(f"column {name!r}: expected numbers, as in fit") from None
        if np.isinf(numbers).any():
            raise ValueError(f"column {name!r}: contains infinity")
        columns.append(numbers)
    return columns
