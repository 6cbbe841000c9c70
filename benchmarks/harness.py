"""The cases of `make bench`, each timed in a child process of its own, and what their records say.

Every case runs in its own Python process, timestamped by the parent just before launch, so
that interpreter start, imports and data loading count toward time-to-accuracy. The child
prints one `@bench {json}` line per record; each carries `wall` (seconds since launch) and
`rss_mb` (the child's peak resident set so far).
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from benchmarks import processes
from benchmarks.stats import median

PREFIX = "@bench "


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
    """Run `python -m benchmarks.child CASE PARAMS T0`; after `timeout` seconds kill it,
    torchrun's ranks included (what it printed until then is kept).

    params["nproc"] = N starts it under torchrun, N processes on this machine.
    """
    run = Run(case, params)
    t0 = time.time()
    cmd = [sys.executable, "-m", "benchmarks.child", case, json.dumps(params), repr(t0)]
    if params.get("nproc"):
        torchrun = ["-m", "torch.distributed.run", "--standalone"]
        cmd[1:1] = [*torchrun, f"--nproc-per-node={params['nproc']}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = processes.run(cmd, timeout, env=env)
    run.stderr, run.timed_out = done.stderr, done.timed_out
    run.returncode = None if done.timed_out else done.returncode
    run.wall = time.time() - t0
    if log:
        log(f"    {case}: {run.wall:.1f} s")
    run.records = [
        json.loads(line[len(PREFIX) :])
        for line in done.stdout.splitlines()
        if line.startswith(PREFIX)
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
