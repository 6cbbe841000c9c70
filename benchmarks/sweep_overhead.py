"""What Optuna's bookkeeping costs a sweep, per trial, on its default SQLite storage.

Claim: at most 0.2 s per trial, or at most 2% of a one-epoch trial (MNIST, the default
model, val_size 5000). Measured in one process with mlplab.experiments.sweep.work(), TPE,
and no pruning so that every trial is a whole epoch (its four reports still go to the
storage): each trial's wall time, from the end of the previous trial to the end of
this one (the count under the lock, stale-trial checks, sampling, storage writes, tell and
callbacks), minus the training run itself (building the Trainer, train_into()), with the
pruner's report/should_prune calls moved back to bookkeeping. The first trial (it opens the
study and loads the data) is the warm-up and is left out; the median of the rest is quoted.

Run alone: python -m benchmarks.sweep_overhead [--trials 12] (prints markdown).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch

import mlplab
from benchmarks.machine import git_commit
from benchmarks.timing import Timed
from mlplab.experiments import sweep
from mlplab.experiments.sweep_space import read_space
from mlplab.experiments.sweep_storage import storage_url

SPACE = """\
dataset = "mnist"
epochs = 1
eval_every = 27
val_size = 5000
checkpoint_every = 0

[space]
lr = { low = 1e-3, high = 1e-2, log = true }
weight_decay = { low = 0.0, high = 1e-4 }
"""
TARGET_SECONDS, TARGET_SHARE = 0.2, 0.02


def _add_to_last(calls: list[float]):
    """A recorder that adds each call's seconds to the current trial's total, `calls[-1]`."""

    def add(seconds: float) -> None:
        calls[-1] += seconds

    return add


def measure(trials: int, folder: Path) -> list[tuple[float, float]]:
    """(wall seconds, training seconds) of each trial after the first."""
    path = folder / "bench.toml"
    path.write_text(SPACE)
    sweep_dir = folder / "sweep-bench"
    plan = sweep.SweepPlan(
        read_space(path),
        "bench",
        sweep_dir,
        storage_url(None, sweep_dir),
        trials=trials,
        seed=0,
        pruner="none",  # full one-epoch trials; their reports are still written
    )
    train, prune = [0.0], [0.0]
    wrapped = [
        Timed(sweep, "Trainer", _add_to_last(train)),
        Timed(sweep, "train_into", _add_to_last(train)),
        Timed(sweep.PruneTrial, "on_evaluate", _add_to_last(prune)),
    ]
    ends = [time.perf_counter()]

    def on_trial(row) -> None:
        ends.append(time.perf_counter())
        train[-1] -= prune[-1]  # the pruner's storage calls ran inside training
        train.append(0.0)
        prune.append(0.0)

    try:
        sweep.work(plan, on_trial=on_trial)
    finally:
        for w in wrapped:
            w.restore()
    walls = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    return list(zip(walls, train, strict=False))[1:]


def report(samples: list[tuple[float, float]]) -> str:
    overheads = [wall - trained for wall, trained in samples]
    trained = statistics.median(t for _, t in samples)
    overhead = statistics.median(overheads)
    share = overhead / trained
    ok = overhead <= TARGET_SECONDS or share <= TARGET_SHARE
    return "\n".join(
        [
            "| trials timed | training per trial (s) | bookkeeping per trial, median (s) "
            "| max (s) | share of the trial | target: <= 0.2 s or <= 2% |",
            "|---:|---:|---:|---:|---:|:---|",
            f"| {len(samples)} | {trained:.2f} | {overhead:.3f} | {max(overheads):.3f} "
            f"| {share:.1%} | {'met' if ok else 'MISSED'} |",
            "",
            f"One-epoch MNIST trials (default model, val_size 5000, TPE, 4 reports each, "
            f"SQLite); mlplab {mlplab.__version__}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
            f"commit {git_commit()}; `python -m benchmarks.sweep_overhead`.",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep_overhead", description=__doc__
    )
    parser.add_argument("--trials", type=int, default=12, help="trials, the warm-up included")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        print(report(measure(args.trials, Path(folder))))


if __name__ == "__main__":
    main()
