"""TrainState: the training loop's own bookkeeping, saved with the rest of a run's state.

It holds the iteration, the running totals, the last evaluation and the records so far. A
window of training (since the last evaluation, since the epoch began, since a page last
looked) is measured one way: mark() the totals at its start, mark() them again at its end,
and take `end.since(start)`.
The Trainer's state_dict() nests it with the engine's weights and optimizer buffers, the
sampler's position, every random stream and each callback's state; mlplab.io.states
writes that tree to a folder (safetensors plus JSON, nothing pickled).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Mark:
    """The running totals at one moment, read to the host: where a window of training starts
    or ends."""

    iteration: int = 0
    loss: float = 0.0  # loss total
    correct: int | None = 0  # None: not known (a state saved before it was kept)
    seen: int = 0

    def since(self, start: Mark) -> dict[str, Any]:
        """The window from `start` to this mark: its mean training loss and accuracy (%, None
        when not known), the samples it saw and the steps it took."""
        seen = self.seen - start.seen
        n = max(seen, 1)
        known = self.correct is not None and start.correct is not None
        return {
            "train_loss": (self.loss - start.loss) / n,
            "train_accuracy": (self.correct - start.correct) * 100.0 / n if known else None,
            "seen": seen,
            "steps": self.iteration - start.iteration,
        }

    def to_saved(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_saved(cls, value: Any, iteration: int = 0) -> Mark:
        """A saved mark; also the lists of older states: [loss, seen] (a window) and
        [loss, correct, seen] (an epoch's start)."""
        if isinstance(value, dict):
            correct = value["correct"]
            return cls(
                int(value["iteration"]),
                float(value["loss"]),
                None if correct is None else int(correct),
                int(value["seen"]),
            )
        if len(value) == 2:
            return cls(iteration, float(value[0]), None, int(value[1]))
        loss, correct, seen = value
        return cls(iteration, float(loss), int(correct), int(seen))


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
    window: Mark = Mark()  # the totals at the last evaluation
    epoch_start: Mark = Mark()  # the totals when the epoch began
    last_eval: int = 0  # iteration of the last evaluation
    latest: dict[str, Any] = field(default_factory=dict)  # its val and test metrics, as dicts
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # training time before this process took over
    stop_reason: str | None = None
    stopped_early: bool = False
    # learning rates set during the run (Trainer.set_lr): [iteration, the schedule's new base]
    lr_changes: list[list[float]] = field(default_factory=list)

    def mark(self, accuracy: bool = True) -> Mark:
        """The running totals now: a host sync, reading them from the device (one read
        fewer with accuracy=False, whose windows then have no training accuracy)."""
        correct = int(self.correct_total) if accuracy else None
        return Mark(self.iteration, float(self.loss_total), correct, self.seen)

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
            "window": self.window.to_saved(),
            "epoch_start": self.epoch_start.to_saved(),
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
        self.last_eval = int(state["last_eval"])
        self.window = Mark.from_saved(state["window"], self.last_eval)
        self.epoch_start = Mark.from_saved(state["epoch_start"])
        self.latest = dict(state["latest"])
        self.records = [dict(r) for r in state["records"]]
        self.seconds = float(state["seconds"])
        self.stop_reason = state["stop_reason"]
        self.stopped_early = bool(state["stopped_early"])
        # states written before lr changes existed have none
        self.lr_changes = [[int(i), float(lr)] for i, lr in state.get("lr_changes", [])]
