"""Stopping cleanly on SIGINT (Ctrl-C) and SIGTERM (a job scheduler, `kill`).

The first signal asks the trainer to pause at the end of the current step: it saves its
state and raises Interrupted, and the run can be resumed exactly. A second signal, or one
before training has begun, stops at once (KeyboardInterrupt for SIGINT, SystemExit(143)
for SIGTERM); the last state saved stays valid, because every write is atomic.
"""

from __future__ import annotations

import signal
from types import FrameType

from mlplab.training.callbacks import Callback
from mlplab.training.trainer import Trainer

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal(Callback):
    """A callback and a context manager: inside the block, SIGINT and SIGTERM pause the
    trainer that this callback is attached to; the handlers before are restored after."""

    def __init__(self):
        self.trainer: Trainer | None = None
        self.received: signal.Signals | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignal:
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def on_train_begin(self, trainer: Trainer) -> None:
        self.trainer = trainer

    @property
    def exit_code(self) -> int:
        """The shell's code for death by the signal received: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + int(self.received or signal.SIGINT)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        self.received = signal.Signals(signum)
        if first and self.trainer is not None:
            self.trainer.interrupt(f"{self.received.name} received")
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)
