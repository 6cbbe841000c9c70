"""Weight initialisation schemes: PyTorch's default, normal(0, std), Xavier and Kaiming."""

from __future__ import annotations

import math

import torch
from torch import nn

from mlplab.errors import SpecError
from mlplab.nn.model import MLP

INITS = ("default", "normal", "xavier", "kaiming")


def parse_init(text: str) -> tuple[str, float]:
    """`default`, `normal[:STD]` (std 0.01 unless given), `xavier` or `kaiming`."""
    scheme, _, arg = text.partition(":")
    if scheme not in INITS:
        raise SpecError(
            f"unknown init {text!r}; choose one of: default, normal[:STD], xavier, kaiming"
        )
    if arg and scheme != "normal":
        raise SpecError(f"init {scheme!r} takes no argument, got {text!r}")
    try:
        std = float(arg) if arg else 0.01
    except ValueError:
        raise SpecError(f"init {text!r}: std {arg!r} is not a number") from None
    if not std > 0 or not math.isfinite(std):
        raise SpecError(f"init {text!r}: std must be positive")
    return scheme, std


def init_weights(model: MLP, init: str = "default", generator: torch.Generator | None = None):
    """Re-initialise the Linear layers in place; biases are zero except for `default`.

    default is PyTorch's own (Kaiming-uniform with a=sqrt(5)), already applied at build time.
    """
    scheme, std = parse_init(init)
    if scheme == "default":
        return model
    act = model.spec.activation
    gain_name = act if act in ("sigmoid", "tanh", "relu", "leaky_relu") else "relu"
    with torch.no_grad():
        for layer in model.linears():
            w = layer.weight
            fan_in = w.shape[1]
            if scheme == "normal":
                w.normal_(0.0, std, generator=generator)
            elif scheme == "xavier":
                bound = nn.init.calculate_gain(gain_name) * math.sqrt(6.0 / sum(w.shape))
                w.uniform_(-bound, bound, generator=generator)
            else:
                gain = nn.init.calculate_gain("leaky_relu" if act == "leaky_relu" else "relu")
                w.normal_(0.0, gain / math.sqrt(fan_in), generator=generator)
            layer.bias.zero_()
    return model
