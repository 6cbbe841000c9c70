"""The tutorials' first network, made trainable: plain tensors, torch.mm, hand-written backprop.

No nn.Module and no autograd. The forward pass keeps what the backward pass needs; the
backward pass is the chain rule written out: the softmax plus cross-entropy gradient is
`probs - onehot`, each activation contributes its own derivative, and a plain SGD step
updates the tensors in place. Weights are stored as nn.Linear stores them, (out, in), under
the same names (fc1.weight, ...), so a scratch checkpoint loads into the nn.Module version.
"""

from __future__ import annotations

import torch

from mlplab.errors import SpecError
from mlplab.nn.model import MLP, build_model
from mlplab.nn.spec import ModelSpec

ACTIVATIONS = ("sigmoid", "tanh", "relu")


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    # exp of a large positive number overflows; use the form whose exponent is never positive.
    e = torch.exp(-z.abs())
    return torch.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def tanh(z: torch.Tensor) -> torch.Tensor:
    return 2.0 * sigmoid(2.0 * z) - 1.0


def relu(z: torch.Tensor) -> torch.Tensor:
    return z.clamp(min=0)


def activate(name: str, z: torch.Tensor) -> torch.Tensor:
    return {"sigmoid": sigmoid, "tanh": tanh, "relu": relu}[name](z)


def activation_grad(name: str, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """d activation / dz, from the pre-activation z and the activation a."""
    if name == "sigmoid":
        return a * (1.0 - a)
    if name == "tanh":
        return 1.0 - a * a
    return (z > 0).to(z.dtype)


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax; subtracting the row max keeps exp from overflowing."""
    e = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood, through a stable log-softmax."""
    shifted = logits - logits.max(dim=1, keepdim=True).values
    log_probs = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
    return -log_probs[torch.arange(len(y), device=y.device), y].mean()


class ScratchMLP:
    """An MLP as a list of weight and bias tensors, trained without autograd."""

    def __init__(
        self, weights: list[torch.Tensor], biases: list[torch.Tensor], activation: str = "sigmoid"
    ):
        if activation not in ACTIVATIONS:
            raise SpecError(
                f"the scratch engine supports {', '.join(ACTIVATIONS)}; got {activation!r}"
            )
        self.weights, self.biases, self.activation = weights, biases, activation

    @classmethod
    def from_spec(
        cls,
        spec: ModelSpec,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> ScratchMLP:
        """Random init with PyTorch's default scheme (uniform, bound 1/sqrt(fan_in))."""
        if spec.dropout or spec.batch_norm:
            raise SpecError("the scratch engine supports neither dropout nor batch norm")
        weights, biases = [], []
        for fan_in, fan_out in zip(spec.sizes[:-1], spec.sizes[1:], strict=True):
            bound = fan_in**-0.5
            weights.append(
                (torch.rand(fan_out, fan_in, generator=generator, dtype=dtype) * 2 - 1) * bound
            )
            biases.append((torch.rand(fan_out, generator=generator, dtype=dtype) * 2 - 1) * bound)
        return cls(weights, biases, spec.activation)

    @classmethod
    def from_module(cls, model: MLP) -> ScratchMLP:
        """Copy the weights of an nn.Module MLP (which must have no dropout or batch norm)."""
        scratch = cls([], [], model.spec.activation)
        for layer in model.linears():
            scratch.weights.append(layer.weight.detach().clone())
            scratch.biases.append(layer.bias.detach().clone())
        return scratch

    @property
    def spec(self) -> ModelSpec:
        sizes = (self.weights[0].shape[1], *(w.shape[0] for w in self.weights))
        return ModelSpec(sizes, self.activation)

    def to(self, device: torch.device | str) -> ScratchMLP:
        return ScratchMLP(
            [w.to(device) for w in self.weights],
            [b.to(device) for b in self.biases],
            self.activation,
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The nn.Module MLP's names: fc1.weight, fc1.bias, fc2.weight, ..."""
        state = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True), start=1):
            state[f"fc{i}.weight"], state[f"fc{i}.bias"] = w, b
        return state

    def to_module(self) -> MLP:
        model = build_model(self.spec)
        model.load_state_dict(self.state_dict())
        return model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        """x (B, 784) -> logits (B, classes), plus the (input, z, a) of each layer."""
        a = x.reshape(len(x), -1)
        cache = []
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = torch.mm(a, w.t()) + b  # (B, in) @ (in, out) -> (B, out)
            out = z if i == last else activate(self.activation, z)
            cache.append((a, z, out))
            a = out
        return a, cache

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)[0]

    def backward(self, cache: list, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Gradients (dW, db) of the mean cross-entropy for each layer, by the chain rule."""
        logits = cache[-1][2]
        onehot = torch.zeros_like(logits)
        onehot[torch.arange(len(y), device=y.device), y] = 1.0
        dz = (softmax(logits) - onehot) / len(y)  # d loss / d logits
        grads = []
        for i in range(len(self.weights) - 1, -1, -1):
            a_in, _, _ = cache[i]
            grads.append((torch.mm(dz.t(), a_in), dz.sum(dim=0)))  # (out, in), (out,)
            if i > 0:
                _, z_prev, a_prev = cache[i - 1]
                dz = torch.mm(dz, self.weights[i]) * activation_grad(
                    self.activation, z_prev, a_prev
                )
        return grads[::-1]

    def sgd_step(self, grads: list[tuple[torch.Tensor, torch.Tensor]], lr: float) -> None:
        for w, b, (dw, db) in zip(self.weights, self.biases, grads, strict=True):
            w.sub_(dw, alpha=lr)
            b.sub_(db, alpha=lr)

    def train_step(
        self, x: torch.Tensor, y: torch.Tensor, lr: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on a batch; returns the batch's loss and logits (before the step)."""
        logits, cache = self.forward(x)
        self.sgd_step(self.backward(cache, y), lr)
        return cross_entropy(logits, y), logits
