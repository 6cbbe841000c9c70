"""Training engines: one optimizer step on a batch, three ways.

- autograd: nn.Module, autograd and mlplab.optim; trains every model the spec can describe.
- fast: the same network, its forward and backward passes written out as a fixed sequence of
  matmuls into buffers allocated once per run (activations, gradients), with no autograd
  graph. tests/training/test_engines.py checks it against autograd step for step.
- scratch: the tutorials' tensors-only network (mlplab.nn.scratch), for teaching.

Every engine satisfies the Engine protocol below, which the Trainer alone calls, and says
what it cannot train (`cannot_train`) next to its code. Its step(x, y, lr) is
forward_backward(x, y), which returns (loss, logits) as tensors on the device and leaves the
gradients in `grads`, then update(lr); data-parallel training all-reduces `grads` in
between. Each engine answers for its own gradients (`linear_grads`). Nothing in a step
waits for the device. Its state_dict holds its weights (the fast engine's own transposed
copies included) and its optimizer's buffers; loading one continues the run exactly.

forward_backward's `weights` (B,) weigh each row's loss: the batch's loss is then
sum(w_i loss_i) / sum(w_i), as scikit-learn weighs its MLP's loss, so a row of weight 0
counts for nothing and one of weight 2 as two copies of it. A batch whose weights sum to 0
has a loss of 0. Without weights each step is exactly the unweighted one; scratch refuses
weights with a one-line ConfigError.

The fast and autograd engines also take a mixed batch (forward_backward's `mix`), constrain
their weights' norms (`constrain`, max-norm) and name the tensors a weight average follows
(`averaged`), and build a module from such an average (`module_from`): see
mlplab.training.techniques. Scratch has none of these: its methods for them raise a
one-line ConfigError, and its cannot_train refuses the configs that would call them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import torch
import torch.nn.functional as F

from mlplab.config import TrainConfig
from mlplab.errors import ConfigError
from mlplab.nn.model import MLP
from mlplab.nn.scratch import ScratchMLP, cross_entropy
from mlplab.training.device import generator_as_default
from mlplab.training.optim import make_optimizer
from mlplab.training.techniques import Mix, max_norm_

Step = tuple[torch.Tensor, torch.Tensor]  # (loss, logits)
SPARE = 4  # scalars that ride along with the fast engine's gradients in one all-reduce


def _optimizer(config: TrainConfig, params: list[torch.Tensor]):
    return make_optimizer(
        config.optimizer,
        params,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
        betas=(config.beta1, config.beta2),
        eps=config.eps,
    )


def _float_buffers(model: torch.nn.Module) -> list[torch.Tensor]:
    """Batch norm's running statistics (not its batch count): a weight average follows them."""
    return [b for b in model.buffers() if b.is_floating_point()]


def _mixed_loss(loss_of, y: torch.Tensor, mix: Mix | None) -> torch.Tensor:
    """loss_of(y), or for a mixed batch lam loss_of(y) + (1 - lam) loss_of(partner)."""
    if mix is None:
        return loss_of(y)
    return mix.lam * loss_of(y) + (1.0 - mix.lam) * loss_of(mix.partner)


