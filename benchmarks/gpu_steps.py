"""Steps 1 to 5 of the GPU check (benchmarks/gpu_check.py): the device's facts, the CUDA tests,
the speed table, the recipe mnist-plain and a lesson, each through child processes of its
context; and the children that need this module's code (--child facts, --child lesson)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from benchmarks import processes
from benchmarks.gpu_prepare import commit
from benchmarks.gpu_runner import Context, Outcome, StepTimeout, fenced, json_line, last_line
from benchmarks.processes import ROOT
from benchmarks.report import table

LESSON = {"cuda": "tutorials/03_seven_steps.py", "smoke": "tutorials/01_tensors_to_network.py"}
RECIPE_FLOOR = 98.0  # % test accuracy: the recipe's CPU runs gave 98.58 to 98.82

# --- 1. the device's facts -------------------------------------------------------------------


def child_facts(device: str) -> None:
    """Print the device's facts as JSON (a child: it imports torch and starts CUDA)."""
    import platform

    import torch

    facts = {"torch": torch.__version__, "CUDA (torch built with)": torch.version.cuda}
    facts["python"] = platform.python_version()
    facts["host CPU cores"] = os.cpu_count()
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            sys.exit(f"CUDA is not available to torch {torch.__version__}: no GPU is visible")
        p = torch.cuda.get_device_properties(device)
        facts["device"] = p.name
        facts["memory (GiB)"] = round(p.total_memory / 2**30, 1)
        facts["compute capability"] = f"{p.major}.{p.minor}"
        facts["multiprocessors"] = p.multi_processor_count
        facts["cuDNN"] = torch.backends.cudnn.version()
        facts["TF32 supported (compute capability >= 8.0)"] = p.major >= 8
        facts["TF32 on for matmuls (torch's default: off)"] = torch.backends.cuda.matmul.allow_tf32
        facts["TF32 on for cuDNN convolutions"] = torch.backends.cudnn.allow_tf32
        facts["bf16 supported"] = torch.cuda.is_bf16_supported()
        x = torch.ones(64, 64, device=device, dtype=torch.bfloat16)
        facts["bf16 matmul runs"] = bool((x @ x).float().eq(64).all())
    else:
        facts["device"] = f"CPU ({platform.machine()})"
        mkldnn = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        facts["bf16 in hardware (oneDNN)"] = bool(mkldnn()) if mkldnn else "unknown"
        facts["TF32 supported"] = "no (a GPU feature)"
    print(json.dumps(facts))


def nvidia_smi() -> str | None:
    """The driver's view of the GPU, one line, or None without nvidia-smi."""
    query = "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit"
    try:
        done = processes.run(["nvidia-smi", query, "--format=csv,noheader"], 30)
    except OSError:
        return None
    ok = done.returncode == 0 and not done.timed_out and done.stdout
    return done.stdout.strip().splitlines()[0] if ok else None


def facts(ctx: Context) -> Outcome:
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--child", "facts"]
    rc, text = ctx.run([*command, "--device", ctx.device])
    if rc != 0:
        return Outcome(False, last_line(text), fenced(text))
    found = json_line(text)
    found["commit"] = commit()
    smi = nvidia_smi() if ctx.device.startswith("cuda") else None
    if smi:
        found["nvidia-smi (name, driver, memory, max SM clock, power limit)"] = smi
    rows = [[k, str(v)] for k, v in found.items()]  # as Python prints them: None, True
    memory = f", {found['memory (GiB)']} GiB" if "memory (GiB)" in found else ""
    return Outcome(
        True, f"{found['device']}{memory}, torch {found['torch']}", table(["", ""], rows)
    )


# --- 2. the CUDA tests, 3. the speed table -----------------------------------------------

CLOSING = re.compile(r"(\d+ [a-z]+)(, \d+ [a-z]+)* in [0-9.]+s")


def pytest_counts(text: str) -> tuple[str, dict[str, int]]:
    """pytest's closing line, and its counts: {"passed": 12, "skipped": 1, ...}."""
    found = [m.group(0) for m in map(CLOSING.search, text.splitlines()) if m]
    closing = found[-1] if found else ""
    counts = {}
    for part in closing.split(" in ")[0].split(", "):
        number, _, kind = part.partition(" ")
        counts[kind] = int(number) if number.isdigit() else 0
    return closing, counts


