"""The cases of the GPU speed table (benchmarks/gpu.py), each run in a child process of its own,
`python -m benchmarks.gpu --child CASE`, that prints one `@gpu {json}` line per record.

Every timed block is warmed up first (compilation is paid there) and synchronised around; the
number given is the median of several rounds. With --smoke every case takes a few steps on
the CPU (torch.compile with the eager backend), so that the script cannot rot.
"""

from __future__ import annotations

import json
import os
import time

from benchmarks.machine import cpu_model
from benchmarks.stats import median

PREFIX = "@gpu "
GOALS = {98.0: 0.5, 99.0: 3.0}  # target test accuracy (%) -> seconds of training
DEFAULT_JOB = "784-512-512-10:relu"
WIDE = "784-1024-1024-10:relu"
# The fastest CPU recipes of BENCHMARKS.md (sections 2b and 2c), unchanged on the GPU.
REACH = {
    98.0: dict(
        model="784-256-256-10:relu",
        lr=4e-3,
        batch_size=128,
        iterations=700,
        label_smoothing=0.1,
        eval_every=50,
    ),
    99.0: dict(model="784-512-512-10:relu", lr=2e-3, batch_size=256, epochs=18, augment="affine"),
}
SMOKE_STEPS = {98.0: 60, 99.0: 40}
VARIANTS = {
    "trainer": "mlplab Trainer, engine fast (eager)",
    "eager": "nn.Module + autograd, eager",
    "compile": "nn.Module, torch.compile",
    "compile-graphs": 'nn.Module, torch.compile(mode="reduce-overhead"): CUDA graphs',
    "bf16": "nn.Module, eager, bf16 autocast",
}


def emit(record: dict) -> None:
    """One record, on a line of its own that the parent picks out."""
    print(PREFIX + json.dumps(record), flush=True)


def emit_device(device) -> None:
    """What the device is, once per child that times something on it."""
    import torch

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU: {cpu_model()}, {os.cpu_count()} logical cores"
    emit({"kind": "device", "name": name, "torch": torch.__version__, "cuda": torch.version.cuda})


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reach_config(target: float, device: str, smoke: bool):
    from mlplab.config import TrainConfig

    fields = dict(REACH[target], optimizer="adam", schedule="onecycle")
    fields.update(normalization="dataset", device=device)
    if smoke:
        steps = SMOKE_STEPS[target]
        fields.update(iterations=steps, eval_every=steps // 2, epochs=1)
    elif "epochs" in fields:
        fields["eval_every"] = 235  # once an epoch: 60,000 / 256 rounded up
    return TrainConfig(**fields)


def child_reach(args) -> None:
    """Train one recipe, report every evaluation, and stop once the target is reached."""
    from mlplab.data.dataset import load_dataset
    from mlplab.training.callbacks import Callback
    from mlplab.training.trainer import Trainer

    target, t0 = float(args.target), float(args.t0)

    class Reach(Callback):
        def on_evaluate(self, trainer, evaluation):
            accuracy = evaluation.test.accuracy
            wall = time.time() - t0
            emit(
                {
                    "kind": "eval",
                    "wall": wall,
                    "train": trainer.seconds,
                    "accuracy": accuracy,
                    "iteration": evaluation.iteration,
                }
            )
            if accuracy >= target:
                trainer.stop(f"reached {target}%")

    config = reach_config(target, args.device, args.smoke)
    Trainer(config, load_dataset("mnist"), callbacks=[Reach()]).run()


def timed(step, device, warmup: int, steps: int, rounds: int) -> tuple[float, float]:
    """(median seconds of `steps` calls, seconds of the warm-up), synchronised around."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronize(device)
    warm = time.perf_counter() - start
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return median(times), warm


def trainer_for(model: str, batch: int, device: str, **more):
    """A Trainer of `model` that never evaluates within the steps we time."""
    from mlplab.config import TrainConfig
    from mlplab.data.dataset import load_dataset
    from mlplab.training.trainer import Trainer

    config = TrainConfig(
        model=model,
        batch_size=batch,
        iterations=10**7,
        eval_every=10**7,
        device=device,
        **{"schedule": "constant", **more},
    )
    trainer = Trainer(config, load_dataset("mnist"))
    trainer.begin()
    return trainer


def module_step(trainer, mode: str):
    """One nn.Module training step on the trainer's batches: eager, compiled or bf16."""
    import torch
    import torch.nn.functional as F

    from mlplab.nn.model import build_model
    from mlplab.training.optim import make_optimizer

    device = trainer.device
    model = build_model(DEFAULT_JOB).to(device)
    params = list(model.parameters())
    optimizer = make_optimizer("adam", params)
    forward = model
    if mode.startswith("compile"):
        if device.type != "cuda":  # inductor takes 20 s on 2 cores: here dynamo alone is run
            options = {"backend": "eager"}
        else:
            options = {"mode": "reduce-overhead"} if mode == "compile-graphs" else {}
        forward = torch.compile(model, **options)

    def step():
        if mode == "compile-graphs" and device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs are done with
        x, y = trainer.train_split.batch(trainer.sampler.next(), trainer.norm)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "bf16"):
            loss = F.cross_entropy(forward(x), y)
        for p in params:
            p.grad = None
        loss.backward()
        optimizer.step([p.grad for p in params], 1e-3)

    return step


