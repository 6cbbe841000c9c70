"""SGD, Adam and AdamW, and the learning-rate schedules, in torch._foreach_* ops.

The update rules are torch.optim's, step for step (tests/test_optim.py compares them), but
nothing here imports torch.optim: constructing any torch.optim optimizer imports
torch._dynamo, about two seconds on a slow machine, which is a large part of a short run.
Every parameter list is updated with a handful of multi-tensor kernels, and the learning
rate is passed to each step, so a schedule is a plain function of the iteration. Each
optimizer's state (buffers, step counts) round-trips through state_dict/load_state_dict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mlplab.errors import ConfigError

Tensors = Sequence[torch.Tensor]
FUSED_DEVICES = ("cpu", "cuda")  # where torch._fused_adam_ has a kernel


class SGD:
    """SGD with optional momentum, Nesterov momentum and L2 weight decay (torch.optim.SGD)."""

    def __init__(
        self,
        params: Tensors,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        self.params, self.momentum, self.nesterov = list(params), momentum, nesterov
        self.weight_decay = weight_decay
        self.buffers: list[torch.Tensor] | None = None

    @torch.no_grad()
    def step(self, grads: Tensors, lr: float) -> None:
        grads = list(grads)
        if self.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)
        if self.momentum:
            if self.buffers is None:  # the first step's buffer is the gradient itself
                self.buffers = [g.detach().clone() for g in grads]
            else:
                torch._foreach_mul_(self.buffers, self.momentum)
                torch._foreach_add_(self.buffers, grads)
            if self.nesterov:
                grads = torch._foreach_add(grads, self.buffers, alpha=self.momentum)
            else:
                grads = self.buffers
        torch._foreach_add_(self.params, grads, alpha=-lr)

    def state_dict(self) -> dict[str, Any]:
        return {"buffers": None if self.buffers is None else [b.clone() for b in self.buffers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        buffers = state["buffers"]
        if buffers is None:
            self.buffers = None
            return
        _check_shapes("momentum buffer", buffers, self.params)
        self.buffers = [
            b.to(p.device, p.dtype).clone() for b, p in zip(buffers, self.params, strict=True)
        ]


class Adam:
    """Adam with bias correction (torch.optim.Adam); decoupled=True is AdamW.

    Where torch has a fused kernel for the device (CPU and CUDA), one call updates every
    tensor in a single pass, about 3x faster than the foreach form on a CPU; elsewhere the
    foreach form runs. Both match torch.optim.Adam.
    """

    def __init__(
        self,
        params: Tensors,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
        fused: bool = True,
    ):
        self.params = list(params)
        self.betas, self.eps = betas, eps
        self.weight_decay, self.decoupled = weight_decay, decoupled
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0
        device = self.params[0].device if self.params else torch.device("cpu")
        self.fused = fused and device.type in FUSED_DEVICES
        # the fused kernel reads a step count per tensor; all of them share this one
        self.step_count = torch.zeros((), device=device)

    @torch.no_grad()
    def step(self, grads: Tensors, lr: float) -> None:
        grads = list(grads)
        b1, b2 = self.betas
        self.t += 1
        if self.fused:
            self.step_count.add_(1.0)  # the kernel reads the count; it does not bump it
            kernel = torch._fused_adamw_ if self.decoupled else torch._fused_adam_
            kernel(
                self.params,
                grads,
                self.m,
                self.v,
                [],  # max_exp_avg_sqs: no amsgrad
                [self.step_count] * len(self.params),
                lr=lr,
                beta1=b1,
                beta2=b2,
                weight_decay=self.weight_decay,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )
            return
        if self.weight_decay and self.decoupled:
            torch._foreach_mul_(self.params, 1.0 - lr * self.weight_decay)
        elif self.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)
        torch._foreach_lerp_(self.m, grads, 1.0 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, 1.0 - b2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, math.sqrt(1.0 - b2**self.t))
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.m, denom, -lr / (1.0 - b1**self.t))

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, "m": [m.clone() for m in self.m], "v": [v.clone() for v in self.v]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("m", "v"):
            _check_shapes(f"Adam {name}", state[name], self.params)
            for mine, saved in zip(getattr(self, name), state[name], strict=True):
                mine.copy_(saved)
        self.t = int(state["t"])
        self.step_count.fill_(float(self.t))


def _check_shapes(what: str, saved: Sequence[torch.Tensor], params: Tensors) -> None:
    shapes = [tuple(t.shape) for t in saved]
    if shapes != [tuple(p.shape) for p in params]:
        raise ConfigError(
            f"optimizer: the saved {what} shapes {shapes} do not fit the model", field="optimizer"
        )


Optimizer = SGD | Adam


def make_optimizer(
    kind: str,
    params: Tensors,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> Optimizer:
    """sgd, adam or adamw over `params` (betas and eps for Adam's two)."""
    if kind == "sgd":
        return SGD(params, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if kind in ("adam", "adamw"):
        decoupled = kind == "adamw"
        return Adam(params, betas, eps, weight_decay=weight_decay, decoupled=decoupled)
    raise ConfigError(
        f"optimizer: must be one of sgd, adam, adamw, got {kind!r}", field="optimizer"
    )


@dataclass(frozen=True)
class Schedule:
    """The learning rate of each step of a run of `total` steps; call it with the step.

    onecycle is torch's OneCycleLR with its defaults: a cosine warm-up from lr/25 over the
    first 30% of the run, then a cosine decay to lr/25e4. step multiplies by gamma every
    step_size iterations (default: a third of the run); cosine decays to zero.
    """

    kind: str
    lr: float
    total: int
    step_size: int | None = None
    gamma: float = 0.1

    def __call__(self, iteration: int) -> float:
        """The lr of step `iteration` (0-based)."""
        lr, total = self.lr, self.total
        if self.kind == "onecycle":
            start, low = lr / 25.0, lr / 25.0 / 1e4
            peak_at = 0.3 * total - 1  # torch's float phase boundary
            if iteration <= peak_at:
                return _cosine(start, lr, iteration / peak_at)
            return _cosine(lr, low, (iteration - peak_at) / (total - 1 - peak_at))
        if self.kind == "step":
            step = self.step_size or max(total // 3, 1)
            return lr * self.gamma ** (iteration // step)
        if self.kind == "cosine":
            return lr * 0.5 * (1 + math.cos(math.pi * min(iteration, total) / total))
        return lr


def _cosine(start: float, end: float, fraction: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)
