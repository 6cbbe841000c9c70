"""Timed child processes, medians, and the facts about this machine that go beside the numbers.

Every case runs in its own Python process, timestamped by the parent just before launch, so
that interpreter start, imports and data loading count toward time-to-accuracy. The child
prints one `@bench {json}` line per record; each carries `wall` (seconds since launch) and
`rss_mb` (the child's peak resident set so far).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "@bench "
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    """What one child process reported, and how it ended."""

    case: str
    params: dict
    records: list[dict] = field(default_factory=list)
    returncode: int | None = None
    timed_out: bool = False
    wall: float = 0.0
    stderr: str = ""

    def evals(self) -> list[dict]:
        return [r for r in self.records if r.get("kind") == "eval"]

    def first(self, kind: str) -> dict | None:
        return next((r for r in self.records if r.get("kind") == kind), None)

    @property
    def peak_rss_mb(self) -> float | None:
        return max((r["rss_mb"] for r in self.records if "rss_mb" in r), default=None)

    def time_to(self, accuracy: float) -> float | None:
        """Seconds from launch to the first evaluation at or above `accuracy` (%)."""
        hit = next((r for r in self.evals() if r["test_accuracy"] >= accuracy), None)
        return hit["wall"] if hit else None

    @property
    def best_accuracy(self) -> float | None:
        return max((r["test_accuracy"] for r in self.evals()), default=None)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 or (self.timed_out and bool(self.records))


def launch(case: str, params: dict, timeout: float, log=None) -> Run:
    """Run `python -m benchmarks.child CASE PARAMS T0`; kill it after `timeout` seconds.

    params["nproc"] = N starts it under torchrun, N processes on this machine.
    """
    run = Run(case, params)
    t0 = time.time()
    cmd = [sys.executable, "-m", "benchmarks.child", case, json.dumps(params), repr(t0)]
    if params.get("nproc"):
        torchrun = ["-m", "torch.distributed.run", "--standalone"]
        cmd[1:1] = [*torchrun, f"--nproc-per-node={params['nproc']}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        out, run.stderr, run.returncode = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as e:
        out = _text(e.stdout)
        run.stderr, run.timed_out = _text(e.stderr), True
    run.wall = time.time() - t0
    if log:
        log(f"    {case}: {run.wall:.1f} s")
    run.records = [
        json.loads(line[len(PREFIX) :]) for line in out.splitlines() if line.startswith(PREFIX)
    ]
    if not run.ok and log:
        log(f"  ! {case} failed (rc={run.returncode}): {run.stderr.strip()[-600:]}")
    return run


class Runner:
    """Launches cases, `jobs` at a time (1 for timings; smoke runs use more)."""

    def __init__(self, jobs: int = 1, log=None):
        self.jobs, self.log = jobs, log or (lambda message: None)
        # One pool for every caller, so concurrent sections still share `jobs` slots.
        self.pool = ThreadPoolExecutor(jobs) if jobs > 1 else None

    def map(self, jobs: list[tuple[str, dict, float]]) -> list[Run]:
        for case, params, _ in jobs:
            self.log(f"  {case} {json.dumps({k: v for k, v in params.items() if k != 'files'})}")
        if self.pool is None:
            return [launch(case, params, timeout, self.log) for case, params, timeout in jobs]
        futures = [self.pool.submit(launch, c, p, t, self.log) for c, p, t in jobs]
        return [f.result() for f in futures]


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def median_time(values) -> float | None:
    """Median of times-to-target where a run that never got there counts as infinite."""
    values = [math.inf if v is None else v for v in values]
    return statistics.median(values) if values else None


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def git_commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{rev}{' (with uncommitted changes)' if dirty else ''}" if rev else "unknown"


def machine_info() -> dict:
    """CPU, cores, memory and library versions, for the header of BENCHMARKS.md."""
    import numpy
    import psutil
    import sklearn
    import torch

    return {
        "cpu": cpu_model(),
        "cores": f"{psutil.cpu_count(logical=False)} physical, {psutil.cpu_count()} logical",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch threads (default)": str(torch.get_num_threads()),
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "device": "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "commit": git_commit(),
    }


def python_loop_seconds(n: int = 10_000_000) -> tuple[float, float]:
    """A pure-Python loop of n additions, at module scope (as in a script) and in a function.

    How slow this machine is, in two numbers: global variables are dict lookups, locals are not.
    """
    code = compile("total = 0\nfor i in range(n):\n    total += i\n", "<loop>", "exec")
    start = time.perf_counter()
    exec(code, {"n": n})
    module_scope = time.perf_counter() - start
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return module_scope, time.perf_counter() - start


def wide_step_seconds(run: Run, eval_every: int) -> float | None:
    """Seconds per step, evaluations excluded; the first segment holds setup, so it is dropped."""
    segments = [r["segment_seconds"] for r in run.evals()][1:]
    return sum(segments) / (len(segments) * eval_every) if segments else None


def steady_epoch_seconds(run: Run, epochs: int) -> float | None:
    """Median epoch time over epochs 2..N (the first also holds warm-up and setup)."""
    segs = [r["segment_seconds"] for r in run.evals() if r["epoch"] <= epochs + 1e-6]
    segs = segs[1:] or segs
    return median(segs)


def accuracy_at(run: Run, epoch: float) -> float | None:
    hit = [r for r in run.evals() if r["epoch"] <= epoch + 1e-6]
    return hit[-1]["test_accuracy"] if hit else None


def wall_at(run: Run, epoch: float) -> float | None:
    hit = [r for r in run.evals() if r["epoch"] <= epoch + 1e-6]
    return hit[-1]["wall"] if hit else None


def accuracy_by(run: Run, seconds: float) -> float | None:
    """Best test accuracy among evaluations made within `seconds` of launch."""
    return max((r["test_accuracy"] for r in run.evals() if r["wall"] <= seconds), default=None)


def last_accuracy(run: Run) -> float | None:
    evals = run.evals()
    return evals[-1]["test_accuracy"] if evals else None
