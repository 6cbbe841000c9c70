"""LabSession in-process, on a thread of its own, on a slice of real MNIST: steps, pauses, what
a pause writes, interrupts that land anywhere, and closing."""

from __future__ import annotations

import time

import pytest

from conftest import head
from mlplab.config import TrainConfig
from mlplab.io.rundir import STATES, is_running
from mlplab.io.states import newest_state
from mlplab.lab.session import LabSession

SMALL = dict(model="784-32-10", batch_size=100, iterations=100_000, eval_every=50, threads=1)


def wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def session(mnist, tmp_path):
    data = head(mnist, 3000, 500)
    lab = LabSession(out=tmp_path, threads=1, datasets={"mnist": data})
    lab.start(config=TrainConfig(out=str(tmp_path), **SMALL))
    wait_for(lambda: lab.status == "ready")
    yield lab
    lab.close(timeout=30)
    assert lab.thread is not None and not lab.thread.is_alive()


def test_a_step_from_ready_makes_the_run_and_pauses_after_one(session):
    session.send("step")
    wait_for(lambda: session.status == "paused")
    assert session.trainer.state.iteration == 1
    state = newest_state(session.run_dir / STATES)
    assert state is not None and state[1]["loop"]["iteration"] == 1
    assert (session.run_dir / "model.safetensors").is_file()
    assert not is_running(session.run_dir)  # a paused run's lock is free for other tools


def test_an_interrupt_between_commands_ends_training_for_good(session):
    """A signal can land anywhere in a step; the trainer it interrupts must not be trained
    again (it would begin, see the interrupt, stop, and begin again, forever)."""
    session.send("play")
    wait_for(lambda: session.trainer.state.iteration > 20)
    session.trainer.interrupt("a signal, outside the lab's own commands")
    wait_for(lambda: session.status == "stopped")
    stopped, callbacks = session.trainer.state.iteration, len(session.trainer.callbacks)
    time.sleep(0.5)
    assert session.status == "stopped" and session.mode == "pause"
    assert session.trainer.state.iteration == stopped
    assert len(session.trainer.callbacks) == callbacks
    assert newest_state(session.run_dir / STATES)[1]["loop"]["iteration"] == stopped


def test_closing_while_playing_saves_the_state_where_it_stopped(session):
    session.send("play")
    wait_for(lambda: session.trainer.state.iteration > 20)
    left = session.close(timeout=30)
    assert not session.thread.is_alive()
    assert not left["finished"] and left["run_dir"]
    found = newest_state(session.run_dir / STATES)
    assert found[1]["loop"]["iteration"] == left["iteration"] > 20


@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "70000"], "mlplab: error: --port must be 0 to 65535, got 70000"),
        (["--lr", "-1"], "mlplab: error: lr: must be positive, got -1.0"),
        (["no-such-run"], "mlplab: error: no-such-run"),
    ],
)
def test_the_lab_command_refuses_bad_input_in_one_line(cli, tmp_path, args, message):
    done = cli("lab", "--port", "0", *args, cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr


def test_an_opened_run_keeps_its_own_settings(cli, trained_run, tmp_path):
    done = cli("lab", str(trained_run), "--model", "784-10", cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert done.stderr == (
        "mlplab: error: --model: RUN_DIR keeps its own settings; build a new run on the page "
        "instead\n"
    )
