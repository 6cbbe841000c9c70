"""LabSession in-process, on a thread of its own, on a slice of real MNIST: steps, pauses, what
a pause writes, closing; experiments of several runs stepped side by side, changed on the way,
and built again from their link."""

from __future__ import annotations

import time

import pytest

from conftest import head
from mlplab.config import TrainConfig
from mlplab.io.rundir import STATES, is_running
from mlplab.io.states import newest_state
from mlplab.lab import experiments
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


def test_pausing_is_not_stepping(session):
    session.send("play")
    wait_for(lambda: session.trainer.state.iteration > 20)
    session.send("pause")
    wait_for(lambda: session.status == "paused")
    stopped = session.trainer.state.iteration
    time.sleep(0.5)
    assert session.trainer.state.iteration == stopped and session.mode == "pause"
    assert newest_state(session.run_dir / STATES)[1]["loop"]["iteration"] == stopped
    session.send("play")  # and it goes on from there, in the same run directory
    wait_for(lambda: session.trainer.state.iteration > stopped + 10)
    session.send("pause")
    wait_for(lambda: session.status == "paused")
    assert newest_state(session.run_dir / STATES)[1]["loop"]["iteration"] > stopped


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


TINY = dict(model="784-16-10:relu", batch_size=50, iterations=400, eval_every=20)
THREE = experiments.Experiment(
    "",
    "three learning rates",
    {**TINY, "optimizer": "sgd", "schedule": "constant"},
    tuple(experiments.Run(f"lr: {lr}", {"lr": lr}) for lr in (0.01, 0.1, 0.5)),
)


@pytest.fixture
def experiment(mnist, tmp_path):
    data = head(mnist, 3000, 500)
    lab = LabSession(out=tmp_path, threads=1, datasets={"mnist": data})
    lab.start(experiment=THREE)
    wait_for(lambda: lab.status == "ready")
    yield lab
    lab.close(timeout=30)
    assert not lab.thread.is_alive()


def test_an_experiments_runs_step_together_each_in_a_run_directory_of_its_own(experiment):
    experiment.send("step")
    wait_for(lambda: experiment.status == "paused")
    assert [r.trainer.state.iteration for r in experiment.runs] == [1, 1, 1]
    experiment.send("play")
    wait_for(lambda: experiment.runs[0].trainer.state.iteration > 60)
    experiment.send("pause")
    wait_for(lambda: experiment.status == "paused")
    reached = [r.trainer.state.iteration for r in experiment.runs]
    assert len(set(reached)) == 1  # a step each, in turn: the curves grow together
    dirs = [r.run_dir for r in experiment.runs]
    assert len(set(dirs)) == 3
    for run, run_dir in zip(experiment.runs, dirs, strict=True):
        assert newest_state(run_dir / STATES)[1]["loop"]["iteration"] == reached[0]
        assert (run_dir / "model.safetensors").is_file() and not is_running(run_dir)
        assert run.trainer.config.lr == float(run.label.removeprefix("lr: "))
        assert run_dir.name.endswith("lab-" + run.label.replace(": ", "-").replace(".", "-"))
    history = experiment.live.history()
    assert set(history["curves"]) == {"1", "2", "3"}
    assert all(len(history["evals"][k]) == reached[0] // 20 for k in ("1", "2", "3"))


def test_a_run_is_added_by_varying_one_setting_and_removed(experiment):
    first = experiment.runs[0]
    experiment.send("focus", experiment.runs[1].id)
    wait_for(lambda: experiment.focus is experiment.runs[1])
    experiment.send("vary", "activation", "tanh")
    wait_for(lambda: len(experiment.runs) == 4)
    added = experiment.runs[3]
    assert added.label == "activation: tanh"
    assert added.trainer.config.model == "784-16-10:tanh" and added.trainer.config.lr == 0.1
    link = experiment.experiment.link()
    assert link.startswith("runs=")
    assert [r.label for r in experiments.from_link(link).runs] == [r.label for r in experiment.runs]
    experiment.send("remove", first.id)
    wait_for(lambda: len(experiment.runs) == 3)
    assert first not in experiment.runs
    assert [r.label for r in experiment.experiment.runs] == [r.label for r in experiment.runs]
    experiment.send("remove", 12345)
    wait_for(lambda: "no run 12345" in experiment.message)


def test_the_link_builds_the_same_runs_and_the_same_first_evaluation(mnist, tmp_path):
    """Two labs (another machine, for all the link knows) build the same runs from it, and
    their first evaluations agree exactly."""
    data = head(mnist, 3000, 500)
    link = THREE.link()
    firsts = []
    for where in ("a", "b"):
        lab = LabSession(out=tmp_path / where, threads=1, datasets={"mnist": data})
        lab.start(experiment=experiments.from_link(link))
        wait_for(lambda lab=lab: lab.status == "ready")
        for _ in range(20):
            lab.send("step")
        wait_for(lambda lab=lab: lab.runs[0].trainer.state.iteration == 20)
        wait_for(lambda lab=lab: lab.status == "paused")
        firsts.append([run.trainer.state.records[0] for run in lab.runs])
        lab.close(timeout=30)
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in run] for run in firsts]
    assert strip[0] == strip[1]
    assert [r["iteration"] for r in strip[0]] == [20, 20, 20]
    assert len({r["test_accuracy"] for r in strip[0]}) == 3  # three runs, three learning rates