def _weight_scale(weights: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """w / sum(w), in `like`'s dtype: each row's share of a weighted mean (0s if w sums to 0)."""
    w = weights.to(like.dtype)
    total = w.sum()
    return w / torch.where(total == 0, torch.ones_like(total), total)


def _copy_into(mine: list[torch.Tensor], saved: list[torch.Tensor], what: str) -> None:
    """Load saved tensors in place (the optimizer holds references to ours)."""
    shapes = [tuple(t.shape) for t in saved]
    if shapes != [tuple(t.shape) for t in mine]:
        raise ConfigError(
            f"model: the saved {what} shapes {shapes} do not fit this model", field="model"
        )
    with torch.no_grad():
        for t, s in zip(mine, saved, strict=True):
            t.copy_(s)


class Engine(Protocol):
    """What the Trainer asks of an engine; tests/training/test_engines.py checks that every
    engine has each member, with these parameters."""

    name: ClassVar[str]

    @staticmethod
    def cannot_train(config: TrainConfig) -> str | None:
        """Why this engine cannot train `config` (one line naming what to change), or None."""

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> Step:
        """forward_backward, then update."""

    def forward_backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mix: Mix | None = None,
        weights: torch.Tensor | None = None,
    ) -> Step:
        """(loss, logits) of a batch, with its gradients left in `grads`; `weights` (B,) weigh
        each row's loss (see the module docstring)."""

    @property
    def grads(self) -> list[torch.Tensor]:
        """The last forward_backward's gradients, in the optimizer's order of parameters."""

    def update(self, lr: float) -> None:
        """One optimizer step from `grads`."""

    def flat_grads(self) -> torch.Tensor | None:
        """`grads` as views into one flat buffer with SPARE slots at its end, for a single
        all-reduce; None where they are separate tensors."""

    def linear_grads(self) -> list[torch.Tensor | None]:
        """The last step's weight gradient of each linear layer (None before a step)."""

    def module(self) -> MLP:
        """The live network as an MLP module, up to date."""

    def constrain(self, radius: float) -> None:
        """Max-norm: each unit's incoming weights rescaled to a norm of at most `radius`."""

    def averaged(self) -> list[torch.Tensor]:
        """The tensors a weight average follows."""

    def module_from(self, tensors: Sequence[torch.Tensor]) -> MLP:
        """A module holding `tensors`, laid out as averaged() lays them."""

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's buffers (for a fit that continues with new data)."""

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Continue the optimizer from optimizer_state()."""

    def state_dict(self) -> dict[str, Any]:
        """The weights and the optimizer's buffers: loading them continues the run exactly."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from state_dict(); ConfigError, naming the field, where it does not fit."""


class _WithOptimizer:
    """What the autograd and fast engines share: an mlplab optimizer over their parameters,
    stepped from their `grads`."""

    optimizer: Any

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> Step:
        loss, logits = self.forward_backward(x, y)
        self.update(lr)
        return loss, logits

    def update(self, lr: float) -> None:
        self.optimizer.step(self.grads, lr)

    def optimizer_state(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)


class AutogradEngine(_WithOptimizer):
    """nn.Module, autograd and mlplab.optim: the engine for every model and optimizer."""

    name = "autograd"

    @staticmethod
    def cannot_train(config: TrainConfig) -> str | None:
        return None

    def __init__(self, config: TrainConfig, model: MLP, dropout: torch.Generator | None = None):
        self.config, self.model = config, model.train()
        self.params = list(model.parameters())
        self.optimizer = _optimizer(config, self.params)
        # dropout draws from its own stream, saved with the run
        spec = model.spec
        self.dropout = dropout if spec.dropout or spec.input_dropout else None
        self.device = self.params[0].device
        self._average_model: MLP | None = None  # built when a weight average is first read

    def flat_grads(self) -> None:
        return None  # its gradients live in separate .grad tensors

    def linear_grads(self) -> list[torch.Tensor | None]:
        return [layer.weight.grad for layer in self.model.linears()]

    def forward_backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mix: Mix | None = None,
        weights: torch.Tensor | None = None,
    ) -> Step:
        if self.dropout is None:
            loss, logits = self._forward_backward(x, y, mix, weights)
        else:
            with generator_as_default(self.dropout, self.device):
                loss, logits = self._forward_backward(x, y, mix, weights)
        return loss.detach(), logits.detach()

    @property
    def grads(self) -> list[torch.Tensor]:
        return [p.grad for p in self.params]

    def _forward_backward(
        self, x: torch.Tensor, y: torch.Tensor, mix: Mix | None, weights: torch.Tensor | None
    ) -> Step:
        logits = self.model(x)  # (B, features) -> (B, classes)
        loss = _mixed_loss(self._loss_of(logits, weights), y, mix)
        for p in self.params:
            p.grad = None
        loss.backward()
        return loss, logits

    def _loss_of(self, logits: torch.Tensor, weights: torch.Tensor | None):
        """The batch's loss against targets t: the mean over its rows, or their weighted mean."""
        reduction = "mean" if weights is None else "none"
        nll = self.config.loss == "nll"
        log_probs = F.log_softmax(logits, dim=1) if nll else None
        smoothing = self.config.label_smoothing

        def loss_of(t: torch.Tensor) -> torch.Tensor:
            if nll:
                return F.nll_loss(log_probs, t, reduction=reduction)
            return F.cross_entropy(logits, t, label_smoothing=smoothing, reduction=reduction)

        if weights is None:
            return loss_of
        scale = _weight_scale(weights, logits)  # (B,)
        return lambda t: loss_of(t) @ scale

    def module(self) -> MLP:
        return self.model

    def constrain(self, radius: float) -> None:
        """Max-norm: each row of each nn.Linear weight (a unit's incoming weights) <= radius."""
        max_norm_([layer.weight for layer in self.model.linears()], radius, dim=1)

    def averaged(self) -> list[torch.Tensor]:
        """What a weight average follows: the parameters, then batch norm's running stats."""
        return self.params + _float_buffers(self.model)

    @torch.no_grad()
    def module_from(self, tensors: Sequence[torch.Tensor]) -> MLP:
        """A module (one, reused) holding `tensors` in the places averaged() names."""
        if self._average_model is None:
            self._average_model = copy.deepcopy(self.model)
        model = self._average_model
        for mine, t in zip(list(model.parameters()) + _float_buffers(model), tensors, strict=True):
            mine.copy_(t)
        for mine, live in zip(model.buffers(), self.model.buffers(), strict=True):
            if not mine.is_floating_point():
                mine.copy_(live)
        return model

    def state_dict(self) -> dict[str, Any]:
        model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return {"model": model, "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise ConfigError(
                f"model: the saved weights do not fit this model: {e}", field="model"
            ) from None
        self.optimizer.load_state_dict(state["optimizer"])


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


