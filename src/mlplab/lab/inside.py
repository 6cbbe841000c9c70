"""Inside a network, for one input: each layer's z = w.x + b and activation, one unit's
incoming weights, and the class probabilities. In eval mode: dropout off, batch norm on its
running statistics.
"""

from __future__ import annotations

from typing import Any

import torch

from mlplab.errors import ConfigError
from mlplab.lab.snapshot import tile_values
from mlplab.nn.model import MLP

STRONGEST = 12  # the incoming weights listed for a unit past the first layer


def _rounded(t: torch.Tensor, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in t.reshape(-1)]


@torch.no_grad()
def layer_values(model: MLP, x: torch.Tensor) -> list[dict[str, Any]]:
    """One normalised input (784,) -> per linear layer: its z and its activation (softmax
    probabilities for the output layer)."""
    was_training = model.training
    model.eval()
    try:
        h, layers = x.reshape(1, -1), []
        for name, module in model.named_children():
            h = module(h)
            if name.startswith("fc"):
                layers.append({"name": name, "units": h.shape[1], "z": h[0].clone()})
            elif name.startswith("act"):
                layers[-1]["a"] = h[0].clone()
    finally:
        model.train(was_training)
    last = layers[-1]
    last["a"] = torch.softmax(last["z"].double(), dim=0)
    for layer in layers:
        layer["activation"] = "softmax" if layer is last else model.spec.activation
        layer["z"], layer["a"] = _rounded(layer["z"]), _rounded(layer["a"], 8)
    return layers


def unit_weights(model: MLP, layer: int, unit: int) -> dict[str, Any]:
    """The incoming weights and bias of `unit` in linear layer `layer` (1-based, fc1 first)."""
    linears = model.linears()
    if not 1 <= layer <= len(linears):
        raise ConfigError(f"layer: must be 1 to {len(linears)}, got {layer}", field="layer")
    fc = linears[layer - 1]
    if not 0 <= unit < fc.weight.shape[0]:
        raise ConfigError(
            f"unit: fc{layer} has units 0 to {fc.weight.shape[0] - 1}, got {unit}", field="unit"
        )
    w = fc.weight[unit].detach().float().cpu()
    order = w.abs().argsort(descending=True)[:STRONGEST]
    return {
        "layer": f"fc{layer}",
        "unit": unit,
        "bias": float(fc.bias[unit].detach()),
        "weights": [float(v) for v in w],
        "tile": tile_values(w) if w.numel() == 784 else None,
        "strongest": [[int(i), float(w[i])] for i in order],
    }
