"""mlplab runs [DIR]: the run directories, with their status, model and results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mlplab.errors import MlplabError


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "runs",
        help="list run directories: status, model, accuracy, iterations, time",
        description="List the run directories under DIR: finished, stopped at iteration N "
        "(resumable with mlplab train --resume), running, or failed; with the model, the "
        "dataset, the test accuracy, the iterations and the training time.",
    )
    p.add_argument("dir", metavar="DIR", nargs="?", default="runs", help="default: runs")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_runs)


def cmd_runs(args) -> int:
    from mlplab.io.rundir import CONFIG, describe_run

    root = Path(args.dir)
    if not root.is_dir():
        raise MlplabError(f"{root}: no such folder")
    rows = [describe_run(p) for p in sorted(root.iterdir()) if (p / CONFIG).is_file()]
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"{root}: no runs", file=sys.stderr)
        return 0
    print(_table(rows))
    return 0


def _status(row: dict) -> str:
    if row["status"] == "stopped":
        return f"stopped at {row['iteration']} (resumable)"
    return row["status"]


def _table(rows: list[dict]) -> str:
    def cell(value, fmt: str) -> str:
        return "" if value is None else format(value, fmt)

    header = ("run", "status", "model", "dataset", "test acc", "iterations", "time")
    body = [
        (
            r["run"],
            _status(r),
            str(r["model"]),
            str(r["dataset"]),
            cell(r["test_accuracy"], ".2f"),
            cell(r["iteration"], "d"),
            cell(r["seconds"], ".1f") + ("s" if r["seconds"] is not None else ""),
        )
        for r in rows
    ]
    widths = [max(len(x) for x in column) for column in zip(header, *body, strict=True)]
    lines = [
        "  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)) for line in [header, *body]
    ]
    return "\n".join(line.rstrip() for line in lines)
