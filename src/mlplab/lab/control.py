"""LabControl: the callback through which the lab watches and steers the Trainer.

The Trainer's own loop (Trainer.run, inside runner.train_into) trains a lab run; this callback
is how the lab gets in. After every iteration, when the state is whole, it:

- does what the pages asked (play, pause, step, a learning rate, a look inside), in order;
- publishes a small `metrics` event about ten times a second, and a `snapshot` at most
  `snapshots_per_second` times;
- pauses when asked: it saves the state and the model (so `mlplab runs`, `report`, `serve`,
  `predict` and `train --resume` work on the run), gives back the run's lock, and waits for
  the next command, doing what is asked meanwhile.

To end the run early (a new build, the server closing) it calls trainer.interrupt(); run()
then saves the state and raises Interrupted, as on Ctrl-C in `mlplab train`.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import torch

from mlplab.lab.live import LiveRun
from mlplab.lab.snapshot import snapshot
from mlplab.training.callbacks import Callback, Evaluation
from mlplab.training.engines import linear_grads


class Steering(Protocol):
    """What the callback uses of the LabSession that owns it (the session imports this
    module, so this one names only the session's surface, never the class)."""

    live: LiveRun
    probe: torch.Tensor | None
    steps_left: int

    def take_commands(self, block: bool) -> None: ...

    def wants_pause(self) -> bool: ...

    def pause_here(self) -> None: ...

    def publish_evaluation(self, evaluation: Evaluation) -> None: ...


METRICS_EVERY = 0.1  # seconds between metrics events while playing


class LabControl(Callback):
    """See the module docstring; one per lab run, owned by its LabSession."""

    def __init__(self, session: Steering, snapshots_per_second: float = 2.0):
        self.session = session
        self.snapshot_every = 1.0 / snapshots_per_second
        self._last_metrics = self._last_snapshot = 0.0
        self._window: tuple[float, int, int] | None = None  # loss total, seen, iteration
        self._stepped = False  # gradients exist only once this process has taken a step

    def on_train_begin(self, trainer) -> None:
        trainer.started = time.perf_counter()  # the run's clock: the wait for play is not training
        s = trainer.state
        self._window = (float(s.loss_total), s.seen, s.iteration)

    def on_step(self, trainer) -> None:
        self._stepped = True

    def on_train_end(self, trainer, result) -> None:
        now = time.perf_counter()
        self.publish_metrics(trainer, now)
        self.publish_snapshot(trainer, now)

    def on_evaluate(self, trainer, evaluation: Evaluation) -> None:
        self.session.publish_evaluation(evaluation)

    def on_iteration_end(self, trainer) -> None:
        session = self.session
        session.take_commands(block=False)
        stepping = session.steps_left > 0
        if stepping:
            session.steps_left -= 1
        now = time.perf_counter()
        if stepping or now - self._last_metrics >= METRICS_EVERY:
            self.publish_metrics(trainer, now)
        if now - self._last_snapshot >= self.snapshot_every:
            self.publish_snapshot(trainer, now)
        if session.wants_pause() and not trainer.finished and trainer.interrupted is None:
            self.publish_metrics(trainer, now)
            self.publish_snapshot(trainer, now)
            session.pause_here()

    def publish_metrics(self, trainer, now: float) -> None:
        s = trainer.state
        loss = float(s.loss_total)  # a sync point; about ten a second
        last_loss, last_seen, last_iteration = self._window or (0.0, 0, 0)
        seen = s.seen - last_seen
        if seen <= 0:
            return
        elapsed = now - self._last_metrics if self._last_metrics else None
        steps = s.iteration - last_iteration
        self.session.live.publish(
            "metrics",
            {
                "iteration": s.iteration,
                "epoch": trainer.sampler.epoch,
                "train_loss": (loss - last_loss) / seen,
                "lr": s.lr,
                "seconds": round(trainer.seconds, 3),
                "steps_per_second": round(steps / elapsed, 2) if elapsed else None,
            },
        )
        self._window, self._last_metrics = (loss, s.seen, s.iteration), now

    def publish_snapshot(self, trainer, now: float) -> None:
        model = trainer.engine.module()
        grads = linear_grads(trainer.engine) if self._stepped else [None] * len(model.linears())
        data = snapshot(model, grads, self.session.probe)
        data["iteration"] = trainer.state.iteration
        self.session.live.publish("snapshot", data)
        self._last_snapshot = now

    def state_dict(self) -> dict[str, Any]:
        return {}
