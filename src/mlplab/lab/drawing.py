"""The live network drawing: for one input, each layer's drawn units and their values, and the
strongest weights into each drawn unit.

A layer wider than MAX_UNITS is drawn as MAX_UNITS of its units, evenly spread and always the
same ones (so the drawing does not jump as the run trains); the page says how many there are.
The output layer is drawn whole, as probabilities. Each drawn unit gets its TOP_K strongest
incoming weights from the drawn units of the layer before; a first-layer unit's 784 incoming
weights are sent as an 8-bit 28x28 tile, for the page to show on hover. Values are in eval
mode (dropout off, batch norm on its running statistics).
"""

from __future__ import annotations

import base64
from typing import Any

import torch

from mlplab.lab.inside import layer_values
from mlplab.lab.snapshot import to_bytes
from mlplab.nn.model import MLP
from mlplab.viz.diagram import shown_units

MAX_UNITS = 16
TOP_K = 3


@torch.no_grad()
def drawing(model: MLP, x: torch.Tensor, max_units: int = MAX_UNITS, top_k: int = TOP_K) -> dict:
    """The drawing of `model` for one normalised input x (784,) (see the module docstring)."""
    values = layer_values(model, x)
    linears = model.linears()
    layers: list[dict[str, Any]] = []
    before: list[int] | None = None
    for i, (layer, fc) in enumerate(zip(values, linears, strict=True)):
        last = i == len(linears) - 1
        size = fc.weight.shape[0]
        units = list(range(size)) if last else shown_units(size, max_units)
        a = torch.tensor(layer["a"])
        entry: dict[str, Any] = {
            "name": layer["name"],
            "size": size,
            "units": units,
            "values": [round(float(a[u]), 5) for u in units],
            "scale": float(a.abs().max()) or 1.0,
            "activation": layer["activation"],
        }
        w = fc.weight.detach().float().cpu()
        if before is None:
            tiles = to_bytes(w[units]) if w.shape[1] == 784 else b""
            entry["tiles"] = base64.b64encode(tiles).decode()
        else:
            sub = w[units][:, before]  # (drawn here, drawn before)
            strongest = sub.abs().argsort(dim=1, descending=True)[:, :top_k]
            entry["edges"] = [
                [[int(k), round(float(row[k]), 5)] for k in ks]
                for row, ks in zip(sub, strongest, strict=True)
            ]
            entry["weight_scale"] = float(sub.abs().max()) or 1.0
        layers.append(entry)
        before = units
    return {"layers": layers, "prediction": int(torch.tensor(values[-1]["a"]).argmax())}