def cuda_tests(ctx: Context) -> Outcome:
    """pytest tests/cuda; on a GPU none may be skipped, on the CPU (--smoke) what can run."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/cuda"]
    env = {"MLPLAB_CUDA_TESTS_ON_CPU": "1"} if ctx.smoke else {}
    rc, text = ctx.run(command, env=env)
    closing, counts = pytest_counts(text)
    ok = rc == 0 and counts.get("passed", 0) > 0 and (ctx.smoke or not counts.get("skipped"))
    why = "" if ok or rc != 0 else "; tests were skipped: CUDA was not seen"
    start = text.find("short test summary info")
    report = text[text.rfind("\n", 0, start) + 1 :] if start >= 0 else text
    return Outcome(ok, (closing or last_line(text)) + why, fenced(report, 80))


def speed(ctx: Context) -> Outcome:
    """python -m benchmarks.gpu, its table written as it goes (kept when cut short)."""
    out = ctx.work / "gpu-speed.md"
    command = [sys.executable, "-m", "benchmarks.gpu", "--device", ctx.device, "--out", str(out)]
    command += ["--budget", f"{max(ctx.budget - 15, 10):.0f}"] + ["--smoke"] * ctx.smoke
    try:
        rc, text = ctx.run(command)
    except StepTimeout as e:
        if out.is_file():  # the table as far as it got
            e.partial, e.markdown = out.read_text(), True
        raise
    if not out.is_file():
        return Outcome(False, last_line(text), fenced(text))
    body = out.read_text()
    goals = [line for line in body.splitlines() if line.startswith("| 9") and "of training" in line]
    verdicts = "; ".join(" ".join(c.strip() for c in g.strip("|").split("|")[::2]) for g in goals)
    return Outcome(rc == 0, verdicts if rc == 0 else f"{verdicts}; {last_line(text)}", body)


# --- 4. the recipe, 5. a lesson ------------------------------------------------------------


def recipe_progress(out: Path) -> str:
    """How far a recipe run cut short got: its last evaluation, from metrics.jsonl."""
    for run in sorted(out.glob("*/metrics.jsonl")):
        evals = [json.loads(x) for x in run.read_text().splitlines() if '"eval"' in x]
        if evals:
            last = evals[-1]
            return (
                f"cut short at iteration {last['iteration']} (epoch {last.get('epoch')}): "
                f"test {last.get('test_accuracy')}%, validation {last.get('val_accuracy')}%, "
                f"{last.get('seconds', 0):.1f} s of training"
            )
    return "no evaluation yet"


def recipe(ctx: Context) -> Outcome:
    """mlplab train --recipe mnist-plain on the device: accuracy and time."""
    out = ctx.work / "recipe"
    command = [sys.executable, "-m", "mlplab", "train", "--recipe", "mnist-plain"]
    command += ["--device", ctx.device, "--out", str(out), "--quiet"]
    command += ["--iterations", "10"] if ctx.smoke else []
    start = time.monotonic()
    try:
        rc, text = ctx.run(command, env={"MPLBACKEND": "Agg"})
    except StepTimeout as e:
        e.partial = recipe_progress(out)
        raise
    wall = time.monotonic() - start
    models = sorted(out.glob("*/model.json"))
    if rc != 0 or not models:
        return Outcome(False, last_line(text), fenced(text))
    info = json.loads(models[0].read_text())
    rows = [["command", f"`{' '.join(['mlplab', *command[3:]])}`"]]
    keys = ("test_accuracy", "val_accuracy", "iterations", "best_iteration", "engine", "device")
    rows += [[k, str(info.get(k))] for k in keys]  # as model.json holds them: None is None
    rows += [["training seconds", f"{info['seconds']:.1f}"], ["wall seconds", f"{wall:.1f}"]]
    floor = ctx.smoke or info["test_accuracy"] >= RECIPE_FLOOR
    result = (
        f"test {info['test_accuracy']}% in {info['seconds']:.1f} s of training ({wall:.0f} s wall)"
    )
    if not floor:
        result += f"; below the floor of {RECIPE_FLOOR}% (its CPU runs: 98.58 to 98.82%)"
    return Outcome(floor, result, table(["", ""], rows))


def child_lesson(path: str) -> None:
    """Execute one lesson as the docs build does (tools/lessons.py); print its device."""
    sys.path.insert(0, str(ROOT / "tools"))
    import lessons

    notebook = lessons.read(ROOT / path)
    seconds = lessons.execute(notebook, Path(path).name)
    printed = [
        o.get("text", "") for c in notebook.cells for o in c.get("outputs", []) if "text" in o
    ]
    device = next((t.split("device:")[1].split()[0] for t in printed if "device:" in t), None)
    print(json.dumps({"seconds": seconds, "device": device, "cells": len(notebook.cells)}))


def lesson(ctx: Context) -> Outcome:
    path = LESSON["smoke" if ctx.smoke else "cuda"]
    rc, text = ctx.run([sys.executable, "-m", "benchmarks.gpu_check", "--child", "lesson", path])
    if rc != 0:
        return Outcome(False, f"{path}: {last_line(text)}", fenced(text))
    ran = json_line(text)
    want = ctx.device.split(":")[0]
    ok = ran["device"] == want
    result = f"{path}: {ran['cells']} cells in {ran['seconds']:.1f} s, on {ran['device']}"
    return Outcome(ok, result + ("" if ok else f", not {want}"), "")