def child_throughput(args) -> None:
    """The default job's samples/s, each variant warmed up, then timed in rounds. A variant
    that fails (a compiler missing, say) is reported as such, and the next one runs."""
    warmup, steps, rounds = (3, 4, 2) if args.smoke else (30, 100, 5)
    trainer = trainer_for(DEFAULT_JOB, 512, args.device, optimizer="adam", lr=1e-3)
    emit_device(trainer.device)
    for variant in VARIANTS:
        record = {"kind": "throughput", "variant": variant}
        try:
            step = trainer.step if variant == "trainer" else module_step(trainer, variant)
            seconds, warm = timed(step, trainer.device, warmup, steps, rounds)
            record.update(samples_per_s=steps * 512 / seconds, warmup_s=warm)
        except Exception as e:
            record["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
        emit(record)


def matmul_tflops(n: int, dtype, device, repeats: int) -> float:
    import torch

    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    seconds, _ = timed(lambda: torch.mm(a, b, out=out), device, 3, 1, repeats)
    return 2 * n**3 / seconds / 1e12


def child_hardware(args) -> None:
    """The matmul peaks (float32, TF32, bf16), then the wide MLP's share of float32's."""
    import torch

    device = torch.device(args.device)
    emit_device(device)
    n, repeats = (512, 3) if args.smoke else (8192, 10)
    peaks = {"float32": matmul_tflops(n, torch.float32, device, repeats)}
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        peaks["tf32"] = matmul_tflops(n, torch.float32, device, repeats)
        torch.backends.cuda.matmul.allow_tf32 = False
        peaks["bfloat16"] = matmul_tflops(n, torch.bfloat16, device, repeats)
    emit({"kind": "peaks", "n": n, **peaks})
    sizes = [int(s) for s in WIDE.split(":")[0].split("-")]
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    for batch in (512,) if args.smoke else (512, 8192):
        trainer = trainer_for(WIDE, batch, args.device, optimizer="adam", lr=1e-3)
        steps = 3 if args.smoke else 50
        seconds, _ = timed(trainer.step, trainer.device, 3 if args.smoke else 20, steps, 3)
        tflops = 6 * params * batch * steps / seconds / 1e12
        share = tflops / peaks["float32"]
        per_step = 1000 * seconds / steps
        emit({"kind": "wide", "batch": batch, "ms": per_step, "tflops": tflops, "share": share})


def tutorial_step(device, batch: int):
    """The tutorials' loop, step by step: DataLoader of per-sample ToTensor, .item() each."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from benchmarks.tutorial import ToTensorMNIST
    from mlplab.data.dataset import load_dataset
    from mlplab.nn.model import build_model

    data = load_dataset("mnist")
    loader = DataLoader(ToTensorMNIST(data.train.x, data.train.y), batch, shuffle=True)
    model = build_model("e").to(device)
    criterion, optimizer = nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1)
    batches = iter(())
    running = [0.0]

    def step():
        nonlocal batches
        pair = next(batches, None)
        if pair is None:
            batches = iter(loader)
            pair = next(batches)
        images, labels = pair[0].to(device), pair[1].to(device)
        optimizer.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()
        running[0] += loss.item()

    return step


def child_baseline(args) -> None:
    """The tutorial loop and mlplab on model E, SGD 0.1, batch 100, on the same device."""
    import torch

    from mlplab.nn.presets import PRESETS

    device = torch.device(args.device)
    warmup, steps, rounds = (3, 10, 1) if args.smoke else (20, 300, 3)
    trainer = trainer_for(PRESETS["e"][0], 100, args.device, optimizer="sgd", lr=0.1)
    loops = {"tutorial": tutorial_step(device, 100), "mlplab": trainer.step}
    for name, step in loops.items():
        seconds, _ = timed(step, device, warmup, steps, rounds)
        emit({"kind": "baseline", "loop": name, "samples_per_s": steps * 100 / seconds})


CHILDREN = {
    "reach": child_reach,
    "throughput": child_throughput,
    "hardware": child_hardware,
    "baseline": child_baseline,
}
