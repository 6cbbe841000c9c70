"""Trainer.set_lr: the schedule keeps its shape through the new lr, and a resumed run keeps it."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import head
from mlplab.config import SCHEDULES, TrainConfig
from mlplab.errors import ConfigError
from mlplab.io.states import load_state
from mlplab.training.callbacks import Callback
from mlplab.training.trainer import Interrupted, Trainer

LR = 4e-3
TOTAL = 60


@pytest.fixture(scope="module")
def small(mnist):
    """The first 2,000 training and 500 test images: 20 steps an epoch at batch size 100."""
    return head(mnist, 2000, 500)


def cfg(**kw) -> TrainConfig:
    base = dict(
        model="784-32-10",
        batch_size=100,
        iterations=TOTAL,
        eval_every=20,
        lr=LR,
        device="cpu",
        seed=0,
    )
    return TrainConfig(**{**base, **kw})


def trained_to(trainer: Trainer, k: int) -> Trainer:
    for _ in range(k):
        trainer.step()
    assert trainer.state.iteration == k
    return trainer


class SetLrAt(Callback):
    """set_lr(lr) at the end of iteration `at`; optionally save the state at `save_at` and
    pause there, as a stopped process would."""

    def __init__(self, at: int, lr: float, save_at: int | None = None, path=None):
        self.at, self.lr, self.save_at, self.path = at, lr, save_at, path
        self.returned: float | None = None

    def on_iteration_end(self, trainer) -> None:
        if trainer.state.iteration == self.at:
            self.returned = trainer.set_lr(self.lr)
        if trainer.state.iteration == self.save_at:
            trainer.save_state(self.path)
            trainer.interrupt("the test stops here")


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.eval_module().state_dict().items()}


def records(trainer: Trainer) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in trainer.state.records]


# --- the schedule's shape ------------------------------------------------------------------


@pytest.mark.parametrize("kind,k", [(s, 20) for s in SCHEDULES] + [("onecycle", 7), ("cosine", 45)])
def test_set_lr_passes_through_the_new_lr_and_keeps_the_shape(small, kind, k):
    trainer = trained_to(Trainer(cfg(schedule=kind), small), k)
    before = [trainer.schedule(i) for i in range(TOTAL)]
    new = 1.7e-3
    assert trainer.set_lr(new) == pytest.approx(new, rel=1e-12)
    assert trainer.schedule(k) == pytest.approx(new, rel=1e-12)
    scale = new / before[k]
    after = [trainer.schedule(i) for i in range(TOTAL)]
    assert after == pytest.approx([b * scale for b in before], rel=1e-12)
    if kind == "constant":
        assert after == [new] * TOTAL
    assert trainer.state.lr_changes == [[k, pytest.approx(LR * scale, rel=1e-12)]]
    # the next step trains at it, and the one after follows the scaled shape
    trainer.step()
    assert trainer.state.lr == pytest.approx(new, rel=1e-12)
    trainer.step()
    assert trainer.state.lr == pytest.approx(before[k + 1] * scale, rel=1e-12)


def test_onecycle_peak_moves_with_the_new_lr(small):
    trainer = trained_to(Trainer(cfg(schedule="onecycle"), small), 10)
    before = [trainer.schedule(i) for i in range(TOTAL)]
    trainer.set_lr(before[10] * 2)
    after = [trainer.schedule(i) for i in range(TOTAL)]
    peak = max(range(TOTAL), key=before.__getitem__)
    assert max(range(TOTAL), key=after.__getitem__) == peak
    assert after[peak] == pytest.approx(2 * before[peak], rel=1e-12)


def test_a_second_change_scales_from_the_first(small):
    trainer = trained_to(Trainer(cfg(schedule="step"), small), 10)
    trainer.set_lr(1e-2)
    for _ in range(15):
        trainer.step()
    # step 25 is past the first decay (step_size 20): the lr there is 1e-3
    assert trainer.schedule(25) == pytest.approx(1e-3, rel=1e-12)
    assert trainer.set_lr(5e-3) == pytest.approx(5e-3, rel=1e-12)
    assert trainer.schedule(0) == pytest.approx(5e-2, rel=1e-12)
    assert trainer.schedule(45) == pytest.approx(5e-4, rel=1e-12)
    assert trainer.state.lr_changes == [
        [10, pytest.approx(1e-2, rel=1e-12)],
        [25, pytest.approx(5e-2, rel=1e-12)],
    ]


@pytest.mark.parametrize(
    "bad", [0, 0.0, -1, -1e-3, math.nan, math.inf, -math.inf, True, False, "0.1", None, [0.1]]
)
def test_a_bad_lr_is_refused_and_changes_nothing(small, bad):
    trainer = trained_to(Trainer(cfg(schedule="cosine"), small), 5)
    schedule = trainer.schedule
    with pytest.raises(ConfigError, match=r"^lr: must be "):
        trainer.set_lr(bad)
    assert trainer.schedule is schedule
    assert trainer.state.lr_changes == []


def test_no_lr_can_be_set_where_the_schedule_is_at_zero(small):
    trainer = Trainer(cfg(schedule="cosine", iterations=4), small)
    trainer.run()
    with pytest.raises(ConfigError, match=r"^lr: the cosine schedule is at 0 at step 4$"):
        trainer.set_lr(1e-3)
    assert trainer.state.lr_changes == []


# --- a resumed run takes the same steps ----------------------------------------------------


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("engine", ["fast", "autograd"])
def test_a_resumed_run_keeps_the_changed_lr_bit_identical(small, tmp_path, engine, schedule):
    config = cfg(engine=engine, schedule=schedule)
    new = 9e-3

    whole = Trainer(config, small, callbacks=[SetLrAt(20, new)])
    assert whole.engine_name == engine
    whole.run()
    assert whole.callbacks[-1].returned == pytest.approx(new, rel=1e-12)

    first = Trainer(config, small, callbacks=[SetLrAt(20, new, save_at=30, path=tmp_path)])
    with pytest.raises(Interrupted):
        first.run()
    assert first.state.iteration == 30

    resumed = Trainer(config, small, callbacks=[SetLrAt(20, new)])
    resumed.load_state(tmp_path)
    assert resumed.state.lr_changes == whole.state.lr_changes
    assert len(resumed.state.lr_changes) == 1 and resumed.state.lr_changes[0][0] == 20
    assert resumed.schedule == whole.schedule
    resumed.run()
    assert resumed.state.iteration == TOTAL
    assert resumed.callbacks[-1].returned is None  # it never set the lr itself
    mine, theirs = weights(resumed), weights(whole)
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert torch.equal(mine[name], theirs[name]), name
    assert records(resumed) == records(whole)

    # The check can fail: without the change, or with the change forgotten on resume,
    # the weights differ.
    plain = Trainer(config, small)
    plain.run()
    assert not torch.equal(weights(plain)["fc1.weight"], theirs["fc1.weight"])
    state = load_state(tmp_path)
    state["loop"]["lr_changes"] = []
    forgot = Trainer(config, small)
    forgot.load_state_dict(state)
    forgot.run()
    assert not torch.equal(weights(forgot)["fc1.weight"], theirs["fc1.weight"])


def test_lr_changes_round_trip_through_state_dict(small):
    trainer = trained_to(Trainer(cfg(schedule="cosine"), small), 12)
    trainer.set_lr(2e-3)
    state = trainer.state_dict()
    assert state["loop"]["lr_changes"] == trainer.state.lr_changes
    other = Trainer(cfg(schedule="cosine"), small)
    other.load_state_dict(state)
    assert other.state.lr_changes == trainer.state.lr_changes
    assert other.schedule == trainer.schedule
    assert other.schedule(12) == pytest.approx(2e-3, rel=1e-12)
