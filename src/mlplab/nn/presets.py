"""The tutorials' networks by name: `mlplab train --preset c` is 784-100-10 with ReLU."""

from __future__ import annotations

PRESETS: dict[str, tuple[str, str]] = {
    "logistic": ("784-10", "logistic regression: no hidden layer"),
    "a": ("784-100-10:sigmoid", "tutorial model A: one hidden layer, sigmoid"),
    "b": ("784-100-10:tanh", "tutorial model B: one hidden layer, tanh"),
    "c": ("784-100-10:relu", "tutorial model C: one hidden layer, ReLU"),
    "d": ("784-100-100-10:relu", "tutorial model D: two hidden layers, ReLU"),
    "e": ("784-100-100-100-10:relu", "tutorial model E: three hidden layers, ReLU"),
    "tutorial-256": ("784-256-10:sigmoid", "the tensors-only tutorial network"),
    "tutorial-128-64": ("784-128-64-10:relu", "the nn.Sequential tutorial network"),
    "quickstart-512": ("784-512-512-10:relu", "the PyTorch quickstart network"),
}

DEFAULT_PRESET = "quickstart-512"
