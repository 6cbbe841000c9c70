"""The estimator's parameters, checked at fit time (scikit-learn's rule: __init__ only stores).

A bad value is a one-line ValueError that names the parameter, as scikit-learn's own are;
it is also an mlplab ConfigError, so the CLI and mlplab's callers catch it as theirs.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from mlplab.config import SCHEDULES
from mlplab.errors import ConfigError

ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
SOLVERS = ("adam", "sgd")
ENGINES = ("auto", "fast", "autograd")


class ParameterError(ConfigError, ValueError):
    """An MLPClassifier parameter with a value it cannot train with."""


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _in(low: float, high: float, closed_low: bool = True, closed_high: bool = True):
    def holds(v: Any) -> bool:
        if not _real(v) or not np.isfinite(v):
            return False
        above = v >= low if closed_low else v > low
        below = v <= high if closed_high else v < high
        return above and below

    left, right = "[" if closed_low else "(", "]" if closed_high else ")"
    return holds, f"a number in {left}{low}, {high}{right}"


_INF = float("inf")
_RULES = {
    "alpha": _in(0.0, _INF, closed_high=False),
    "learning_rate_init": _in(0.0, _INF, closed_low=False, closed_high=False),
    "max_iter": (lambda v: _int(v) and v >= 1, "an int >= 1"),
    "shuffle": (lambda v: isinstance(v, bool | np.bool_), "a bool"),
    "tol": _in(0.0, _INF, closed_high=False),
    "warm_start": (lambda v: isinstance(v, bool | np.bool_), "a bool"),
    "momentum": _in(0.0, 1.0),
    "nesterovs_momentum": (lambda v: isinstance(v, bool | np.bool_), "a bool"),
    "early_stopping": (lambda v: isinstance(v, bool | np.bool_), "a bool"),
    "validation_fraction": _in(0.0, 1.0, closed_low=False, closed_high=False),
    "beta_1": _in(0.0, 1.0, closed_high=False),
    "beta_2": _in(0.0, 1.0, closed_high=False),
    "epsilon": _in(0.0, _INF, closed_low=False, closed_high=False),
    "n_iter_no_change": (lambda v: _int(v) and v >= 1, "an int >= 1"),
    "dropout": _in(0.0, 1.0, closed_high=False),
    "label_smoothing": _in(0.0, 1.0, closed_high=False),
    "device": (lambda v: isinstance(v, str), "a device name (auto, cpu, cuda, cuda:N, mps)"),
    "verbose": (lambda v: isinstance(v, bool | np.bool_) or _int(v), "a bool or an int"),
}
_CHOICES = {
    "activation": tuple(ACTIVATIONS),
    "solver": SOLVERS,
    "lr_schedule": SCHEDULES,
    "engine": ENGINES,
}


def check_params(params: dict[str, Any]) -> tuple[int, ...]:
    """Raise ParameterError for the first bad parameter; return the hidden layer sizes."""
    if params["solver"] == "lbfgs":
        raise ParameterError(
            "solver: 'lbfgs' is not supported by mlplab's MLPClassifier, which trains with "
            "minibatches on mlplab's engines; use solver='adam' or 'sgd'"
        )
    for name, choices in _CHOICES.items():
        if not (isinstance(params[name], str) and params[name] in choices):
            raise ParameterError(
                f"{name}: must be one of {', '.join(choices)}, got {params[name]!r}"
            )
    for name, (holds, what) in _RULES.items():
        if not holds(params[name]):
            raise ParameterError(f"{name}: must be {what}, got {params[name]!r}")
    batch = params["batch_size"]
    if not (batch == "auto" if isinstance(batch, str) else _int(batch) and batch >= 1):
        raise ParameterError(f"batch_size: must be 'auto' or an int >= 1, got {batch!r}")
    state = params["random_state"]
    if not (state is None or _int(state) or isinstance(state, np.random.RandomState)):
        raise ParameterError(
            f"random_state: must be None, an int or a numpy RandomState, got {state!r}"
        )
    return hidden_sizes(params["hidden_layer_sizes"])


def hidden_sizes(value: Any) -> tuple[int, ...]:
    """hidden_layer_sizes as a tuple: an int is one layer, as in scikit-learn."""
    sizes = (value,) if not hasattr(value, "__iter__") or isinstance(value, str) else value
    sizes = tuple(sizes)
    if not all(_int(s) and s > 0 for s in sizes):
        raise ParameterError(f"hidden_layer_sizes: must be positive ints, got {_plain(value)!r}")
    return tuple(int(s) for s in sizes)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, np.ndarray) else value
