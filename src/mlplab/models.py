"""Feed-forward classifiers built from a spec, the tutorials' presets, and init schemes.

A spec is text that fits on a command line: `784-128-64-10:relu`, or with options,
`784-100-10:sigmoid,dropout=0.2,bn`. The model is an nn.Sequential with the tutorials'
names (flatten, fc1, act1, fc2, ...) and returns logits.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from mlplab.errors import SpecError

ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


@dataclass(frozen=True)
class ModelSpec:
    """Layer sizes (input first, classes last), activation, dropout and batch norm."""

    sizes: tuple[int, ...]
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False

    def __post_init__(self):
        if len(self.sizes) < 2:
            raise SpecError(f"a model needs at least input and output sizes, got {self.sizes}")
        if any(s <= 0 for s in self.sizes):
            raise SpecError(f"layer sizes must be positive, got {self.sizes}")
        if self.activation not in ACTIVATIONS:
            raise SpecError(
                f"unknown activation {self.activation!r}; choose one of: {', '.join(ACTIVATIONS)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise SpecError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.sizes[1:-1]

    def __str__(self) -> str:
        # parse_spec(str(spec)) == spec: options follow a ":" even without hidden layers, and
        # dropout is written with repr so that no digits are lost (checkpoints store this text).
        opts = [self.activation] if self.hidden or self.activation != "relu" else []
        if self.dropout:
            opts.append(f"dropout={float(self.dropout)!r}")
        if self.batch_norm:
            opts.append("bn")
        text = "-".join(map(str, self.sizes))
        return f"{text}:{','.join(opts)}" if opts else text


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

_SIZES = re.compile(r"^\d+(-\d+)+$")


def parse_spec(text: str) -> ModelSpec:
    """Parse `784-128-64-10:relu,dropout=0.2,bn`; a preset name works too."""
    text = text.strip()
    if text in PRESETS:
        return parse_spec(PRESETS[text][0])
    sizes_text, _, opts_text = text.partition(":")
    if not _SIZES.match(sizes_text):
        raise SpecError(
            f"bad model spec {text!r}: expected sizes like 784-128-10 "
            f"(or a preset: {', '.join(PRESETS)})"
        )
    sizes = tuple(int(s) for s in sizes_text.split("-"))
    fields: dict = {"sizes": sizes}
    for opt in filter(None, (o.strip() for o in opts_text.split(","))):
        key, eq, value = opt.partition("=")
        if not eq and key in ACTIVATIONS:
            fields["activation"] = key
        elif not eq and key in ("bn", "batchnorm", "batch_norm"):
            fields["batch_norm"] = True
        elif key == "dropout" and eq:
            try:
                fields["dropout"] = float(value)
            except ValueError:
                raise SpecError(
                    f"bad model spec {text!r}: dropout={value!r} is not a number"
                ) from None
        else:
            raise SpecError(
                f"bad model spec {text!r}: unknown option {opt!r}; expected an "
                f"activation ({', '.join(ACTIVATIONS)}), dropout=P or bn"
            )
    return ModelSpec(**fields)


class MLP(nn.Sequential):
    """An nn.Sequential of named layers that remembers the spec it was built from."""

    def __init__(self, spec: ModelSpec):
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        n = len(spec.sizes) - 1
        for i, (fan_in, fan_out) in enumerate(
            zip(spec.sizes[:-1], spec.sizes[1:], strict=True), start=1
        ):
            layers[f"fc{i}"] = nn.Linear(fan_in, fan_out)
            if i == n:
                break
            if spec.batch_norm:
                layers[f"bn{i}"] = nn.BatchNorm1d(fan_out)
            layers[f"act{i}"] = ACTIVATIONS[spec.activation]()
            if spec.dropout:
                layers[f"drop{i}"] = nn.Dropout(spec.dropout)
        super().__init__(layers)
        self.spec = spec

    def linears(self) -> list[nn.Linear]:
        return [m for m in self if isinstance(m, nn.Linear)]


def build_model(spec: ModelSpec | str) -> MLP:
    """An MLP from a spec or spec text; (B, 1, 28, 28) or (B, 784) -> (B, classes) logits."""
    return MLP(parse_spec(spec) if isinstance(spec, str) else spec)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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
