"""The models that benchmarks.tabular compares, each made fresh for a seed.

The two MLPs that need numbers get the usual scikit-learn preprocessing: median imputation
with missing-value indicators and a StandardScaler for numbers, one-hot categories (unseen
levels ignored). Gradient boosting takes the categories natively. pytabkit's RealMLP-TD takes
categories natively but refuses missing numbers, so it gets median imputation with
indicators; TabularMLPClassifier takes the DataFrame as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlplab.sklearn import MLPClassifier
from mlplab.sklearn.tabular import TabularMLPClassifier

TABULAR = "TabularMLPClassifier"
REALMLP = "RealMLP-TD (pytabkit)"
SKLEARN_MLP = "sklearn MLPClassifier"


def numbers_only():
    """Impute and scale the numbers, one-hot the categories: what an MLP without its own
    preprocessing needs."""
    numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    return ColumnTransformer(
        [
            ("num", numeric, make_column_selector(dtype_exclude="category")),
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                make_column_selector(dtype_include="category"),
            ),
        ]
    )


class RealMLPImputed(ClassifierMixin, BaseEstimator):
    """pytabkit's RealMLP_TD_Classifier behind median imputation of the numbers (with a 0/1
    column per imputed column), which it needs."""

    def __init__(self, random_state=0, threads=1, n_epochs=None):
        self.random_state = random_state
        self.threads = threads
        self.n_epochs = n_epochs

    def _fill(self, x: pd.DataFrame) -> pd.DataFrame:
        x = x.copy()
        for name, median in self.medians_.items():
            if name in self.flagged_:
                x[f"{name}__missing"] = x[name].isna().astype(np.float64)
            x[name] = x[name].fillna(median)
        return x

    def fit(self, x: pd.DataFrame, y):
        from pytabkit import RealMLP_TD_Classifier

        numeric = [c for c in x.columns if x[c].dtype != "category"]
        self.medians_ = {c: x[c].median() for c in numeric}  # a gap may show up only later
        self.flagged_ = [c for c in numeric if x[c].isna().any()]
        extra = {} if self.n_epochs is None else {"n_epochs": self.n_epochs}
        self.model_ = RealMLP_TD_Classifier(
            random_state=self.random_state,
            device="cpu",
            n_threads=self.threads,
            verbosity=0,
            **extra,
        ).fit(self._fill(x), y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, x: pd.DataFrame):
        return self.model_.predict(self._fill(x))


def has_pytabkit() -> bool:
    try:
        import pytabkit  # noqa: F401
    except ImportError:
        return False
    return True


def contenders(smoke: bool = False, threads: int = 1) -> dict[str, Callable]:
    """name -> make(seed): the models at their defaults (tiny budgets for --smoke)."""
    tiny = smoke
    models = {
        TABULAR: lambda s: TabularMLPClassifier(
            random_state=s, **({"max_epochs": 2} if tiny else {})
        ),
        "mlplab MLPClassifier": lambda s: make_pipeline(
            numbers_only(), MLPClassifier(random_state=s, max_iter=3 if tiny else 200)
        ),
        SKLEARN_MLP: lambda s: make_pipeline(
            numbers_only(), SkMLPClassifier(random_state=s, max_iter=3 if tiny else 200)
        ),
        "HistGradientBoosting": lambda s: HistGradientBoostingClassifier(
            categorical_features="from_dtype", random_state=s, max_iter=5 if tiny else 100
        ),
    }
    if has_pytabkit():
        models[REALMLP] = lambda s: RealMLPImputed(s, threads, 2 if tiny else None)
    return models


# Each variant changes one default of TabularMLPClassifier; "defaults" changes none.
VARIANTS = {
    "defaults": {},
    "no periodic embedding": {"numeric_embedding": "none"},
    "standard scaling, no clipping": {"scaling": "standard"},
    "no front scale": {"front_scale": False},
    "TabM-mini ensemble of 4": {"n_ensemble": 4},
    "3 hidden layers (RealMLP's)": {"hidden_layer_sizes": (256, 256, 256)},
    "128 epochs": {"max_epochs": 128},
    "no label smoothing": {"label_smoothing": 0.0},
    "cosine schedule (not coslog4)": {"lr_schedule": "cosine"},
    "best epoch on a 20% split (RealMLP's)": {"best_epoch": True},
    "no dropout": {"dropout": 0.0},
    "no weight decay": {"weight_decay": 0.0},
}


def ablation(smoke: bool = False) -> dict[str, Callable]:
    """name -> make(seed) for each variant."""
    budget = {"max_epochs": 2} if smoke else {}
    return {
        name: lambda s, change=change: TabularMLPClassifier(random_state=s, **budget, **change)
        for name, change in VARIANTS.items()
    }
