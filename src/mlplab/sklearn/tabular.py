"""TabularMLPClassifier: a strong default MLP for a table, in scikit-learn's API.

Its defaults are RealMLP-TD's (Holzmüller et al. 2024) where they paid on mlplab's tabular
suite: robust scaling with smooth clipping, periodic numeric embeddings (PBLD; MLP-PLR,
Gorishniy et al. 2022), a learned diagonal scale in front, SELU, label smoothing 0.1, the
coslog4 learning-rate schedule, AdamW(0.9, 0.95) with decaying weight decay and dropout.
Two of RealMLP-TD's choices lost there and are off by default: the best epoch on a held-out
split (training on every row for 48 epochs did better) and a third hidden layer. TabM's
parameter-efficient ensembling (Gorishniy et al. 2024; k members sharing every weight
matrix) is a parameter, n_ensemble, off by default for the same reason. It trains 48
epochs where RealMLP-TD trains 256, which is most of its speed. BENCHMARKS.md's "Tabular
classification" section measures each choice."""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from mlplab.errors import ConfigError
from mlplab.sklearn import tabular_prep
from mlplab.sklearn.params import ParameterError
from mlplab.sklearn.tabular_fit import LR_SCHEDULES, Plan, train, validation_split
from mlplab.sklearn.tabular_model import TabularNet
from mlplab.sklearn.tabular_prep import SCALINGS, TablePrep
from mlplab.training.device import generator_as_default, pick_device

_PREDICT_ROWS = 8192  # rows per forward pass at predict time


