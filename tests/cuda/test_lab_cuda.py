"""The lab trains on CUDA: an experiment of two runs, stepped side by side on the device, with
its curves, evaluations and weight snapshots published as the page would read them."""

from __future__ import annotations

import time

from cuda_support import DEVICE, needs_device

from conftest import head
from mlplab.io.rundir import STATES
from mlplab.io.states import newest_state
from mlplab.lab import experiments
from mlplab.lab.session import LabSession

pytestmark = needs_device

TWO = experiments.Experiment(
    "",
    "two learning rates on the device",
    dict(
        model="784-32-10:relu",
        batch_size=100,
        iterations=100_000,
        eval_every=50,
        schedule="constant",
        device=DEVICE.type,
    ),
    tuple(experiments.Run(f"lr: {lr}", {"lr": lr}) for lr in (1e-3, 4e-3)),
)


def wait_for(condition, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_lab_trains_an_experiment_on_the_device(mnist, tmp_path):
    lab = LabSession(out=tmp_path, threads=1, datasets={"mnist": head(mnist, 5000, 1000)})
    lab.start(experiment=TWO)
    try:
        wait_for(lambda: lab.status == "ready")
        lab.watch_snapshots()
        lab.send("play")
        wait_for(lambda: all(r.trainer.state.iteration >= 300 for r in lab.runs))
        lab.send("pause")
        wait_for(lambda: lab.status == "paused")
        assert lab.message == "", lab.message
        for run in lab.runs:
            trainer = run.trainer
            assert trainer.device.type == DEVICE.type
            assert next(trainer.engine.module().parameters()).device.type == DEVICE.type
            assert trainer.state.latest["test"]["accuracy"] > 85.0, trainer.state.latest
            saved = newest_state(run.run_dir / STATES)[1]["loop"]["iteration"]
            assert saved == trainer.state.iteration
        history = lab.live.history()
        assert set(history["curves"]) == {"1", "2"}
        assert all(len(history["evals"][k]) >= 6 for k in ("1", "2"))
        assert history["snapshot"] is not None
    finally:
        lab.close(timeout=60)
    assert not lab.thread.is_alive()
