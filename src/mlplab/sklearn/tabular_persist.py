"""A fitted TabularMLPClassifier in one safetensors file: tensors, and the rest as JSON.

The tensors are the network's weights and the preprocessing's centre and scale; the header's
metadata holds one JSON document (parameters, classes, the columns' kinds and levels, the
fitted attributes). Loading unpickles nothing: the network is first built on the `meta`
device, which allocates nothing, and every tensor's shape is checked against it before a
real network is made, so a file that claims huge layers fails cheaply.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator

from mlplab.errors import CheckpointError
from mlplab.io.atomic import atomic_write
from mlplab.io.checkpoint import read_safetensors
from mlplab.io.safetensors import safetensors_parts
from mlplab.sklearn.persist import jsonable
from mlplab.sklearn.tabular_prep import TablePrep

FORMAT = "mlplab.sklearn.TabularMLPClassifier/1"
KEY = "mlplab.sklearn.tabular"
LABEL_KINDS = "biufUO"  # numpy dtype kinds a label array may have
_FITTED = ("n_features_in_", "best_epoch_", "validation_errors_", "n_iter_")


def save(est: BaseEstimator, path: str | Path) -> Path:
    """Write `est` (fitted) to `path` atomically."""
    tensors = {f"net.{k}": v for k, v in est.net_.state_dict().items()}
    tensors["prep.center"] = torch.from_numpy(np.ascontiguousarray(est.prep_.center))
    tensors["prep.scale"] = torch.from_numpy(np.ascontiguousarray(est.prep_.scale))
    names = getattr(est, "feature_names_in_", None)
    meta = {
        "format": FORMAT,
        "params": {k: jsonable(v) for k, v in est.get_params().items()},
        "classes": est.classes_.tolist(),
        "classes_dtype": est.classes_.dtype.str,
        "prep": est.prep_.spec(),
        "feature_names_in": None if names is None else names.tolist(),
        **{name: jsonable(getattr(est, name)) for name in _FITTED},
    }
    return atomic_write(path, safetensors_parts(tensors, {KEY: json.dumps(meta)}))


def load(cls: type[BaseEstimator], path: str | Path) -> BaseEstimator:
    """The estimator saved at `path`, on the CPU; CheckpointError naming the file if it is
    not one."""
    path = Path(path)
    tensors, metadata = read_safetensors(path)
    try:
        meta = json.loads(metadata[KEY])
    except (KeyError, ValueError):
        raise CheckpointError(f"{path}: not a saved mlplab TabularMLPClassifier") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a saved mlplab TabularMLPClassifier ({FORMAT})")
    try:
        return _rebuild(cls, meta, tensors)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: a damaged TabularMLPClassifier file: {e}") from None


def _rebuild(cls, meta: dict, tensors: dict[str, torch.Tensor]):
    params = dict(meta["params"])
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    params["device"] = "cpu"
    est = cls(**params)
    est._check_params()
    dtype = np.dtype(meta["classes_dtype"])
    if dtype.kind not in LABEL_KINDS:
        raise ValueError(f"classes_dtype {dtype.str!r} is not a label type")
    est.classes_ = np.asarray(meta["classes"], dtype=dtype)
    for name in _FITTED:
        setattr(est, name, meta[name])
    if meta["feature_names_in"] is not None:
        est.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
    center, scale = tensors.pop("prep.center"), tensors.pop("prep.scale")
    est.prep_ = TablePrep.from_spec(meta["prep"], center.numpy(), scale.numpy())
    if len(est.prep_.kinds) != est.n_features_in_:
        raise ValueError(f"{len(est.prep_.kinds)} column kinds for {est.n_features_in_} features")
    state = {k.removeprefix("net."): v for k, v in tensors.items()}
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in est._build(est.prep_.width()).state_dict().items()}
    found = {k: v.shape for k, v in state.items()}
    if found != shapes:
        raise ValueError(f"tensors {sorted(found)} do not match the network {sorted(shapes)}")
    est.net_ = est._build(est.prep_.width())
    est.net_.load_state_dict(state)
    est.net_.eval()
    if not all(torch.isfinite(t).all() for t in state.values()):
        raise ValueError("weights that are not finite")
    return est
