"""The network: an nn.Sequential with the tutorials' names (flatten, fc1, act1, fc2, ...).

It is built from a ModelSpec and returns logits; softmax is applied only where
probabilities are shown.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from mlplab.nn.spec import ModelSpec, parse_spec

ACTIVATION_MODULES = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}


class MLP(nn.Sequential):
    """An nn.Sequential of named layers that remembers the spec it was built from."""

    def __init__(self, spec: ModelSpec):
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        if spec.input_dropout:  # no parameters: fc1, fc2, ... keep their checkpoint names
            layers["drop0"] = nn.Dropout(spec.input_dropout)
        n = len(spec.sizes) - 1
        for i, (fan_in, fan_out) in enumerate(
            zip(spec.sizes[:-1], spec.sizes[1:], strict=True), start=1
        ):
            layers[f"fc{i}"] = nn.Linear(fan_in, fan_out)
            if i == n:
                break
            if spec.batch_norm:
                layers[f"bn{i}"] = nn.BatchNorm1d(fan_out)
            layers[f"act{i}"] = ACTIVATION_MODULES[spec.activation]()
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
