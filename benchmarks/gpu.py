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
steps (torch.compile with the eager backend), so that this script cannot rot. The cases
themselves are in gpu_cases.py, the table's Markdown in gpu_table.py.

    python -m benchmarks.gpu [--device cuda] [--smoke] [--out FILE.md] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import processes
from benchmarks.gpu_cases import CHILDREN, GOALS, PREFIX
from benchmarks.gpu_table import REPEATS, render
from benchmarks.report import write_atomic

DEVICES = re.compile(r"cpu|cuda(:[0-9]+)?")
# The longest each child may take, in seconds (full run; a smoke run takes a few).
CAPS = {"reach": 25, "throughput": 120, "hardware": 40, "baseline": 40}


class OneLineParser(argparse.ArgumentParser):
    """argparse, with bad input told in one line (no usage block above it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse(text: str) -> list[dict]:
    lines = text.splitlines()
    return [json.loads(line[len(PREFIX) :]) for line in lines if line.startswith(PREFIX)]


def launch(child: str, args, timeout: float, *extra: str) -> tuple[list[dict], str | None]:
    """Run one child to its end or its timeout, with whatever it started: its records (those
    printed before a timeout too), and why it failed (or None)."""
    smoke = ["--smoke"] if args.smoke else []
    t0 = time.time()  # the child's process start, as near as the parent can tell
    command = [sys.executable, "-m", "benchmarks.gpu", "--child", child, "--t0", repr(t0)]
    command += ["--device", args.device, *smoke, *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = processes.run(command, timeout, env=env, own_session=False)
    if done.timed_out:
        return parse(done.stdout), f"timed out after {timeout:.0f} s"
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return parse(done.stdout), (lines[-1] if lines else f"exit code {done.returncode}")
    return parse(done.stdout), None


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
