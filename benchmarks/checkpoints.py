"""What crash safety costs: the default job with its training state saved at every evaluation
(the default), against the same job saving it only at the end, against train() in memory.

Claim: at the default cadence, checkpointing costs at most 3% of the default job's training
time. Two measures, both in one process:
- the modes alternate (memory, end only, every evaluation; the next round reversed), so
  load from elsewhere hits them alike; on a shared 2-core machine single runs still spread
  by 10-20%, more than the effect;
- so every save is also timed inside the runs that save at every evaluation, and its share
  of that same run's training time is the overhead, free of run-to-run noise.
Run it through `make bench`, or alone: python -m benchmarks.child checkpoints '{}' 0
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import mlplab
from benchmarks.timing import Timed
from benchmarks.trainer import load_mnist
from mlplab import TrainConfig
from mlplab.training.callbacks import StateCheckpoints

MODES = ("memory", "end only", "every evaluation")


class _TimedSaves:
    """StateCheckpoints.save, timed: the seconds and count of the saves since reset()."""

    def __init__(self):
        self.seconds, self.count = 0.0, 0
        Timed(StateCheckpoints, "save", self._add)

    def _add(self, seconds: float) -> None:
        self.seconds += seconds
        self.count += 1

    def reset(self) -> None:
        self.seconds, self.count = 0.0, 0


def _one(mode: str, config: TrainConfig, data, out: Path) -> float:
    """The training seconds of one run in `mode`."""
    if mode == "memory":
        return mlplab.train(config, data).seconds
    every = 0 if mode == "end only" else None
    _, result = mlplab.run(replace(config, checkpoint_every=every, out=str(out)), data)
    return result.seconds


def run(params: dict, emit) -> None:
    """Child entry (via benchmarks.child): one `checkpoints` record per run."""
    data = load_mnist(params.get("train_size"))
    config = TrainConfig(**params.get("config", {}))
    saves = _TimedSaves()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(params.get("rounds", 3)):
            for mode in MODES if i % 2 == 0 else reversed(MODES):
                saves.reset()
                seconds = _one(mode, config, data, Path(tmp) / f"{i}")
                state = Path(tmp) / f"{i}"
                emit(
                    {
                        "kind": "checkpoints",
                        "mode": mode,
                        "seconds": seconds,
                        "save_seconds": saves.seconds,
                        "saves": saves.count,
                        "state_bytes": _state_bytes(state),
                    }
                )


def _state_bytes(out: Path) -> int | None:
    """The size of the newest state a run under `out` wrote."""
    states = sorted(out.glob("*/state/[0-9]*"))
    return sum(p.stat().st_size for p in states[-1].iterdir()) if states else None