class TabularMLPClassifier(ClassifierMixin, BaseEstimator):
    """An MLP classifier for tables: DataFrames with numbers, categories and gaps, as they are.

    X may be a pandas DataFrame (numeric columns; `category`, `object`, `string` and `bool`
    columns are categorical; NaN or None anywhere is allowed) or an array of numbers (NaN
    allowed). A category never seen in fit is all zeros at predict time.

    Args:
        hidden_layer_sizes: widths of the hidden layers.
        n_ensemble: members of the TabM-style ensemble (1: a single MLP).
        max_epochs: epochs over the training rows (with best_epoch, the best one is kept).
        batch_size: rows per step ("auto": 256, or fewer for a small table).
        learning_rate: the base learning rate (RealMLP's, in its NTK parametrisation).
        weight_decay: AdamW's decay of the weights; falls to 0 over the second half.
        dropout: after each hidden layer; falls to 0 over the second half.
        label_smoothing: of the cross-entropy's targets.
        numeric_embedding: "periodic" (PBLD) or "none".
        n_frequencies: the periodic embedding's frequencies per numeric column.
        embedding_dim: the width of each numeric column's embedding, the value itself included.
        frequency_scale: the standard deviation the frequencies start from.
        scaling: "robust" (median, IQR, smooth clip to (-3, 3)) or "standard" (mean, std).
        front_scale: learn one factor per input column in front of the first layer.
        lr_schedule: "coslog4", "cosine" or "constant".
        best_epoch: hold out validation_fraction of the rows (stratified) and keep the weights
            of the epoch with the fewest errors on them; False (the default) trains on every
            row and keeps the last epoch, which measured better (BENCHMARKS.md's ablation).
        validation_fraction: the share of rows held out when best_epoch is True.
        max_levels: the most levels a categorical column keeps (the most frequent ones).
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda", ...
        random_state: an int for repeatable fits.
    """

    def __init__(
        self,
        hidden_layer_sizes=(256, 256),
        *,
        n_ensemble=1,
        max_epochs=48,
        batch_size="auto",
        learning_rate=0.04,
        weight_decay=0.02,
        dropout=0.15,
        label_smoothing=0.1,
        numeric_embedding="periodic",
        n_frequencies=16,
        embedding_dim=4,
        frequency_scale=0.1,
        scaling="robust",
        front_scale=True,
        lr_schedule="coslog4",
        best_epoch=False,
        validation_fraction=0.2,
        max_levels=64,
        device="auto",
        random_state=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_ensemble = n_ensemble
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.label_smoothing = label_smoothing
        self.numeric_embedding = numeric_embedding
        self.n_frequencies = n_frequencies
        self.embedding_dim = embedding_dim
        self.frequency_scale = frequency_scale
        self.scaling = scaling
        self.front_scale = front_scale
        self.lr_schedule = lr_schedule
        self.best_epoch = best_epoch
        self.validation_fraction = validation_fraction
        self.max_levels = max_levels
        self.device = device
        self.random_state = random_state

    def fit(self, X, y):
        """Train on (X, y).

        Args:
            X: a DataFrame or an (n_samples, n_features) array; see the class docstring.
            y: (n_samples,) labels of any type.
        Returns:
            self.
        """
        self._check_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        columns, kinds = self._columns(X, reset=True)
        y = column_or_1d(check_array(y, ensure_2d=False, dtype=None, input_name="y"), warn=True)
        if len(y) != len(columns[0]):
            raise ValueError(f"X has {len(columns[0])} rows but y has {len(y)}")
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        seed = _seed(self.random_state)
        rng = np.random.default_rng(seed)
        fraction = self.validation_fraction if self.best_epoch else 0.0
        fit_rows, val_rows = validation_split(codes, fraction, rng)
        self.prep_ = TablePrep(kinds, scaling=self.scaling)
        self.prep_.fit([c[fit_rows] for c in columns], self.max_levels)
        x = self.prep_.transform(columns)
        self._train(x, codes, fit_rows, val_rows, int(seed))
        return self

    def _check_params(self) -> None:
        """A one-line ValueError (an mlplab ConfigError too) naming the first bad parameter."""
        params = self.get_params()
        for name, ok, want in _RULES:
            if not ok(params[name]):
                raise ParameterError(f"{name}: must be {want}, got {params[name]!r}", field=name)

    def _train(self, x, codes, fit_rows, val_rows, seed: int) -> None:
        try:
            device = pick_device(self.device)
        except ConfigError as e:
            raise ParameterError(str(e), field="device") from None
        gen = torch.Generator(device=device).manual_seed(seed)
        xt = torch.as_tensor(x, device=device)
        yt = torch.as_tensor(codes, device=device)
        val = (xt[val_rows], yt[val_rows]) if len(val_rows) else None
        with generator_as_default(gen, device):
            self.net_ = self._build(x.shape[1]).to(device)
            record = train(
                self.net_, xt[fit_rows], yt[fit_rows], val, self._plan(len(fit_rows)), gen
            )
        self.best_epoch_ = record.best_epoch
        self.validation_errors_ = record.validation_errors
        self.n_iter_ = record.steps
        self.net_.eval()

    def _build(self, width: int) -> TabularNet:
        n_num = self.prep_.n_numeric
        embedding = None
        if self.numeric_embedding == "periodic":
            embedding = (self.n_frequencies, self.embedding_dim, self.frequency_scale)
        return TabularNet(
            n_num,
            width - n_num,
            len(self.classes_),
            tuple(self.hidden_layer_sizes),
            self.n_ensemble,
            embedding,
            self.front_scale,
        )

    def _plan(self, rows: int) -> Plan:
        batch = 256 if self.batch_size == "auto" else self.batch_size
        return Plan(
            epochs=self.max_epochs,
            batch_size=batch,
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
            dropout=self.dropout,
            label_smoothing=self.label_smoothing,
            lr_schedule=self.lr_schedule,
            best_epoch=self.best_epoch,
        )

    def _columns(self, X, reset: bool) -> tuple[list[np.ndarray], list[str]]:
        """The table as columns, and each one's kind ("num" or "cat")."""
        if tabular_prep.is_frame(X):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if len(X) == 0:
                raise ValueError(
                    f"Found array with 0 sample(s) (shape={X.shape}) while a "
                    "minimum of 1 is required."
                )
            kinds = tabular_prep.frame_kinds(X) if reset else self.prep_.kinds
            return tabular_prep.frame_columns(X, kinds), kinds
        x = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan")
        kinds = ["num"] * x.shape[1] if reset else self.prep_.kinds
        if not reset and kinds.count("cat"):
            raise ValueError(
                "X: this estimator was fitted on a DataFrame with categorical "
                "columns; give it a DataFrame"
            )
        return list(x.T), kinds

    def predict_proba(self, X) -> np.ndarray:
        """(n_samples, n_classes) probabilities, the members' average, in float64."""
        check_is_fitted(self, "net_")
        columns, _ = self._columns(X, reset=False)
        x = self.prep_.transform(columns)
        device = next(self.net_.parameters()).device
        net = self.net_.double()  # float64: the same row gives the same answer in any batch
        try:
            with torch.inference_mode():
                parts = [
                    net(torch.as_tensor(x[i : i + _PREDICT_ROWS], device=device).double())
                    .softmax(-1)
                    .mean(1)
                    .cpu()
                    .numpy()
                    for i in range(0, len(x), _PREDICT_ROWS)
                ]
        finally:
            self.net_.float()
        return np.concatenate(parts).astype(np.float64)

    def predict_log_proba(self, X) -> np.ndarray:
        """The log of predict_proba."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row."""
        check_is_fitted(self, "net_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator to one safetensors file (weights + JSON); no pickle."""
        from mlplab.sklearn import tabular_persist

        check_is_fitted(self, "net_")
        return tabular_persist.save(self, path)

    @classmethod
    def load(cls, path: str | Path) -> TabularMLPClassifier:
        """The estimator saved at `path` (on the CPU); unpickles nothing."""
        from mlplab.sklearn import tabular_persist

        return tabular_persist.load(cls, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = False
        tags.classifier_tags.multi_label = False
        return tags


def _seed(random_state) -> int:
    """The fit's seed: from an int or None through numpy's Generator; a RandomState draws it."""
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31))
    return int(np.random.default_rng(random_state).integers(2**31))


def _int_at_least(low: int):
    return lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= low


def _real_in(low: float, high: float):
    return lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and low <= v <= high


def _sizes(v) -> bool:
    return isinstance(v, tuple | list) and len(v) > 0 and all(_int_at_least(1)(h) for h in v)


_RULES = (
    ("hidden_layer_sizes", _sizes, "a non-empty tuple of positive ints"),
    ("n_ensemble", _int_at_least(1), "an int >= 1"),
    ("max_epochs", _int_at_least(1), "an int >= 1"),
    ("batch_size", lambda v: v == "auto" or _int_at_least(1)(v), "'auto' or an int >= 1"),
    ("learning_rate", _real_in(1e-12, 1e3), "a positive number"),
    ("weight_decay", _real_in(0, 1e3), "a number >= 0"),
    ("dropout", _real_in(0, 0.99), "in [0, 0.99]"),
    ("label_smoothing", _real_in(0, 0.99), "in [0, 0.99]"),
    ("numeric_embedding", lambda v: v in ("periodic", "none"), "'periodic' or 'none'"),
    ("n_frequencies", _int_at_least(1), "an int >= 1"),
    ("embedding_dim", _int_at_least(2), "an int >= 2"),
    ("frequency_scale", _real_in(0, 1e6), "a number >= 0"),
    ("scaling", lambda v: v in SCALINGS, f"one of {SCALINGS}"),
    ("front_scale", lambda v: isinstance(v, bool), "True or False"),
    ("lr_schedule", lambda v: v in LR_SCHEDULES, f"one of {LR_SCHEDULES}"),
    ("best_epoch", lambda v: isinstance(v, bool), "True or False"),
    ("validation_fraction", _real_in(0, 0.5), "in [0, 0.5]"),
    ("max_levels", _int_at_least(1), "an int >= 1"),
    ("device", lambda v: isinstance(v, str), "a device name such as 'auto' or 'cpu'"),
)
