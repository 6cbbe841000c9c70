"""The benchmark's own in-memory training loop: the variants mlplab's trainer does not have yet.

Each option here is an experiment whose numbers back a proposed change to src/mlplab/train.py:
an optimizer written with torch._foreach_* ops (constructing any torch.optim optimizer imports
torch._dynamo, seconds on a slow machine), random shifts or affine jitter made on the device
inside the batch, and torch.compile. Model, data and batches are mlplab's own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from mlplab.data import Dataset, Normalization, batches, load_dataset, pixel_stats
from mlplab.models import build_model

Emit = Callable[[dict], None]


@dataclass(frozen=True)
class LoopConfig:
    """One run of the fast loop; `impl="torch"` uses torch.optim, `"foreach"` does not."""

    spec: str = "784-1024-1024-10:relu"
    optimizer: str = "adam"
    impl: str = "foreach"
    lr: float = 2e-3
    batch_size: int = 512
    epochs: float = 10.0
    schedule: str = "onecycle"
    warmup: float = 0.2
    label_smoothing: float = 0.0
    augment: str = "none"  # none | shift | affine
    normalization: str = "dataset"  # dataset (mean/std of the training split) | none
    evals_per_epoch: int = 1
    compile: bool = False
    max_seconds: float | None = None
    stop_at: float | None = None
    seed: int = 0


class ForeachSGD:
    """Plain SGD as two foreach kernels; no torch.optim, so no torch._dynamo import."""

    def __init__(self, params: list[torch.Tensor]):
        self.params = params

    @torch.no_grad()
    def step(self, lr: float):
        grads = [p.grad for p in self.params]
        torch._foreach_add_(self.params, grads, alpha=-lr)


class ForeachAdam:
    """Adam (Kingma & Ba, with bias correction) in foreach ops; matches torch.optim.Adam."""

    def __init__(self, params: list[torch.Tensor], betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.betas, self.eps, self.t = params, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, lr: float):
        b1, b2 = self.betas
        self.t += 1
        grads = [p.grad for p in self.params]
        torch._foreach_lerp_(self.m, grads, 1 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, 1 - b2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, math.sqrt(1 - b2**self.t))
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.m, denom, -lr / (1 - b1**self.t))


class TorchOptim:
    """torch.optim behind the same step(lr) interface, for side-by-side runs."""

    def __init__(self, params: list[torch.Tensor], name: str, **kwargs):
        cls = torch.optim.Adam if name == "adam" else torch.optim.SGD
        self.opt = cls(params, lr=1e-3, **kwargs)

    def step(self, lr: float):
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()


def make_optimizer(config: LoopConfig, params: list[torch.Tensor]):
    if config.impl == "torch":
        return TorchOptim(params, config.optimizer)
    return ForeachAdam(params) if config.optimizer == "adam" else ForeachSGD(params)


def lr_at(config: LoopConfig, step: int, total: int) -> float:
    """Linear warm-up from lr/25 over `warmup` of the run, then linear decay to zero."""
    if config.schedule == "constant":
        return config.lr
    frac = step / total
    if frac < config.warmup:
        return config.lr * (0.04 + 0.96 * frac / config.warmup)
    return config.lr * max(1.0 - frac, 0.0) / (1.0 - config.warmup)


def augment(x: torch.Tensor, kind: str, fill: float, generator: torch.Generator) -> torch.Tensor:
    """Random per-image jitter of a normalised batch (B, 784), made where the batch lives."""
    if kind == "none":
        return x
    n, device = len(x), x.device
    if kind == "shift":
        # Up to 2 pixels each way: pad once, then gather every image's own 28x28 window.
        padded = F.pad(x.view(n, 28, 28), (2, 2, 2, 2), value=fill)
        dy, dx = torch.randint(0, 5, (2, n, 1, 1), generator=generator, device=device)
        rows = torch.arange(28, device=device).view(1, 28, 1) + dy
        cols = torch.arange(28, device=device).view(1, 1, 28) + dx
        return padded[torch.arange(n, device=device).view(n, 1, 1), rows, cols].reshape(n, 784)
    # affine: rotation +-10 degrees, scale 0.9-1.1, shift +-2 px, sampled bilinearly.
    u = torch.rand(n, 4, generator=generator, device=device) * 2 - 1
    angle, scale = u[:, 0] * math.radians(10), 1 + 0.1 * u[:, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin, u[:, 2] * 2 / 14], 1),
            torch.stack([sin, cos, u[:, 3] * 2 / 14], 1),
        ],
        1,
    )  # (B, 2, 3); translations in grid units, where 14 px = 1
    grid = F.affine_grid(theta, (n, 1, 28, 28), align_corners=False)
    img = (x.view(n, 1, 28, 28) - fill).contiguous()
    return (F.grid_sample(img, grid, align_corners=False) + fill).reshape(n, 784)


@torch.inference_mode()
def accuracy(model, x: torch.Tensor, y: torch.Tensor, norm: Normalization) -> float:
    """Test accuracy in %, in one large batch under inference mode."""
    return float((model(norm.apply(x)).argmax(1) == y).sum()) * 100.0 / len(y)


def train_fast(config: LoopConfig, data: Dataset, emit: Emit, clock=time.perf_counter) -> dict:
    """Train as the config says, emitting an eval record at each evaluation.

    `segment_seconds` counts training steps since the previous evaluation (evaluations
    excluded), so it is the throughput number; the caller timestamps each record.
    """
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    stats = pixel_stats(data.train.x) if config.normalization == "dataset" else (0.0, 1.0)
    norm = Normalization(*stats)
    model = build_model(config.spec)
    params = list(model.parameters())
    optimizer = make_optimizer(config, params)
    step_model = torch.compile(model) if config.compile else model
    steps_per_epoch = math.ceil(len(data.train) / config.batch_size)
    total = max(int(config.epochs * steps_per_epoch), 1)
    eval_every = max(steps_per_epoch // config.evals_per_epoch, 1)
    fill = -norm.mean / norm.std
    step, train_seconds, best = 0, 0.0, 0.0
    while step < total:
        tick = clock()
        for x, y in batches(data.train, config.batch_size, norm, generator):
            x = augment(x, config.augment, fill, generator)
            loss = F.cross_entropy(step_model(x), y, label_smoothing=config.label_smoothing)
            for p in params:
                p.grad = None
            loss.backward()
            optimizer.step(lr_at(config, step, total))
            step += 1
            if step % eval_every and step < total:
                continue
            segment = clock() - tick
            train_seconds += segment
            acc = accuracy(model, data.test.x, data.test.y, norm)
            best = max(best, acc)
            emit(
                {
                    "kind": "eval",
                    "epoch": step / steps_per_epoch,
                    "segment_seconds": segment,
                    "test_accuracy": acc,
                    "train_loss": float(loss.detach()),
                }
            )
            tick = clock()
            done = step >= total or (config.stop_at is not None and acc >= config.stop_at)
            if config.max_seconds is not None and train_seconds >= config.max_seconds:
                done = True
            if done:
                return {"steps": step, "best_accuracy": best}
    return {"steps": step, "best_accuracy": best}


def load_mnist(train_size: int | None = None) -> Dataset:
    """MNIST on the CPU, or its first `train_size` training images for smoke runs."""
    data = load_dataset("mnist", download=False)
    if train_size:
        data = replace(data, train=data.train.subset(torch.arange(train_size)))
    return data


def run(params: dict, emit: Emit) -> None:
    """Child entry: params are LoopConfig fields, plus train_size for smoke runs."""
    params = dict(params)
    data = load_mnist(params.pop("train_size", None))
    config = LoopConfig(**params)
    emit({"kind": "ready"})
    emit({"kind": "done", **train_fast(config, data, emit)})
