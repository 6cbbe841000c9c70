"""Run directories: <out>/<date-time>-<name>/, one per training run.

    config.json        every setting of the run (a resumed, extended run updates its length)
    metrics.jsonl      one record per line, as the run goes; a `final` line once it finished
    state/<iteration>/ the newest training states (mlplab.io.states), to resume from
    model.safetensors  the chosen model, and model.json, what it says of itself
    .lock              held (flock) by the process training the run

A run is finished when metrics.jsonl ends with its final line and the model is there;
stopped (resumable) when it has a state and no final line; failed when it has neither.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from mlplab.errors import CheckpointError, MlplabError
from mlplab.io.checkpoint import WEIGHTS
from mlplab.io.states import list_states, state_summary

CONFIG = "config.json"
METRICS = "metrics.jsonl"
STATES = "state"  # RUN/state/<iteration>/: the newest training states
LOCK = ".lock"


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
    """The records of a run's metrics.jsonl, in order.

    An unfinished last line (a crash cut it short) is not a record and is left out; a bad
    line anywhere else is an error that names it.
    """
    path = Path(run_dir) / METRICS
    text = path.read_text(encoding="utf-8", errors="replace")
    complete = text.split("\n")[:-1]  # what follows the last newline is unfinished
    records = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            raise CheckpointError(f"{path}:{number}: not a JSON record") from None
    return records


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The settings saved in RUN/config.json, not yet validated."""
    path = Path(run_dir) / CONFIG
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise MlplabError(
            f"{path}: cannot read: {e.strerror or e} (is it a run directory?)"
        ) from None
    except ValueError as e:
        raise MlplabError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(values, dict):
        raise MlplabError(f"{path}: not a JSON object")
    return values


class RunLock:
    """The run's lock (flock on RUN/.lock), taken and given back as often as needed; a
    process that dies gives it back too. Another process holding it is an error."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        fd = os.open(self.run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise MlplabError(
                f"{self.run_dir}: another mlplab process is training this run"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock, as the process's death would
            self._fd = None


@contextmanager
def locked(run_dir: str | Path) -> Iterator[None]:
    """Hold the run's lock for the block; another process holding it is an error."""
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def is_running(run_dir: str | Path) -> bool:
    """Whether a live process holds the run's lock."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def describe_run(run_dir: str | Path) -> dict[str, Any]:
    """A run's status, model, dataset, test accuracy, iterations and training time.

    status: running, finished, stopped (resumable, at `iteration`), or failed.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    try:
        records = read_metrics(run_dir)
    except (OSError, CheckpointError):
        records = []
    final = records[-1] if records and records[-1].get("kind") == "final" else None
    states = list_states(run_dir / STATES)
    row = {
        "run": run_dir.name,
        "path": str(run_dir),
        "model": config.get("model") or config.get("preset") or "quickstart-512",
        "dataset": config.get("dataset"),
        "test_accuracy": None,
        "iteration": None,
        "seconds": None,
    }
    if final is not None and (run_dir / WEIGHTS).is_file():
        row.update(status="finished", test_accuracy=final.get("test_accuracy"))
        row.update(iteration=final.get("iteration"), seconds=final.get("seconds"))
    elif states:
        row.update(status="stopped", iteration=int(states[-1].name))
        try:
            row.update(seconds=state_summary(states[-1])["seconds"])
        except CheckpointError:
            pass  # a damaged newest state: resuming will say so and fall back
    else:
        row["status"] = "failed"
    if is_running(run_dir):
        row["status"] = "running"
    return row