class FastEngine(_WithOptimizer):
    """A plain MLP's forward and backward passes, written out, into preallocated buffers.

    Weights are kept transposed, (in, out), so both passes are plain addmm/mm calls; the
    module is refreshed from them whenever it is asked for (at evaluations).
    """

    name = "fast"
    ACTIVATIONS = tuple(_ACTIVATE)

    @staticmethod
    def cannot_train(config: TrainConfig) -> str | None:
        spec = config.parsed_spec
        if spec.hidden and spec.activation not in FastEngine.ACTIVATIONS:
            supported = ", ".join(FastEngine.ACTIVATIONS)
            return f"fast supports {supported}, got {spec.activation}; use engine autograd"
        if spec.dropout or spec.batch_norm:
            return "fast supports neither dropout nor batch norm; use engine autograd"
        if spec.input_dropout:
            return "fast has no input dropout; use engine autograd"
        return None

    def __init__(self, config: TrainConfig, model: MLP, dropout: torch.Generator | None = None):
        self.config, self.model = config, model
        layers = model.linears()
        self.weights = [layer.weight.detach().t().contiguous() for layer in layers]
        self.biases = [layer.bias.detach().clone() for layer in layers]
        # Every gradient is a view into one flat buffer, so that data-parallel training
        # all-reduces them in a single call; SPARE slots at its end carry the step's
        # scalars in the same call. The order is the optimizer's order of parameters.
        params = self.weights + self.biases
        sizes = [t.numel() for t in params]
        self._flat_grads = self.weights[0].new_empty(sum(sizes) + SPARE)
        views = self._flat_grads[: sum(sizes)].split(sizes)
        self.grads = [v.view(t.shape) for v, t in zip(views, params, strict=True)]
        self.grad_w, self.grad_b = self.grads[: len(layers)], self.grads[len(layers) :]
        self.optimizer = _optimizer(config, self.weights + self.biases)
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
        self._average_model: MLP | None = None  # built when a weight average is first read

    def flat_grads(self) -> torch.Tensor:
        return self._flat_grads

    def linear_grads(self) -> list[torch.Tensor | None]:
        return list(self.grad_w)  # (in, out): the same norm and histogram

    def forward_backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mix: Mix | None = None,
        weights: torch.Tensor | None = None,
    ) -> Step:
        n = len(x)
        outs = [o[:n] for o in self.outs]
        logits = self._forward(x, outs)
        loss = self._loss_gradient(logits, y, self.deltas[-1][:n], mix, weights)
        self._backward(x, outs, n)
        return loss, logits

    def _forward(self, x: torch.Tensor, outs: list[torch.Tensor]) -> torch.Tensor:
        """z = a W + b for each layer, activated in place except for the logits."""
        a, last = x, len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            torch.addmm(b, a, w, out=outs[i])
            if i < last:
                self.activate(outs[i])
            a = outs[i]
        return outs[last]

    def _loss_gradient(
        self,
        logits: torch.Tensor,
        y: torch.Tensor,
        delta: torch.Tensor,
        mix: Mix | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss, with its gradient w.r.t. the logits written into delta: (softmax -
        target) / n, where the target is one-hot, smoothed toward uniform by label_smoothing;
        for a mixed batch, lam onehot(y) + (1 - lam) onehot(partner), smoothed alike. With
        weights, row i's (softmax - target) is scaled by w_i / sum(w) instead of 1 / n."""
        n, smoothing = len(y), self.config.label_smoothing
        log_probs = torch.log_softmax(logits, dim=1)
        if weights is None:
            loss = _mixed_loss(lambda t: -log_probs.gather(1, t.view(-1, 1)).mean(), y, mix)
            if smoothing:
                loss = (1.0 - smoothing) * loss - smoothing * log_probs.mean()
        else:
            scale = _weight_scale(weights, logits)  # (B,)
            loss = _mixed_loss(
                lambda t: -log_probs.gather(1, t.view(-1, 1)).view(-1) @ scale, y, mix
            )
            if smoothing:
                loss = (1.0 - smoothing) * loss - smoothing * (log_probs.mean(1) @ scale)
        torch.exp(log_probs, out=delta)
        if smoothing:
            delta.sub_(smoothing / logits.shape[1])
        if mix is None:
            delta.scatter_add_(1, y.view(-1, 1), self.hit[:n])
        else:
            delta.scatter_add_(1, y.view(-1, 1), self.hit[:n] * mix.lam)
            delta.scatter_add_(1, mix.partner.view(-1, 1), self.hit[:n] * (1.0 - mix.lam))
        if weights is None:
            delta.mul_(1.0 / n)
        else:
            delta.mul_(scale.view(-1, 1))
        return loss

    def _backward(self, x: torch.Tensor, outs: list[torch.Tensor], n: int) -> None:
        """Each layer's weight gradient, then the gradient of the layer below."""
        last = len(self.weights) - 1
        delta = self.deltas[last][:n]
        for i in range(last, -1, -1):
            a_in = x if i == 0 else outs[i - 1]
            torch.mm(a_in.t(), delta, out=self.grad_w[i])
            torch.sum(delta, dim=0, out=self.grad_b[i])
            if i:
                below = self.deltas[i - 1][:n]
                torch.mm(delta, self.weights[i].t(), out=below)
                self.activation_backward(below, outs[i - 1])
                delta = below

    @torch.no_grad()
    def module(self) -> MLP:
        return self._load_module(self.model, self.weights, self.biases)

    @staticmethod
    def _load_module(model: MLP, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]):
        for layer, w, b in zip(model.linears(), weights, biases, strict=True):
            layer.weight.copy_(w.t())
            layer.bias.copy_(b)
        return model

    def constrain(self, radius: float) -> None:
        """Max-norm: each column of the transposed weights (a unit's incoming ones) <= radius."""
        max_norm_(self.weights, radius, dim=0)

    def averaged(self) -> list[torch.Tensor]:
        """What a weight average follows: the transposed weights, then the biases."""
        return self.weights + self.biases

    @torch.no_grad()
    def module_from(self, tensors: Sequence[torch.Tensor]) -> MLP:
        """A module (one, reused) holding `tensors`, laid out as averaged() lays them."""
        if self._average_model is None:
            self._average_model = copy.deepcopy(self.model)
        layers = len(self.weights)
        return self._load_module(self._average_model, tensors[:layers], tensors[layers:])

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": [w.clone() for w in self.weights],  # transposed: (in, out)
            "biases": [b.clone() for b in self.biases],
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _copy_into(self.weights, state["weights"], "weight")
        _copy_into(self.biases, state["biases"], "bias")
        self.optimizer.load_state_dict(state["optimizer"])
        self.module()


