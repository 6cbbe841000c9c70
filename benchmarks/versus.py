"""This tree against an earlier commit, side by side in one run: is anything slower?

    python -m benchmarks.versus REF [--repeats 5] [--out FILE.md]

Three measures, each alternating old and new in fresh processes so that a burst of load
from elsewhere hits both alike; the table gives medians and the ratio new / old:

- the fast engine's model-E step (784-100-100-100-10, SGD, batch 100, one thread), ms per
  step from the 100th step to the last, evaluations excluded;
- the default job (`mlplab.train(TrainConfig(), mnist)`), its training seconds as printed;
- the CLI's wall time to 98% from process start: the README's 98% recipe through
  `python -m mlplab train`, pictures included.

REF's source is taken with `git archive` into a temp folder; both sides run with this
virtualenv's Python and torch. Both sides use only the API the two share (`train`,
`TrainConfig`, and a per-step hook, which older trees take as `on_step`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import torch

from benchmarks.machine import git_commit
from benchmarks.processes import ROOT, run
from benchmarks.report import table

RUN_TIMEOUT = 600.0  # seconds one measuring process may take

STEP_TIME = """
import json, sys, time, inspect, torch
torch.set_num_threads(1)
from mlplab import TrainConfig, train, load_dataset
data = load_dataset("mnist", download=False)
steps = int(sys.argv[1])
stamps = []
config = TrainConfig(preset="e", optimizer="sgd", lr=0.1, batch_size=100, iterations=steps,
                     eval_every=steps, schedule="constant", normalization="none", engine="fast")
if "callbacks" in inspect.signature(train).parameters:
    from mlplab.training.callbacks import Callback
    class Stamp(Callback):
        def on_step(self, trainer):
            stamps.append(time.perf_counter())
    train(config, data, "cpu", callbacks=[Stamp()])
else:
    train(config, data, "cpu", on_step=lambda it, total: stamps.append(time.perf_counter()))
print(json.dumps({"ms": (stamps[-1] - stamps[99]) / (len(stamps) - 100) * 1000}))
"""

DEFAULT_JOB = """
import json
from mlplab import TrainConfig, train, load_dataset
result = train(TrainConfig(), load_dataset("mnist", download=False))
print(json.dumps({"seconds": result.seconds, "accuracy": result.test.accuracy}))
"""

RECIPE_98 = (
    "train --model 784-512-10:relu --lr 6e-3 --batch-size 256 --iterations 350 "
    "--label-smoothing 0.1 --normalization dataset --threads 2 --quiet"
).split()


def checkout(ref: str, into: Path) -> Path:
    """REF's src/ folder, extracted from git into `into`."""
    archive = run(["git", "archive", ref, "src"], timeout=120, text=False, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def python(src: Path, code: str, *args: str, timeout: float = RUN_TIMEOUT) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = run([sys.executable, "-c", code, *args], timeout, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cli_wall(src: Path, out: Path) -> dict:
    """Seconds from starting `python -m mlplab train ...` to its exit, and its accuracy."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    command = [sys.executable, "-m", "mlplab", *RECIPE_98, "--out", str(out)]
    done = run(command, RUN_TIMEOUT, env=env, check=True)
    wall = time.perf_counter() - start
    accuracy = float(done.stdout.split("Test accuracy: ")[1].split("%")[0])
    return {"seconds": wall, "accuracy": accuracy}


def alternate(measure, sides: dict[str, Path], repeats: int, key: str, log) -> dict[str, list]:
    """measure(src) for each side in turn, `repeats` rounds; the values of `key`."""
    values: dict[str, list] = {side: [] for side in sides}
    extra: dict[str, list] = {side: [] for side in sides}
    for i in range(repeats):
        for side, src in sides.items() if i % 2 == 0 else reversed(sides.items()):
            result = measure(src)
            values[side].append(result[key])
            extra[side].append(result.get("accuracy"))
            log(f"  {side} round {i + 1}: {result}")
    return {"values": values, "accuracy": extra}


def row(label: str, unit: str, runs: dict) -> list[str]:
    old, new = (statistics.median(runs["values"][s]) for s in ("old", "new"))
    accuracy = ""
    if runs["accuracy"]["old"][0] is not None:
        accuracy = " / ".join(
            f"{statistics.median(runs['accuracy'][s]):.2f}%" for s in ("old", "new")
        )
    every = " / ".join(", ".join(f"{v:.3g}" for v in runs["values"][s]) for s in ("old", "new"))
    return [label, f"{old:.3g} {unit}", f"{new:.3g} {unit}", f"{new / old:.3f}", accuracy, every]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.versus", description=__doc__)
    parser.add_argument("ref", help="the commit to compare with (anything git archive takes)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds per measure (default 5)")
    parser.add_argument("--steps", type=int, default=2000, help="model-E steps per run")
    parser.add_argument("--default-job-repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sides = {"old": checkout(args.ref, tmp / "old"), "new": ROOT / "src"}
        log("model-E step (fast engine, 1 thread)")
        step = alternate(
            lambda s: python(s, STEP_TIME, str(args.steps)), sides, args.repeats, "ms", log
        )
        log("default job")
        job = alternate(
            lambda s: python(s, DEFAULT_JOB), sides, args.default_job_repeats, "seconds", log
        )
        log("CLI wall time to 98%")
        wall = alternate(lambda s: cli_wall(s, tmp / "runs"), sides, args.repeats, "seconds", log)
    rows = [
        row("fast engine, model-E step", "ms", step),
        row("default job, training time", "s", job),
        row("CLI wall time to 98% (process start to exit)", "s", wall),
    ]
    head = ["measure", "old", "new", "new / old", "test accuracy old / new"]
    head.append("every run old / new")
    text = (
        f"`python -m benchmarks.versus {args.ref}`: old = {args.ref}, new = the working tree "
        f"at {git_commit()}; torch {torch.__version__}, {os.cpu_count()} CPUs; medians of "
        f"{args.repeats} (default job: {args.default_job_repeats}) alternating runs.\n\n"
        + table(head, rows)
        + "\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
