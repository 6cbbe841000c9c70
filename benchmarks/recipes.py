"""The named recipes in full, over seeds: the "Best MLPs" table (issue 15).

Claim: each recipe reaches its target (mlplab recipes lists them) as a mean over 3 seeds,
within 30 minutes of wall time per run on 2 CPU cores. Each run is `mlplab train --recipe
NAME --seed S` in a fresh process with every core; its wall time is measured around the
process, and the test accuracy is the one its run directory reports (the model chosen on
validation; the test split is evaluated once, for the report). Prints a markdown table and
the TOML [[recipe.measured]] entry to paste into each recipe file.

    python -m benchmarks.recipes [--recipes a,b] [--seeds 0,1,2] [--out runs/recipes]
(what `make recipes` runs; hours on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from benchmarks.machine import cpu_model
from benchmarks.processes import run
from benchmarks.report import table
from mlplab.experiments.recipes import load_recipe, names

RUN_TIMEOUT = 4 * 3600.0  # seconds one run may take before it is killed (the claim: 30 min)
HEAD = ["recipe", "dataset", "test accuracy (mean ± std)", "seeds", "wall time (longest)"]
HEAD += ["machine", "command"]


def run_once(name: str, seed: int, out: Path, more: list[str]) -> dict:
    """One full run of a recipe in its own process: test accuracy, training and wall time."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "mlplab", "train", "--recipe", name, "--seed", str(seed)]
    done = run([*command, *more, "--out", str(out), "--quiet"], RUN_TIMEOUT, check=True)
    wall = time.perf_counter() - start
    print(done.stdout + done.stderr, end="", file=sys.stderr)
    newest = max((p for p in out.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    model = json.loads((newest / "model.json").read_text())
    return {"test": model["test_accuracy"], "train_seconds": model["seconds"], "wall": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recipes", description=__doc__)
    parser.add_argument("--recipes", default=",".join(names()))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("runs/recipes"))
    parser.add_argument("--iterations", type=int, help="cut every run short (a smoke check)")
    args = parser.parse_args(argv)
    more = ["--iterations", str(args.iterations)] if args.iterations else []
    seeds = [int(s) for s in args.seeds.split(",")]
    machine = f"{cpu_model()}, torch {torch.__version__}"
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    rows, entries = [], []
    for name in args.recipes.split(","):
        recipe = load_recipe(name)
        runs = [run_once(name, seed, args.out / name, more) for seed in seeds]
        accuracy = [r["test"] for r in runs]
        spread = f" ± {statistics.stdev(accuracy):.2f}" if len(accuracy) > 1 else ""
        wall = max(r["wall"] for r in runs)
        rows.append(
            [
                name,
                recipe.train["dataset"],
                f"{statistics.fmean(accuracy):.2f}%{spread}",
                len(seeds),
                f"{wall / 60:.1f} min",
                machine,
                f"`{recipe.command}`",
            ]
        )
        entries.append(
            f"# {name}\n[[recipe.measured]]\nseeds = {seeds}\ntest_accuracy = {accuracy}\n"
            f"train_seconds = {[round(r['train_seconds'], 1) for r in runs]}\n"
            f'machine = "{machine}"\ndate = "{date}"\n'
            f'command = "python -m benchmarks.recipes --recipes {name} --seeds {args.seeds}"\n'
        )
    print(table(HEAD, rows))
    print("\n" + "\n".join(entries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
