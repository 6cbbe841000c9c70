"""The GPU speed table (issue 31): how fast mlplab trains on one CUDA device.

Goals, stated in BENCHMARKS.md: on one H100 or H200, 98% test accuracy in at most 0.5 s of
training and 99% in at most 3 s. The nearest public record is a small CNN at 99% in 0.76 s on
a GTX 1660 Ti; no MLP-only record exists.

Measured side by side in one run, every case in a child process of its own:
- time to 98% and to 99% test accuracy (median of REPEATS runs): from process start (the
  parent's clock around the child: interpreter, imports, data, CUDA start-up, training and
  evaluations) and of training alone (the Trainer's clock, evaluations included);
- throughput of the default job (784-512-512-10, Adam, batch 512) in samples/s: mlplab's
  Trainer (engine fast), then an nn.Module step eager, under torch.compile, under
  torch.compile(mode="reduce-overhead") (CUDA graphs) and in bf16 autocast;
- the share of the measured float32 matmul peak that the wide MLP (784-1024-1024-10) gets;
- the tutorial loop (DataLoader, per-sample ToTensor, loss.item() every step) on the same
  device against mlplab on the same model E and batch 100: the baseline ratio.
Every timed block is warmed up first (compilation is paid there) and synchronised around;
the number given is the median of several. On the CPU, --smoke runs every case with a few
steps (torch.compile with the eager backend), so that this script cannot rot.

    python -m benchmarks.gpu [--device cuda] [--smoke] [--out FILE.md] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

PREFIX = "@gpu "
ROOT = Path(__file__).resolve().parent.parent
DEVICES = re.compile(r"cpu|cuda(:[0-9]+)?")
GOALS = {98.0: 0.5, 99.0: 3.0}  # target test accuracy (%) -> seconds of training
REPEATS = 3
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
# The longest each child may take, in seconds (full run; a smoke run takes a few).
CAPS = {"reach": 25, "throughput": 120, "hardware": 40, "baseline": 40}


class OneLineParser(argparse.ArgumentParser):
    """argparse, with bad input told in one line (no usage block above it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


# --- children ----------------------------------------------------------------------------


def emit(record: dict) -> None:
    print(PREFIX + json.dumps(record), flush=True)


def emit_device(device) -> None:
    """What the device is, once per child that times something on it."""
    import torch

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        lines = (
            Path("/proc/cpuinfo").read_text().splitlines()
            if os.path.exists("/proc/cpuinfo")
            else []
        )
        models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        name = f"CPU: {models[0] if models else 'unknown'}, {os.cpu_count()} logical cores"
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
    return statistics.median(times), warm


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


VARIANTS = {
    "trainer": "mlplab Trainer, engine fast (eager)",
    "eager": "nn.Module + autograd, eager",
    "compile": "nn.Module, torch.compile",
    "compile-graphs": 'nn.Module, torch.compile(mode="reduce-overhead"): CUDA graphs',
    "bf16": "nn.Module, eager, bf16 autocast",
}


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


# --- the parent: launch, collect, write the table ----------------------------------------


def parse(text: str) -> list[dict]:
    lines = text.splitlines()
    return [json.loads(line[len(PREFIX) :]) for line in lines if line.startswith(PREFIX)]


def run_bounded(command: list[str], timeout: float, **popen) -> tuple[int | None, str, str, bool]:
    """Run a command in a process group of its own, killed whole past `timeout` seconds
    (or when we are interrupted): (exit code, stdout, stderr, timed out). What it printed
    before a kill is kept, and whatever it left running (compile workers, servers) ends
    with it. The group stays in our session, so whoever ends the session ends it too."""
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
        **popen,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        out, err = proc.communicate()
    except BaseException:  # Ctrl-C, SIGTERM: the child goes with us
        _kill_group(proc.pid)
        raise
    _kill_group(proc.pid)  # the children it left behind, if any
    return (None if timed_out else proc.returncode), out or "", err or "", timed_out


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def launch(child: str, args, timeout: float, *extra: str) -> tuple[list[dict], str | None]:
    """Run one child to its end or its timeout: its records, and why it failed (or None)."""
    smoke = ["--smoke"] if args.smoke else []
    t0 = time.time()  # the child's process start, as near as the parent can tell
    command = [sys.executable, "-m", "benchmarks.gpu", "--child", child, "--t0", repr(t0)]
    command += ["--device", args.device, *smoke, *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rc, out, err, timed_out = run_bounded(command, timeout, cwd=ROOT, env=env)
    if timed_out:
        return parse(out), f"timed out after {timeout:.0f} s"
    if rc != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        return parse(out), (lines[-1] if lines else f"exit code {rc}")
    return parse(out), None


def commit() -> str:
    """This tree's commit: from git, else from .gpu/commit (written where git was)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        if done.returncode == 0:
            return done.stdout.strip()
    except OSError:
        pass
    carried = ROOT / ".gpu" / "commit"
    return carried.read_text().strip() if carried.is_file() else "unknown"


def fmt(value, digits: int = 2, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def reach_summary(runs: list[list[dict]], target: float) -> dict:
    """Over the runs of one target: median times to it, how many got there, best accuracy."""
    hits = [next((r for r in run if r["accuracy"] >= target), None) for run in runs]
    return {
        "wall": median(h and h["wall"] for h in hits),
        "train": median(h and h["train"] for h in hits),
        "reached": sum(h is not None for h in hits),
        "best": max((r["accuracy"] for run in runs for r in run), default=None),
        "iteration": median(h and h["iteration"] for h in hits),
    }


def render_goals(results: dict) -> str:
    rows = []
    for target, goal in GOALS.items():
        s = reach_summary(results["reach"].get(target, []), target)
        if s["train"] is None:
            verdict, measured = "**not reached**", f"best {fmt(s['best'])}%"
        else:
            verdict = "**met**" if s["train"] <= goal else "**missed**"
            measured = f"{s['train']:.2f} s of training ({s['wall']:.2f} s from process start)"
        rows.append([f"{target:g}% test accuracy", f"≤ {goal:g} s of training", measured, verdict])
    return table(["target", "goal", "measured (median)", "verdict"], rows)


def render_reach(results: dict, smoke: bool) -> str:
    rows = []
    for target in GOALS:
        runs = results["reach"].get(target, [])
        s = reach_summary(runs, target)
        fields = REACH[target]
        config = ", ".join(f"{k} {v}" for k, v in fields.items())
        if smoke:
            config += f" (smoke: {SMOKE_STEPS[target]} iterations)"
        rows.append(
            [
                f"{target:g}%",
                config,
                f"{s['reached']}/{len(runs)}",
                fmt(s["wall"]),
                fmt(s["train"], 3),
                fmt(s["iteration"], 0),
                fmt(s["best"]),
            ]
        )
    head = ["target", "mlplab.train (Adam, one-cycle, dataset mean/std)", "runs reaching it"]
    head += ["from process start (s)", "training alone (s)", "iterations", "best test acc. (%)"]
    return table(head, rows)


def render_throughput(results: dict) -> str:
    records = {r["variant"]: r for r in results["throughput"]}
    base = records.get("eager", {}).get("samples_per_s")
    rows = []
    for variant, label in VARIANTS.items():
        r = records.get(variant, {})
        rate = r.get("samples_per_s")
        ratio = fmt(rate / base, 2, "×") if rate and base else "n/a"
        warm = fmt(r.get("warmup_s"), 1) if "error" not in r else f"failed: {r['error']}"
        rows.append([label, fmt(rate, 0), ratio, warm])
    head = ["variant (default job: 784-512-512-10, Adam, batch 512)", "samples/s (median)"]
    return table(head + ["× nn.Module eager", "warm-up, compilation included (s)"], rows)


def render_hardware(results: dict) -> str:
    peaks = next((r for r in results["hardware"] if r["kind"] == "peaks"), None)
    if peaks is None:
        return "No matmul peak was measured."
    kinds = [k for k in ("float32", "tf32", "bfloat16") if k in peaks]
    text = f"Matmul peak, {peaks['n']}×{peaks['n']} @ {peaks['n']}×{peaks['n']}: " + ", ".join(
        f"{k} {peaks[k]:.3g} TFLOP/s" for k in kinds
    )
    rows = [
        [f"{WIDE}, Adam, batch {r['batch']}", fmt(r["ms"], 3), f"{r['tflops']:.3g}"]
        + [fmt(100 * r["share"], 1, "%")]
        for r in results["hardware"]
        if r["kind"] == "wide"
    ]
    head = ["wide MLP (mlplab Trainer, engine fast, float32)", "ms/step (median)"]
    head += ["TFLOP/s (6 × params × samples)", "of the float32 matmul peak"]
    return text + "\n\n" + table(head, rows)


def render_baseline(results: dict) -> str:
    rates = {r["loop"]: r["samples_per_s"] for r in results["baseline"]}
    tutorial = rates.get("tutorial")
    labels = {
        "tutorial": "tutorial loop: DataLoader, per-sample ToTensor, loss.item() every step",
        "mlplab": "mlplab Trainer: the split resident on the device, engine fast",
    }
    rows = []
    for loop, label in labels.items():
        rate = rates.get(loop)
        rows.append(
            [label, fmt(rate, 0), fmt(rate / tutorial, 1, "×") if rate and tutorial else "n/a"]
        )
    return table(["loop (model E, SGD 0.1, batch 100)", "samples/s (median)", "ratio"], rows)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: a reader (or a kill)
    sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(temp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def render(results: dict, args, started: str, seconds: float) -> str:
    """The whole table as Markdown: facts, goals, then each measurement."""
    device = results["device"] or {}
    repeats = 1 if args.smoke else REPEATS
    facts = [
        ["device", device.get("name", args.device)],
        ["torch (CUDA)", f"{device.get('torch', 'n/a')} ({device.get('cuda') or 'none'})"],
        ["commit", commit()],
        ["command", f"`python -m benchmarks.gpu --device {args.device}{' --smoke' * args.smoke}`"],
        ["date (UTC)", started],
        ["wall time", f"{seconds:.0f} s"],
        ["runs per time-to-accuracy case", repeats],
    ]
    parts = [
        table(["", ""], facts),
        "**Goals** (BENCHMARKS.md)\n\n" + render_goals(results),
        "**Time to accuracy**, each run a process of its own, timed from its launch\n\n"
        + render_reach(results, args.smoke),
        "**Throughput of the default job**\n\n" + render_throughput(results),
        "**Hardware efficiency**\n\n" + render_hardware(results),
        "**Baseline: the tutorial loop on the same device**\n\n" + render_baseline(results),
    ]
    if results["errors"]:
        failed = "\n".join(f"- {case}: {why}" for case, why in results["errors"].items())
        parts.append("**Cases that failed or were cut short**\n\n" + failed)
    return "\n\n".join(parts) + "\n"


def plan(smoke: bool) -> list[tuple[str, str, list[str]]]:
    """(case, child, its arguments), in the order they run."""
    repeats = 1 if smoke else REPEATS
    cases = [
        (f"time to {t:g}% (run {i + 1})", "reach", ["--target", str(t)])
        for t in GOALS
        for i in range(repeats)
    ]
    # the cheap cases first: compilation makes throughput the longest, and the budget may
    # run out in it
    return cases + [(child, child, []) for child in ("hardware", "baseline", "throughput")]


def collect(results: dict, case: str, child: str, records: list[dict]) -> None:
    for r in records:
        if r["kind"] == "device":
            results["device"] = results["device"] or r
    records = [r for r in records if r["kind"] != "device"]
    if child == "reach":
        target = float(case.split()[2].rstrip("%"))
        results["reach"].setdefault(target, []).append(records)
    else:
        results[child] += records


def run_all(args) -> int:
    """Every case in turn within the budget; the table written after each. Exit code 1
    when a case failed or did not run."""
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    start = time.monotonic()
    deadline = start + args.budget
    results = {"reach": {}, "throughput": [], "hardware": [], "baseline": []}
    results.update(errors={}, device=None)
    for case, child, extra in plan(args.smoke):
        left = deadline - time.monotonic()
        if left < 5:
            results["errors"][case] = f"not run: the budget of {args.budget:g} s was spent"
            continue
        records, why = launch(
            child, args, min(CAPS[child] * (2 if args.smoke else 1), left), *extra
        )
        collect(results, case, child, records)
        if why:
            results["errors"][case] = why
        if args.out:
            write_atomic(args.out, render(results, args, started, time.monotonic() - start))
    text = render(results, args, started, time.monotonic() - start)
    if args.out:
        write_atomic(args.out, text)
    print(text, end="")
    return 1 if results["errors"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m benchmarks.gpu", description=__doc__)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--smoke", action="store_true", help="a few steps of every case")
    parser.add_argument("--out", type=Path, help="also write the table here, after each case")
    parser.add_argument("--budget", type=float, default=150.0, help="seconds for every case")
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--t0", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not DEVICES.fullmatch(args.device):
        parser.error(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    if args.budget <= 0:
        parser.error(f"--budget must be positive, got {args.budget:g}")
    if args.child:
        CHILDREN[args.child](args)
        return 0
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
