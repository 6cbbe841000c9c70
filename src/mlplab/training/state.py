"""TrainState: the training loop's own bookkeeping, saved with the rest of a run's state.

It holds the iteration, the running totals, the last evaluation and the records so far.
The Trainer's state_dict() nests it with the engine's weights and optimizer buffers, the
sampler's position, every random stream and each callback's state; mlplab.io.states
writes that tree to a folder (safetensors plus JSON, nothing pickled).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class TrainState:
    """What the loop itself must remember to continue a run exactly.

    The running totals live on the training device as tensors, so that accounting for a
    step never waits for the device; records read them (a sync) and take differences.
    """

    loss_total: torch.Tensor  # sum over steps of batch loss * batch size
    correct_total: torch.Tensor  # training predictions that were right
    iteration: int = 0  # optimizer steps taken
    seen: int = 0  # training samples stepped on
    lr: float = 0.0  # the lr of the last step
    window: tuple[float, int] = (0.0, 0)  # (loss total, seen) at the last evaluation
    epoch_start: tuple[float, int, int] = (0.0, 0, 0)  # (loss, correct, seen) at epoch start
    last_eval: int = 0  # iteration of the last evaluation
    latest: dict[str, Any] = field(default_factory=dict)  # its val and test metrics, as dicts
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # training time before this process took over
    stop_reason: str | None = None
    stopped_early: bool = False
    # learning rates set during the run (Trainer.set_lr): [iteration, the schedule's new base]
    lr_changes: list[list[float]] = field(default_factory=list)

    @classmethod
    def start(cls, device: torch.device) -> TrainState:
        wide = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
        return cls(
            loss_total=torch.zeros((), dtype=wide, device=device),
            correct_total=torch.zeros((), dtype=torch.int64, device=device),
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "loss_total": self.loss_total.clone(),
            "correct_total": self.correct_total.clone(),
            "iteration": self.iteration,
            "seen": self.seen,
            "lr": self.lr,
            "window": list(self.window),
            "epoch_start": list(self.epoch_start),
            "last_eval": self.last_eval,
            "latest": self.latest,
            "records": self.records,
            "seconds": self.seconds,
            "stop_reason": self.stop_reason,
            "stopped_early": self.stopped_early,
            "lr_changes": [list(c) for c in self.lr_changes],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss_total.copy_(state["loss_total"])
        self.correct_total.copy_(state["correct_total"])
        self.iteration, self.seen = int(state["iteration"]), int(state["seen"])
        self.lr = float(state["lr"])
        loss, seen = state["window"]
        self.window = (float(loss), int(seen))
        loss, correct, seen = state["epoch_start"]
        self.epoch_start = (float(loss), int(correct), int(seen))
        self.last_eval = int(state["last_eval"])
        self.latest = dict(state["latest"])
        self.records = [dict(r) for r in state["records"]]
        self.seconds = float(state["seconds"])
        self.stop_reason = state["stop_reason"]
        self.stopped_early = bool(state["stopped_early"])
        # states written before lr changes existed have none
        self.lr_changes = [[int(i), float(lr)] for i, lr in state.get("lr_changes", [])]
