"""The GPU speed table as Markdown, from what the cases of benchmarks/gpu_cases.py reported:
the goals and their verdicts, time to accuracy, throughput, hardware efficiency, the baseline."""

from __future__ import annotations

from benchmarks import report
from benchmarks.gpu_cases import GOALS, REACH, SMOKE_STEPS, VARIANTS, WIDE
from benchmarks.gpu_prepare import commit
from benchmarks.report import table
from benchmarks.stats import median

REPEATS = 3  # runs per time-to-accuracy case (1 with --smoke)


def fmt(value, digits: int = 2, unit: str = "") -> str:
    """A number as the table prints it; n/a where there is none."""
    return report.fmt(value, digits, unit) or "n/a"


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
