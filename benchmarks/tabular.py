"""TabularMLPClassifier against the MLPs and gradient boosting, on 20 real tables.

Claims (issue 32): at defaults, mlplab.TabularMLPClassifier's mean test accuracy is within
0.2 points of pytabkit's RealMLP-TD or above it, at least 0.6 points above scikit-learn's
MLPClassifier (with a StandardScaler and one-hot categories) and ahead of it on most tables,
and its median fit time is at most a fifth of RealMLP-TD's on the same machine.

The tables are in benchmarks/tabular_data.py. Each table is split 80/20, stratified, once
per seed (0, 1, 2); every model fits the same split in this process, one after the other,
after one untimed warm-up fit of each. Reported: the test accuracy (mean over seeds), the
rank of each model among all on each split (1 is best, ties shared), and the fit time
(preprocessing included). `--ablation` fits TabularMLPClassifier with one default changed
at a time instead. `--write` puts the tables into BENCHMARKS.md.

    python -m benchmarks.tabular [--seeds 3] [--threads 1] [--ablation] [--write] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from benchmarks import tabular_data, tabular_models, tabular_report


def split(x: pd.DataFrame, y: np.ndarray, seed: int):
    """(x_train, y_train, x_test, y_test): the fixed stratified 80/20 split for a seed."""
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=seed
    )
    return x_train, y_train, x_test, y_test


def fit_one(make: Callable, x_train, y_train, x_test, y_test) -> tuple[float, float]:
    """(test accuracy, fit seconds) of one model on one split."""
    model = make()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's MLP does not converge in 200 epochs
        model.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        accuracy = float(np.mean(model.predict(x_test) == y_test))
    return accuracy, seconds


def warm_up(models: dict[str, Callable]) -> None:
    """One untimed fit of each model: imports, first calls, thread pools."""
    x, y = tabular_data.load(tabular_data.TABLES[-2])
    for make in models.values():
        fit_one(lambda make=make: make(0), *split(x.iloc[:200], y[:200], 0))


def run(tables, models: dict[str, Callable], seeds: int, log=print) -> list[dict]:
    """One row per (table, seed, model): accuracy and fit time."""
    rows = []
    for table in tables:
        x, y = tabular_data.load(table)
        for seed in range(seeds):
            parts = split(x, y, seed)
            for name, make in models.items():
                acc, secs = fit_one(lambda make=make, seed=seed: make(seed), *parts)
                rows.append(dict(table=table.name, seed=seed, model=name, acc=acc, fit_s=secs))
                log(f"{table.name:26s} seed {seed} {name:24s} {100 * acc:6.2f}% {secs:7.2f} s")
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tabular", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--only", default="", help="comma-separated table names")
    parser.add_argument("--models", default="", help="comma-separated model names (a subset)")
    parser.add_argument("--ablation", action="store_true", help="one default off at a time")
    parser.add_argument("--smoke", action="store_true", help="2 tables, 1 seed, tiny budgets")
    parser.add_argument("--json", type=Path, help="also write every fit's row here")
    parser.add_argument("--write", action="store_true", help="put the tables in BENCHMARKS.md")
    parser.add_argument("--leaks", action="store_true", help="print single-column predictors")
    parser.add_argument(
        "--from-log", type=Path, help="report the fits a run printed to stderr; fit nothing"
    )
    return parser


def measure(args: argparse.Namespace) -> tuple[list[dict], float]:
    """Every fit's row, and the wall time of them all."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    tables = tabular_data.TABLES
    names = args.only.split(",") if args.only else tabular_data.SMOKE if args.smoke else ()
    if names:
        tables = [t for t in tables if t.name in names]
    if args.ablation:
        models = tabular_models.ablation(args.smoke)
    else:
        models = tabular_models.contenders(args.smoke, args.threads)
    if args.models:
        models = {k: v for k, v in models.items() if k in args.models.split(",")}
    start = time.perf_counter()
    with threadpool_limits(args.threads):
        warm_up(models)
        log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
        rows = run(tables, models, 1 if args.smoke else args.seeds, log=log)
    return rows, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.leaks:
        print("\n".join(tabular_data.leak_report()))
        return 0
    if args.from_log:
        rows, wall = tabular_report.read_log(args.from_log), None
    else:
        rows, wall = measure(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    command = "python -m benchmarks.tabular " + " ".join(argv if argv is not None else sys.argv[1:])
    text = tabular_report.render(rows, args.ablation, command.strip(), args.threads, wall)
    print(text)
    if args.write:
        tabular_report.write(text, ablation=args.ablation)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
