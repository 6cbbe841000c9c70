"""The backward pass written out, beside autograd's, for one input and a chosen label.

This is the derivation the tutorials do on paper. For the mean cross-entropy of softmax(z_L)
against the label y:

    delta_L = softmax(z_L) - onehot(y)                      d loss / d z_L
    dW_l = delta_l a_(l-1)^T,   db_l = delta_l              each layer's gradients
    delta_(l-1) = (W_l^T delta_l) * f'(z_(l-1))              back through the activation

with batch norm (eval mode: a fixed per-unit scale and shift) multiplying delta by its
scale on the way. Everything runs in float64 on a copy of the model, in eval mode (dropout
off), so the largest difference from autograd is rounding alone.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError
from mlplab.nn.model import MLP


def _sigmoid(z):
    return torch.sigmoid(z)


# activation: (f(z), f'(z)), written out
DERIVATIVES = {
    "relu": (lambda z: z.clamp(min=0), lambda z: (z > 0).to(z.dtype)),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1 - _sigmoid(z))),
    "tanh": (torch.tanh, lambda z: 1 - torch.tanh(z) ** 2),
    "leaky_relu": (
        lambda z: torch.where(z > 0, z, 0.01 * z),
        lambda z: torch.where(z > 0, torch.ones_like(z), torch.full_like(z, 0.01)),
    ),
    "gelu": (
        lambda z: z * _phi(z),
        lambda z: _phi(z) + z * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi),
    ),
    "silu": (lambda z: z * _sigmoid(z), lambda z: _sigmoid(z) * (1 + z * (1 - _sigmoid(z)))),
    "identity": (lambda z: z, lambda z: torch.ones_like(z)),
}


def _phi(z):
    """The standard normal CDF (nn.GELU's exact form)."""
    return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


def _blocks(model: MLP) -> list[tuple[nn.Linear, nn.BatchNorm1d | None]]:
    """Each linear layer with the batch norm that follows it, if any."""
    blocks = []
    for module in model.children():
        if isinstance(module, nn.Linear):
            blocks.append([module, None])
        elif isinstance(module, nn.BatchNorm1d):
            blocks[-1][1] = module
    return [tuple(b) for b in blocks]


def _bn_affine(bn: nn.BatchNorm1d | None, like: torch.Tensor):
    """Eval-mode batch norm as scale * z + shift."""
    if bn is None:
        return torch.ones_like(like), torch.zeros_like(like)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


@torch.no_grad()
def hand_gradients(model: MLP, x: torch.Tensor, label: int) -> dict[str, Any]:
    """The gradients of every layer by the chain rule, and the output layer's quantities."""
    f, df = DERIVATIVES[model.spec.activation]
    blocks = _blocks(model)
    a, cache = x.reshape(1, -1), []
    for i, (fc, bn) in enumerate(blocks):
        z = torch.mm(a, fc.weight.t()) + fc.bias  # (1, in) @ (in, out) -> (1, out)
        if i == len(blocks) - 1:
            cache.append((a, z, None))
            break
        scale, shift = _bn_affine(bn, z)
        u = scale * z + shift
        cache.append((a, z, (scale, u)))
        a = f(u)
    logits = cache[-1][1]
    probs = torch.softmax(logits, dim=1)
    onehot = torch.zeros_like(probs)
    onehot[0, label] = 1.0
    delta = probs - onehot  # d loss / d z_L, for a batch of one
    output = {"probs": probs[0].tolist(), "onehot": onehot[0].tolist(), "delta": delta[0].tolist()}
    grads = [None] * len(blocks)
    for i in range(len(blocks) - 1, -1, -1):
        a_in = cache[i][0]
        grads[i] = (torch.mm(delta.t(), a_in), delta.sum(0))  # (out, in), (out,)
        if i > 0:
            scale, u = cache[i - 1][2]
            delta = torch.mm(delta, blocks[i][0].weight) * df(u) * scale
    loss = -torch.log(probs[0, label])
    return {"grads": grads, "output": output, "loss": float(loss)}


def autograd_gradients(model: MLP, x: torch.Tensor, label: int) -> list[tuple]:
    """Autograd's gradients of the same loss, layer by layer."""
    params = [p for fc, _ in _blocks(model) for p in (fc.weight, fc.bias)]
    loss = F.cross_entropy(model(x.reshape(1, -1)), torch.tensor([label]))
    grads = torch.autograd.grad(loss, params)
    return list(zip(grads[0::2], grads[1::2], strict=True))


def gradient_check(model: MLP, x: torch.Tensor, label: int) -> dict[str, Any]:
    """Hand-written backward pass vs autograd, in float64: per layer, both gradients' norms
    and their largest absolute difference."""
    classes = model.linears()[-1].out_features
    if isinstance(label, torch.Tensor) and label.numel() == 1 and not label.is_floating_point():
        label = int(label)  # a label as a dataset holds it
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < classes:
        raise ConfigError(
            f"label: must be a class from 0 to {classes - 1}, got {label!r}", field="label"
        )
    model64 = copy.deepcopy(model).to(torch.float64).cpu().eval()
    x64 = x.detach().to(torch.float64).cpu()
    hand = hand_gradients(model64, x64, label)
    auto = autograd_gradients(model64, x64, label)
    layers = []
    for i, ((hw, hb), (aw, ab)) in enumerate(zip(hand["grads"], auto, strict=True)):
        layers.append(
            {
                "name": f"fc{i + 1}",
                "shape": list(hw.shape),
                "hand_norm": float(torch.cat([hw.reshape(-1), hb]).norm()),
                "autograd_norm": float(torch.cat([aw.reshape(-1), ab]).norm()),
                "max_diff_weight": float((hw - aw).abs().max()),
                "max_diff_bias": float((hb - ab).abs().max()),
            }
        )
    largest = max(max(r["max_diff_weight"], r["max_diff_bias"]) for r in layers)
    return {
        "label": label,
        "loss": hand["loss"],
        "output": hand["output"],
        "layers": layers,
        "max_diff": largest,
        "dtype": "float64",
    }
