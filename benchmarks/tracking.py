"""What tracking costs: the default job logged to TensorBoard and to a local MLflow store at
once (`--log tensorboard --log mlflow=sqlite:///...`), against the same job logging nothing.

Claim: logging to both costs at most 3% of the default job's training time. Measured in one
process, on real MNIST, with the training time each run reports (setting the trackers up,
which happens once before training, is not in it). The two modes alternate, the order
reversed every round, so that load from elsewhere hits them alike; the medians are compared.
The time spent inside the trackers' own hooks is also timed in every logging run, and its
share of that same run's training time is the in-run figure, free of run-to-run noise (it
leaves out what the MLflow sender thread costs the training threads; the medians do not).

Run alone: python -m benchmarks.tracking [--rounds 3] [--iterations N] (prints markdown).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

import mlplab
from benchmarks.machine import git_commit
from benchmarks.timing import Timed
from benchmarks.trainer import load_mnist
from mlplab import TrainConfig
from mlplab.tracking.mlflow_log import MlflowLog
from mlplab.tracking.tensorboard_log import TensorBoardLog

TARGET = 3.0  # percent of the default job's training time
HOOKS = ("on_train_begin", "on_step", "on_evaluate", "on_epoch_end", "on_train_end", "state_dict")


class HookTimer:
    """Times every call of the trackers' hooks, in total, while installed."""

    def __init__(self):
        self.seconds = 0.0
        self.saved = [
            Timed(c, name, self._add) for c in (TensorBoardLog, MlflowLog) for name in HOOKS
        ]

    def _add(self, seconds: float) -> None:
        self.seconds += seconds

    def restore(self) -> None:
        for timed in self.saved:
            timed.restore()


def measure(rounds: int, iterations: int | None, folder: Path) -> dict[str, list]:
    data = load_mnist()
    base = TrainConfig(out=str(folder / "runs"))
    if iterations:
        base = replace(base, iterations=iterations, eval_every=iterations // 2)
    logged = replace(base, log=("tensorboard", f"mlflow=sqlite:///{folder / 'mlflow.db'}"))
    timer = HookTimer()
    found: dict[str, list] = {"none": [], "both": [], "inside": []}
    try:
        mlplab.run(replace(logged, epochs=1, iterations=20), data)  # warm-up: imports, the store
        for i in range(rounds):
            order = ("none", "both") if i % 2 == 0 else ("both", "none")
            for mode in order:
                timer.seconds = 0.0
                _, result = mlplab.run(base if mode == "none" else logged, data)
                found[mode].append(result.seconds)
                if mode == "both":
                    found["inside"].append(timer.seconds / result.seconds * 100)
    finally:
        timer.restore()
    return found


def report(found: dict[str, list], rounds: int) -> str:
    none, both = statistics.median(found["none"]), statistics.median(found["both"])
    cost = (both / none - 1) * 100
    inside = statistics.median(found["inside"])
    paired = [(b / n - 1) * 100 for n, b in zip(found["none"], found["both"], strict=True)]
    ok = cost <= TARGET

    def runs(xs):
        return ", ".join(f"{x:.2f}" for x in xs)

    return "\n".join(
        [
            "| logging | training s (median) | runs (s) | vs none | target: <= 3% |",
            "|---|---:|---:|---:|:---|",
            f"| none | {none:.2f} | {runs(found['none'])} | | |",
            f"| TensorBoard + MLflow (local SQLite) | {both:.2f} | {runs(found['both'])} "
            f"| {cost:+.1f}% | {'met' if ok else 'MISSED'} |",
            "",
            "Round by round (each round's two runs back to back): "
            + ", ".join(f"{x:+.1f}%" for x in paired)
            + f"; median {statistics.median(paired):+.1f}%.",
            "",
            f"Inside the trackers' own hooks: {inside:.2f}% of each logging run's training "
            f"time (median of {rounds}; runs: "
            + ", ".join(f"{x:.2f}%" for x in found["inside"])
            + ").",
            "",
            f"The default job (`mlplab train`'s defaults) on real MNIST, {rounds} rounds, the "
            f"modes alternating; mlplab {mlplab.__version__}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
            f"commit {git_commit()}; `python -m benchmarks.tracking --rounds {rounds}`.",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tracking", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each mode")
    parser.add_argument(
        "--iterations", type=int, help="a shorter job (smoke); default: the 8 epochs"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        print(report(measure(args.rounds, args.iterations, Path(folder)), args.rounds))


if __name__ == "__main__":
    main()
