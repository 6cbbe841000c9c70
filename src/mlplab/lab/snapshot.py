"""A snapshot of a network as it trains: first-layer tiles, per-layer norms, histograms, dead units.

Small enough to send a few times a second: the tiles are 8-bit (one byte a weight, base64),
the histograms binned, every other number a float per layer.
"""

from __future__ import annotations

import base64
from typing import Any

import torch

from mlplab.nn.model import MLP

TILES = 64  # first-layer units drawn as 28x28 tiles
BINS = 24
RELU_LIKE = ("relu",)  # activations whose units can die (output 0 for every input)


def to_bytes(w: torch.Tensor) -> bytes:
    """Weights -> 8-bit grey, 128 at zero, 0 and 255 at the largest magnitude (per row)."""
    w = w.detach().float().cpu()
    scale = w.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)
    return (127.5 + 127.5 * w / scale).round().clamp(0, 255).to(torch.uint8).numpy().tobytes()


def tile_values(w: torch.Tensor) -> list[int]:
    """One unit's incoming weights as the 8-bit values its tile shows."""
    return list(to_bytes(w.reshape(1, -1)))


def histogram(t: torch.Tensor | None, bins: int = BINS) -> dict[str, Any] | None:
    """Counts in `bins` equal bins over [-m, m], m the largest finite magnitude; NaN and
    infinite values (a diverged run has them) are counted apart, as `nonfinite`."""
    if t is None:
        return None
    t = t.detach().float().reshape(-1)
    ok = torch.isfinite(t)
    nonfinite = int(t.numel() - ok.sum())
    t = t[ok] if nonfinite else t
    m = float(t.abs().max()) if t.numel() else 0.0
    if m == 0.0:
        counts = [int(t.numel())] + [0] * (bins - 1)
    else:
        counts = [int(c) for c in torch.histc(t, bins=bins, min=-m, max=m)]
    return {"max": m, "counts": counts, "nonfinite": nonfinite}


@torch.no_grad()
def hidden_outputs(model: MLP, x: torch.Tensor) -> list[torch.Tensor]:
    """Each hidden layer's activation for a batch, in eval mode (dropout off)."""
    outputs, was_training = [], model.training
    model.eval()
    try:
        h = x
        for name, module in model.named_children():
            h = module(h)
            if name.startswith("act"):
                outputs.append(h)
    finally:
        model.train(was_training)
    return outputs


def snapshot(model: MLP, grads: list[torch.Tensor | None], probe: torch.Tensor) -> dict:
    """The network now: tiles, and per linear layer its norms, histograms and dead share.

    Args:
        model: the network being trained.
        grads: the last step's weight gradient of each linear layer (Trainer.last_grads).
        probe: a fixed batch of normalised inputs; a hidden unit is dead when its ReLU
            gives 0 for every one of them.
    """
    linears = model.linears()
    hidden = hidden_outputs(model, probe)
    relu = model.spec.activation in RELU_LIKE
    layers = []
    for i, (layer, grad) in enumerate(zip(linears, grads, strict=True)):
        dead = None
        if relu and i < len(hidden):
            dead = float((hidden[i] <= 0).all(dim=0).float().mean())
        layers.append(
            {
                "name": f"fc{i + 1}",
                "shape": list(layer.weight.shape),
                "weight_norm": float(layer.weight.detach().norm()),
                "grad_norm": float(grad.norm()) if grad is not None else None,
                "dead": dead,
                "weights": histogram(layer.weight),
                "grads": histogram(grad),
            }
        )
    first = linears[0].weight
    n = min(TILES, first.shape[0]) if first.shape[1] == 784 else 0
    tiles = base64.b64encode(to_bytes(first[:n])).decode() if n else ""
    return {"layers": layers, "tiles": {"count": n, "data": tiles}}
