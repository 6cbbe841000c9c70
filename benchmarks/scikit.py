"""scikit-learn's MLPClassifier with its defaults, one epoch per partial_fit, timed per epoch.

The child reads MNIST with numpy alone (no torch import is charged to scikit-learn) and
scales pixels to [0, 1] as float64, the way its examples do. partial_fit runs exactly one
shuffled pass with the same Adam state that fit(max_iter=N) would keep.
"""

from __future__ import annotations

import gzip
import time
import warnings

import numpy as np
from sklearn.neural_network import MLPClassifier


def read_idx(path: str) -> np.ndarray:
    """An uncompressed or gzipped IDX file of uint8 values as an array of its shape."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def run(params: dict, emit) -> None:
    """Fit MLPClassifier(hidden) epoch by epoch, scoring the test set after each epoch."""
    files = params["files"]
    x = read_idx(files["train_images"]).reshape(-1, 784) / 255.0
    y = read_idx(files["train_labels"]).astype(np.int64)
    xt = read_idx(files["test_images"]).reshape(-1, 784) / 255.0
    yt = read_idx(files["test_labels"]).astype(np.int64)
    if params.get("train_size"):
        x, y = x[: params["train_size"]], y[: params["train_size"]]
    clf = MLPClassifier(hidden_layer_sizes=tuple(params["hidden"]), random_state=params["seed"])
    classes = np.arange(10)
    emit({"kind": "ready"})
    for epoch in range(1, params["epochs"] + 1):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(x, y, classes=classes)
        seconds = time.perf_counter() - start
        acc = 100.0 * float(clf.score(xt, yt))
        emit({"kind": "eval", "epoch": epoch, "segment_seconds": seconds, "test_accuracy": acc})
        if params.get("stop_at") and acc >= params["stop_at"]:
            break
