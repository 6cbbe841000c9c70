"""What each technique of a recipe is worth: the recipe with one change at a time (issue 15).

Claim: the technique table of the README's "Best MLPs" section. Each variant is the recipe's
[train] table with one change (a field removed, set or the model spec edited), cut to
--epochs, run as `mlplab train --config FILE --threads 1` in its own process, --parallel at a
time, all with the same seed. The table gives each variant's best validation accuracy (what
choices are made on), its test accuracy (reported, never chosen on) and its training time,
each as a change from the unchanged recipe in the same run. One seed: on 5,000 validation
images a difference under about 0.2 points is within the noise of a single run.

    python -m benchmarks.ablation [--recipe mnist-plain] [--epochs 12] [--parallel 2]
        [--variants 0,1,...] [--iterations N]   (a part of the table; runs cut short)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from benchmarks.machine import cpu_model
from benchmarks.processes import run
from benchmarks.report import table
from mlplab.experiments.recipes import load_recipe

Change = dict[str, Any]  # field -> new value; None removes the field (its default)
RUN_TIMEOUT = 4 * 3600.0  # seconds one variant may take before it is killed

# The variants for each recipe: (label, change). "model" changes take the spec as written.
THREE = "784-1024-1024-1024-10:relu"
DROPOUT = "dropout=0.5,input_dropout=0.2"
VARIANTS: dict[str, list[tuple[str, Change]]] = {
    "mnist-plain": [
        ("the recipe", {}),
        ("without max-norm", {"max_norm": None}),
        ("without input dropout", {"model": f"{THREE},dropout=0.5"}),
        ("without any dropout or max-norm", {"model": THREE, "max_norm": None}),
        ("two hidden layers, not three", {"model": f"784-1024-1024-10:relu,{DROPOUT}"}),
        ("with batch norm", {"model": f"{THREE},bn,{DROPOUT}"}),
        ("with EMA 0.999", {"ema": 0.999}),
        ("with label smoothing 0.1", {"label_smoothing": 0.1}),
        ("with weight decay 1e-5", {"weight_decay": 1e-5}),
        ("with mixup 0.2", {"mixup": 0.2}),
        ("half the epochs", {"epochs": "half"}),
    ],
}


def variant_config(train: dict, change: Change, epochs: int, iterations: int | None = None) -> dict:
    """The recipe's [train] table with one change, cut to `epochs` (or to `iterations`)."""
    config = {**train, "epochs": epochs}
    if iterations:
        config.update(iterations=iterations, eval_every=iterations)
    for key, value in change.items():
        if value is None:
            config.pop(key, None)
        elif value == "half":
            config[key] = max(1, epochs // 2)
        else:
            config[key] = value
    return config


def toml_line(key: str, value: Any) -> str:
    return f"{key} = {json.dumps(value)}"  # strings, numbers and booleans read back alike


def run_variant(config: dict, out: Path) -> dict:
    """Train one variant in its own process and read what its run directory reports."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.toml"
    path.write_text("[train]\n" + "\n".join(toml_line(k, v) for k, v in config.items()) + "\n")
    command = [sys.executable, "-m", "mlplab", "train", "--config", str(path)]
    command += ["--threads", "1", "--out", str(out / "runs"), "--quiet"]
    run(command, RUN_TIMEOUT, check=True)
    (run_dir,) = (out / "runs").iterdir()
    model = json.loads((run_dir / "model.json").read_text())
    return {
        "val": model["val_accuracy"],
        "test": model["test_accuracy"],
        "seconds": model["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablation", description=__doc__)
    parser.add_argument("--recipe", default="mnist-plain", choices=sorted(VARIANTS))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--variants", help="indices into the table, e.g. 0,2 (default: all)")
    parser.add_argument("--iterations", type=int, help="cut every run short (a smoke check)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time, one thread each")
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temp folder)")
    args = parser.parse_args(argv)
    train = load_recipe(args.recipe).train
    variants = VARIANTS[args.recipe]
    if args.variants:
        variants = [variants[int(i)] for i in args.variants.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        configs = [
            variant_config(train, change, args.epochs, args.iterations) for _, change in variants
        ]
        with ThreadPoolExecutor(args.parallel) as pool:
            results = list(
                pool.map(lambda ic: run_variant(ic[1], root / f"{ic[0]:02d}"), enumerate(configs))
            )
    base = results[0]
    print(
        f"{args.recipe}, {args.epochs} epochs, seed {train.get('seed', 0)}; {cpu_model()}, "
        f"torch {torch.__version__}, 1 thread per run, {args.parallel} runs at a time"
    )
    rows = [
        [
            label,
            f"{r['val']:.2f}%",
            f"{r['val'] - base['val']:+.2f}",
            f"{r['test']:.2f}%",
            f"{r['test'] - base['test']:+.2f}",
            f"{r['seconds']:.0f}",
            f"{r['seconds'] / base['seconds'] - 1:+.0%}",
        ]
        for (label, _), r in zip(variants, results, strict=True)
    ]
    head = ["variant", "validation", "change", "test", "change", "training s", "time change"]
    print(table(head, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