_LACKS = "{}: the scratch engine has no {}; use engine fast or autograd"


class ScratchEngine:
    """Plain tensors, hand-written backprop and a hand-written SGD step (mlplab.nn.scratch)."""

    name = "scratch"
    ACTIVATIONS = ("sigmoid", "tanh", "relu")

    @staticmethod
    def cannot_train(config: TrainConfig) -> str | None:
        spec = config.parsed_spec
        if config.optimizer != "sgd" or config.momentum or config.weight_decay:
            return "scratch trains with plain SGD: set optimizer sgd, no momentum or weight decay"
        if spec.hidden and spec.activation not in ScratchEngine.ACTIVATIONS:
            supported = ", ".join(ScratchEngine.ACTIVATIONS)
            return f"scratch supports {supported}, got {spec.activation}"
        if spec.dropout or spec.batch_norm:
            return "scratch supports neither dropout nor batch norm"
        if config.label_smoothing:
            return "scratch has no label smoothing"
        if spec.input_dropout or config.max_norm or config.ema or config.mixup:
            return "scratch has no input dropout, max-norm, weight average (ema) or mixup"
        return None

    def __init__(self, config: TrainConfig, model: MLP, dropout: torch.Generator | None = None):
        self.net = ScratchMLP.from_module(model)  # the same init as the other engines
        self.device = next(model.parameters()).device
        self._grads: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # the last step's

    def flat_grads(self) -> None:
        return None  # check_parallel keeps scratch out of data-parallel runs

    def linear_grads(self) -> list[torch.Tensor | None]:
        if self._grads is None:
            return [None] * len(self.net.weights)
        return [g for g, _ in self._grads]

    # What scratch lacks; cannot_train refuses the configs that would ask for it.
    def constrain(self, radius: float) -> None:
        raise ConfigError(_LACKS.format("max_norm", "max-norm"), field="max_norm")

    def averaged(self) -> list[torch.Tensor]:
        raise ConfigError(_LACKS.format("ema", "weight average"), field="ema")

    def module_from(self, tensors: Sequence[torch.Tensor]) -> MLP:
        raise ConfigError(_LACKS.format("ema", "weight average"), field="ema")

    def optimizer_state(self) -> dict[str, Any]:
        return {}  # plain SGD keeps nothing between steps

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        if state:
            raise ConfigError(_LACKS.format("optimizer", "optimizer state"), field="optimizer")

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> Step:
        return self.net.train_step(x, y, lr)

    def forward_backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mix: Mix | None = None,
        weights: torch.Tensor | None = None,
    ) -> Step:
        # cannot_train refuses mixup, so mix is None
        if weights is not None:
            raise ConfigError(_LACKS.format("weights", "sample weights"), field="weights")
        logits, cache = self.net.forward(x)
        self._grads = self.net.backward(cache, y)
        return cross_entropy(logits, y), logits

    @property
    def grads(self) -> list[torch.Tensor]:
        return [g for pair in self._grads for g in pair]

    def update(self, lr: float) -> None:
        self.net.sgd_step(self._grads, lr)

    def module(self) -> MLP:
        return self.net.to_module().to(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": [w.clone() for w in self.net.weights],
            "biases": [b.clone() for b in self.net.biases],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _copy_into(self.net.weights, state["weights"], "weight")
        _copy_into(self.net.biases, state["biases"], "bias")


ENGINES: dict[str, type[Engine]] = {e.name: e for e in (AutogradEngine, FastEngine, ScratchEngine)}


def resolve_engine(config: TrainConfig) -> str:
    """The engine a config trains with ("auto": fast when the model allows it, else autograd).

    Raises ConfigError, naming the field, when the chosen engine cannot train the config.
    """
    if config.engine == "auto":
        return "autograd" if FastEngine.cannot_train(config) else "fast"
    if config.engine not in ENGINES:
        raise ConfigError(f"engine: must be one of auto, {', '.join(ENGINES)}", field="engine")
    problem = ENGINES[config.engine].cannot_train(config)
    if problem:
        raise ConfigError(f"engine: {problem}", field="engine")
    return config.engine


def make_engine(config: TrainConfig, model: MLP, dropout: torch.Generator | None = None) -> Engine:
    """The engine the config resolves to, training `model` (whose init it starts from)."""
    return ENGINES[resolve_engine(config)](config, model, dropout)
