"""Run directories: <out>/<date-time>-<name>/, one per training run, never overwritten."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from mlplab.errors import CheckpointError

METRICS = "metrics.jsonl"


def create_run_dir(out: str | Path, name: str, now: datetime | None = None) -> Path:
    """A new <out>/<date-time>-<name>/ folder; a numeric suffix avoids collisions."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = Path(out) / f"{stamp}-{name}"
    for i in range(1000):
        path = base if i == 0 else base.with_name(f"{base.name}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise CheckpointError(f"{base}: cannot create a new run directory")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of a run's metrics.jsonl, in order."""
    path = Path(run_dir) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
