"""A fitted MLPClassifier's forward pass, in float64 numpy on its coefs_ and intercepts_.

Each row's probabilities depend on that row alone, so they are identical on any subset of
rows. A scipy sparse X stays sparse: its product with the first layer's weights is dense.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def probabilities(
    X, coefs: list[np.ndarray], intercepts: list[np.ndarray], activation: str, output: str
) -> np.ndarray:
    """Class probabilities (n_samples, n_classes) float64; `output` is out_activation_: one
    logistic unit for two classes, else a softmax over every class (one class: all 1)."""
    a = X.astype(np.float64) if sparse.issparse(X) else np.asarray(X, dtype=np.float64)
    last = len(coefs) - 1
    for i, (w, b) in enumerate(zip(coefs, intercepts, strict=True)):
        a = a @ np.asarray(w, dtype=np.float64) + b  # (n, fan_in) -> (n, fan_out)
        if i < last:
            a = ACTIVATE[activation](a)
    if output == "logistic":
        p = sigmoid(a[:, 0])
        return np.column_stack([1.0 - p, p])
    a -= a.max(axis=1, keepdims=True)
    np.exp(a, out=a)
    return a / a.sum(axis=1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), in two branches so that exp never overflows."""
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


ACTIVATE = {
    "identity": lambda a: a,
    "logistic": sigmoid,
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0, out=a),
}
