"""Training engines: one optimizer step on a batch, three ways.

- autograd: nn.Module, autograd and mlplab.optim; trains every model the spec can describe.
- fast: the same network, its forward and backward passes written out as a fixed sequence of
  matmuls into buffers allocated once per run (activations, gradients), with no autograd
  graph. It trains plain MLPs (relu, tanh or sigmoid; no dropout or batch norm).
  tests/test_engines.py checks it against autograd step for step.
- scratch: the tutorials' tensors-only network (mlplab.scratch), for teaching.

An engine's step(x, y) returns (loss, logits, lr) as tensors on the device; nothing in it
waits for the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mlplab.config import TrainConfig, fast_engine_problem
from mlplab.models import MLP
from mlplab.optim import lr_at, make_optimizer
from mlplab.scratch import ScratchMLP


def resolve_engine(config: TrainConfig) -> str:
    """The engine a config trains with: "auto" is fast when the model allows it."""
    if config.engine != "auto":
        return config.engine
    return "autograd" if fast_engine_problem(config.parsed_spec) else "fast"


def make_engine(config: TrainConfig, model: MLP, total: int):
    engines = {"autograd": AutogradEngine, "fast": FastEngine, "scratch": ScratchEngine}
    return engines[resolve_engine(config)](config, model, total)


class AutogradEngine:
    """nn.Module, autograd and mlplab.optim: the engine for every model and optimizer."""

    def __init__(self, config: TrainConfig, model: MLP, total: int):
        self.config, self.model, self.total, self.it = config, model.train(), total, 0
        self.params = list(model.parameters())
        self.optimizer = make_optimizer(config, self.params)

    def step(self, x: torch.Tensor, y: torch.Tensor):
        logits = self.model(x)  # (B, 784) -> (B, classes)
        if self.config.loss == "nll":
            loss = F.nll_loss(F.log_softmax(logits, dim=1), y)
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
        for p in self.params:
            p.grad = None
        loss.backward()
        lr = lr_at(self.config, self.it, self.total)
        self.optimizer.step([p.grad for p in self.params], lr)
        self.it += 1
        return loss.detach(), logits.detach(), lr

    def module(self) -> MLP:
        return self.model


# In-place activations, and their derivatives from the output alone: each multiplies the
# incoming gradient by the activation's slope, written into that gradient.
_ACTIVATE = {"relu": torch.relu_, "tanh": torch.tanh_, "sigmoid": torch.sigmoid_}


def _relu_backward(grad: torch.Tensor, out: torch.Tensor) -> None:
    torch.ops.aten.threshold_backward.grad_input(grad, out, 0.0, grad_input=grad)


def _tanh_backward(grad: torch.Tensor, out: torch.Tensor) -> None:
    torch.ops.aten.tanh_backward.grad_input(grad, out, grad_input=grad)  # grad * (1 - out^2)


def _sigmoid_backward(grad: torch.Tensor, out: torch.Tensor) -> None:
    torch.ops.aten.sigmoid_backward.grad_input(grad, out, grad_input=grad)  # grad * out(1-out)


_BACKWARD = {"relu": _relu_backward, "tanh": _tanh_backward, "sigmoid": _sigmoid_backward}


class FastEngine:
    """A plain MLP's forward and backward passes, written out, into preallocated buffers.

    Weights are kept transposed, (in, out), so both passes are plain addmm/mm calls; the
    module is refreshed from them whenever it is asked for (at evaluations).
    """

    def __init__(self, config: TrainConfig, model: MLP, total: int):
        self.config, self.model, self.total, self.it = config, model, total, 0
        layers = model.linears()
        self.weights = [layer.weight.detach().t().contiguous() for layer in layers]
        self.biases = [layer.bias.detach().clone() for layer in layers]
        self.grad_w = [torch.empty_like(w) for w in self.weights]
        self.grad_b = [torch.empty_like(b) for b in self.biases]
        self.grads = self.grad_w + self.grad_b  # in the optimizer's order of parameters
        self.optimizer = make_optimizer(config, self.weights + self.biases)
        activation = model.spec.activation
        self.activate = _ACTIVATE.get(activation)
        self.activation_backward = _BACKWARD.get(activation)
        rows = config.batch_size
        like = {"device": self.weights[0].device, "dtype": self.weights[0].dtype}
        sizes = model.spec.sizes[1:]
        self.outs = [torch.empty(rows, n, **like) for n in sizes]  # a = act(x W + b)
        self.deltas = [torch.empty(rows, n, **like) for n in sizes]  # d loss / d z
        # scatter_add_ source: -(1 - smoothing) at each row's true class
        self.hit = torch.full((rows, 1), config.label_smoothing - 1.0, **like)

    def step(self, x: torch.Tensor, y: torch.Tensor):
        n, last = len(x), len(self.weights) - 1
        outs = [o[:n] for o in self.outs]
        # forward: z = a W + b, activated in place except for the logits
        a = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            torch.addmm(b, a, w, out=outs[i])
            if i < last:
                self.activate(outs[i])
            a = outs[i]
        logits = outs[last]

        # loss, and its gradient w.r.t. the logits: (softmax - target) / n, where the target
        # is one-hot, smoothed toward uniform by label_smoothing
        smoothing = self.config.label_smoothing
        log_probs = torch.log_softmax(logits, dim=1)
        loss = -log_probs.gather(1, y.view(-1, 1)).mean()
        if smoothing:
            loss = (1.0 - smoothing) * loss - smoothing * log_probs.mean()
        delta = self.deltas[last][:n]
        torch.exp(log_probs, out=delta)
        if smoothing:
            delta.sub_(smoothing / logits.shape[1])
        delta.scatter_add_(1, y.view(-1, 1), self.hit[:n])
        delta.mul_(1.0 / n)

        # backward: each layer's weight gradient, then the gradient of the layer below
        for i in range(last, -1, -1):
            a_in = x if i == 0 else outs[i - 1]
            torch.mm(a_in.t(), delta, out=self.grad_w[i])
            torch.sum(delta, dim=0, out=self.grad_b[i])
            if i:
                below = self.deltas[i - 1][:n]
                torch.mm(delta, self.weights[i].t(), out=below)
                self.activation_backward(below, outs[i - 1])
                delta = below

        lr = lr_at(self.config, self.it, self.total)
        self.optimizer.step(self.grads, lr)
        self.it += 1
        return loss, logits, lr

    @torch.no_grad()
    def module(self) -> MLP:
        for layer, w, b in zip(self.model.linears(), self.weights, self.biases, strict=True):
            layer.weight.copy_(w.t())
            layer.bias.copy_(b)
        return self.model


class ScratchEngine:
    """Plain tensors, hand-written backprop and a hand-written SGD step (mlplab.scratch)."""

    def __init__(self, config: TrainConfig, model: MLP, total: int):
        self.config, self.total, self.it = config, total, 0
        self.net = ScratchMLP.from_module(model)  # the same init as the other engines
        self.device = next(model.parameters()).device

    def step(self, x: torch.Tensor, y: torch.Tensor):
        lr = lr_at(self.config, self.it, self.total)
        loss, logits = self.net.train_step(x, y, lr)
        self.it += 1
        return loss, logits, lr

    def module(self) -> MLP:
        return self.net.to_module().to(self.device)
