"""A fitted MLPClassifier in one safetensors file: the weights as tensors, the rest as JSON.

The header's metadata holds one JSON document (parameters, classes and their dtype, the
fitted attributes), so the file alone rebuilds the estimator and nothing is unpickled;
every shape is checked against the layer sizes before anything is trusted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator  # the estimator module imports this one, not back

from mlplab.errors import CheckpointError
from mlplab.io.atomic import atomic_write
from mlplab.io.checkpoint import read_safetensors
from mlplab.io.safetensors import safetensors_parts

FORMAT = "mlplab.sklearn.MLPClassifier/1"
KEY = "mlplab.sklearn"
LABEL_KINDS = "biufUO"  # numpy dtype kinds a label array may have
_FITTED = ("n_features_in_", "n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_")
_RECORD = ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_")


def save(est: BaseEstimator, path: str | Path) -> Path:
    """Write `est` (fitted) to `path` atomically."""
    tensors = {}
    for i, (w, b) in enumerate(zip(est.coefs_, est.intercepts_, strict=True)):
        tensors[f"coefs.{i}"] = torch.from_numpy(np.ascontiguousarray(w))
        tensors[f"intercepts.{i}"] = torch.from_numpy(np.ascontiguousarray(b))
    meta = {
        "format": FORMAT,
        "params": {k: jsonable(v) for k, v in est.get_params().items()},
        "classes": est.classes_.tolist(),
        "classes_dtype": est.classes_.dtype.str,
        "feature_names_in": (
            est.feature_names_in_.tolist() if hasattr(est, "feature_names_in_") else None
        ),
        **{name: jsonable(getattr(est, name)) for name in (*_FITTED, *_RECORD)},
    }
    text = json.dumps(meta, allow_nan=True)
    return atomic_write(path, safetensors_parts(tensors, {KEY: text}))


def jsonable(value: Any) -> Any:
    """A fitted attribute as JSON values (numpy scalars and arrays as numbers and lists)."""
    if isinstance(value, np.random.RandomState):
        return None  # a generator's state is not a parameter worth keeping
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list | np.ndarray):
        return [jsonable(v) for v in value]
    return value


def load(cls: type[BaseEstimator], path: str | Path) -> BaseEstimator:
    """The estimator saved at `path`; CheckpointError naming the file if it is not one."""
    path = Path(path)
    tensors, metadata = read_safetensors(path)
    try:
        meta = json.loads(metadata[KEY])
    except (KeyError, ValueError):
        raise CheckpointError(f"{path}: not a saved mlplab MLPClassifier") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a saved mlplab MLPClassifier ({FORMAT})")
    try:
        return _rebuild(cls, meta, tensors)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: a damaged MLPClassifier file: {e}") from None


def _rebuild(cls, meta: dict, tensors: dict[str, torch.Tensor]):
    params = dict(meta["params"])
    for name in ("hidden_layer_sizes", "log"):  # tuples, which JSON keeps as lists
        if isinstance(params.get(name), list):
            params[name] = tuple(params[name])
    est = cls(**params)
    dtype = np.dtype(meta["classes_dtype"])
    if dtype.kind not in LABEL_KINDS:
        raise ValueError(f"classes_dtype {dtype.str!r} is not a label type")
    est.classes_ = np.asarray(meta["classes"], dtype=dtype)
    for name in (*_FITTED, *_RECORD):
        setattr(est, name, meta[name])
    if meta["feature_names_in"] is not None:
        est.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
    layers = est.n_layers_ - 1
    est.coefs_ = [_array(tensors, f"coefs.{i}", 2) for i in range(layers)]
    est.intercepts_ = [_array(tensors, f"intercepts.{i}", 1) for i in range(layers)]
    if len(tensors) != 2 * layers:
        raise ValueError(f"{len(tensors)} tensors for {layers} layers")
    _check_chain(est)
    est._no_improvement_count = 0
    return est


def _array(tensors: dict[str, torch.Tensor], name: str, ndim: int) -> np.ndarray:
    t = tensors[name]
    if t.dim() != ndim or not t.is_floating_point():
        raise ValueError(f"tensor {name!r} must be a {ndim}-d float array")
    return t.numpy()


def _check_chain(est) -> None:
    """Each layer's fan-in is the previous one's fan-out, from the features to the outputs."""
    fan_in = est.n_features_in_
    for w, b in zip(est.coefs_, est.intercepts_, strict=True):
        if w.shape[0] != fan_in or b.shape != (w.shape[1],):
            raise ValueError(f"layer shapes {w.shape} and {b.shape} do not follow {fan_in}")
        fan_in = w.shape[1]
    classes = len(est.classes_)
    if fan_in != (1 if classes == 2 else classes) or fan_in != est.n_outputs_:
        raise ValueError(f"{fan_in} outputs for {classes} classes")
    if est.out_activation_ not in ("logistic", "softmax"):
        raise ValueError(f"out_activation_ {est.out_activation_!r}")
    if not all(np.isfinite(w).all() for w in est.coefs_):
        raise ValueError("weights that are not finite")
