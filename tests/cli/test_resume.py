"""Training survives kill -9, SIGINT and SIGTERM: real `mlplab train` processes, real
signals, real MNIST. A run killed at any instant and resumed ends with the weights (every
tensor torch.equal) and the metrics (timing aside) of a run that was never stopped."""

from __future__ import annotations

import json
import random
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mlplab.io.states import list_states, load_state
from mlplab_process import Mlplab, run_dir

COMMON = ["--iterations", "400", "--batch-size", "64", "--eval-every", "50", "--threads", "1"]
ENGINES = {
    "fast": [
        *("--model", "784-64-10:relu", "--engine", "fast", "--optimizer", "adam"),
        *("--schedule", "onecycle", "--augment", "shift", "--lr", "3e-3"),
    ],
    "autograd": [
        *("--model", "784-64-10:relu,dropout=0.2", "--engine", "autograd"),
        *("--optimizer", "adamw", "--weight-decay", "0.01", "--schedule", "cosine"),
        *("--augment", "affine", "--val-size", "2000", "--patience", "4"),
    ],
    "scratch": [
        *("--model", "784-64-10:sigmoid", "--engine", "scratch", "--optimizer", "sgd"),
        *("--lr", "0.2", "--schedule", "step", "--normalization", "none"),
    ],
}
TIMEOUT = 120
TRAIN = Mlplab(TIMEOUT, before=("train",), after=("--quiet",))
mlplab, finish, wait_for = TRAIN.start, TRAIN.finish, TRAIN.wait_for


def states(out: Path) -> list[Path]:
    found = run_dir(out)
    return list_states(found / "state") if found else []


def writing(out: Path) -> bool:
    """Whether a state is being written: its temp folder exists."""
    found = run_dir(out)
    return bool(found and list((found / "state").glob(".*.part")))


def metrics(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]


def assert_same_run(run: Path, reference: Path) -> None:
    ours, theirs = load_file(run / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    assert metrics(run) == metrics(reference)
    assert list((run / "state").glob(".*.part")) == []  # what a killed write left is gone


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> dict[str, Path]:
    """Each engine's run, never stopped (the three side by side)."""
    root = tmp_path_factory.mktemp("reference")
    procs = {e: mlplab(*COMMON, *args, "--out", e, cwd=root) for e, args in ENGINES.items()}
    for proc in procs.values():
        rc, _, err = finish(proc)
        assert rc == 0, err
    return {engine: run_dir(root / engine) for engine in ENGINES}


def kill_at(instant: str, args: list[str], work: Path, rng: random.Random) -> tuple[Path, str]:
    """Start a run, SIGKILL it at the instant named, and return its run directory and what
    the kill interrupted."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / instant
    if instant == "checkpoint-write":
        args = [*args, "--checkpoint-every", "1"]  # a state every step: writes are frequent
    proc = mlplab(*COMMON, *args, "--out", str(out), cwd=work)
    if instant == "early":
        wait_for(lambda: len(states(out)) >= 1, proc)
        time.sleep(rng.uniform(0.0, 0.05))
    elif instant == "mid-epoch":
        wait_for(lambda: len(states(out)) >= 2, proc)
        time.sleep(rng.uniform(0.05, 0.3))
    else:
        wait_for(lambda: writing(out), proc)
    proc.kill()
    proc.communicate(timeout=TIMEOUT)
    run = run_dir(out)
    left = "a state write" if list((run / "state").glob(".*.part")) else "training"
    return run, left


def kill_until_it_lands(instant: str, engine: str, work: Path) -> Path:
    """kill_at, tried again (up to 5 times) until a checkpoint-write kill lands in a write."""
    rng = random.Random(f"kill-{engine}-{instant}")
    for attempt in range(5):
        run, interrupted = kill_at(instant, ENGINES[engine], work / f"{instant}-{attempt}", rng)
        if instant != "checkpoint-write" or interrupted == "a state write":
            break
    assert interrupted == "a state write" or instant != "checkpoint-write", "no kill in a write"
    assert not (run / "model.safetensors").exists(), f"{instant}: the run had finished"
    return run


@pytest.mark.parametrize("engine", ENGINES)
def test_sigkill_at_any_instant_then_resume_gives_the_uninterrupted_run(
    engine, references, tmp_path
):
    instants = ("early", "mid-epoch", "checkpoint-write")
    # The three runs go side by side (one thread each), then their three resumes.
    with ThreadPoolExecutor(len(instants)) as pool:
        runs = list(pool.map(lambda i: kill_until_it_lands(i, engine, tmp_path), instants))
    resumes = [mlplab("--resume", str(run), cwd=tmp_path) for run in runs]
    for instant, run, proc in zip(instants, runs, resumes, strict=True):
        rc, _, err = finish(proc)
        assert rc == 0, f"{instant}: {err}"
        assert_same_run(run, references[engine])


LONG = ["--model", "784-64-10:relu", "--iterations", "2000", "--batch-size", "64"]
LONG += ["--eval-every", "100", "--threads", "1"]


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("long")
    rc, _, err = finish(mlplab(*LONG, "--out", "ref", cwd=root))
    assert rc == 0, err
    return run_dir(root / "ref")


def test_signals_stop_cleanly_with_a_state_and_the_resume_command(long_reference, tmp_path):
    """SIGINT and SIGTERM: the step ends, the state is saved, the message names the resume
    command, the exit code is the shell's for that signal. A second Ctrl-C stops at once
    (130), and the last state saved stays valid. Each run then resumes exactly."""
    cases = {"sigint": [signal.SIGINT], "sigterm": [signal.SIGTERM], "twice": [signal.SIGINT] * 2}
    procs = {name: mlplab(*LONG, "--out", name, cwd=tmp_path) for name in cases}
    for name, proc in procs.items():
        assert wait_for(lambda n=name: len(states(tmp_path / n)) >= 1, proc)
        for sig in cases[name]:
            proc.send_signal(sig)
    ended = {name: finish(proc) for name, proc in procs.items()}
    assert {name: rc for name, (rc, _, _) in ended.items()} == {
        "sigint": 130,
        "sigterm": 143,
        "twice": 130,
    }, ended
    runs = {name: run_dir(tmp_path / name) for name in cases}
    for name in ("sigint", "sigterm"):
        rc, out, err = ended[name]
        iteration = load_state(list_states(runs[name] / "state")[-1])["loop"]["iteration"]
        assert 100 <= iteration < 2000
        assert out == ""
        assert err.strip().splitlines()[-1] == (
            f"stopped at iteration {iteration}; resume with: mlplab train --resume "
            f"{runs[name].relative_to(tmp_path)}"
        )
    # loads: nothing half-written is ever taken for a state
    load_state(list_states(runs["twice"] / "state")[-1])
    resumes = {name: mlplab("--resume", str(run), cwd=tmp_path) for name, run in runs.items()}
    for name, proc in resumes.items():
        rc, _, err = finish(proc)
        assert rc == 0, f"{name}: {err}"
        assert_same_run(runs[name], long_reference)


# --- in process: the flags of a resume, and mlplab runs ----------------------------------


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory, mnist):
    """A finished run, a stopped one and one that failed before its first state."""
    import shutil

    from conftest import head
    from mlplab.config import TrainConfig
    from mlplab.runner import run
    from mlplab.training.callbacks import Callback
    from mlplab.training.trainer import Interrupted

    class InterruptAt(Callback):
        def on_step(self, trainer):
            if trainer.state.iteration == 30:
                trainer.interrupt("test")

    out = tmp_path_factory.mktemp("runs")
    data = head(mnist, 1000, 300)
    config = TrainConfig(preset="c", iterations=40, eval_every=10, batch_size=64, out=str(out))
    finished, _ = run(config.replace(name="finished"), data)
    stopped = []
    for name in ("stopped", "failed"):
        with pytest.raises(Interrupted) as e:
            run(config.replace(name=name, schedule="constant"), data, callbacks=[InterruptAt()])
        stopped.append(e.value.run_dir)
    shutil.rmtree(stopped[1] / "state")
    return out, finished, stopped[0], stopped[1]


def test_runs_lists_each_runs_status(three_runs, capsys):
    from mlplab import cli

    out, finished, stopped, failed = three_runs
    assert cli.main(["runs", str(out), "--json"]) == 0
    rows = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[finished.name]["status"] == "finished"
    assert rows[finished.name]["iteration"] == 40 and rows[finished.name]["test_accuracy"] > 60
    assert rows[stopped.name]["status"] == "stopped" and rows[stopped.name]["iteration"] == 30
    assert rows[failed.name]["status"] == "failed"
    assert {r["model"] for r in rows.values()} == {"c"}
    assert cli.main(["runs", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "run",
        "status",
        "model",
        "dataset",
        "test",
        "acc",
        "iterations",
        "time",
    ]
    table = {line.split()[0]: line for line in lines[1:]}
    assert " finished " in table[finished.name]
    assert " stopped at 30 (resumable) " in table[stopped.name]
    assert " failed " in table[failed.name]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--lr", "0.1"], r"lr: cannot change when resuming \(it would change the run\); a "),
        (["--preset", "d"], r"preset: cannot change when resuming"),
        (["--augment", "shift"], r"augment: cannot change when resuming"),
        (["--config", "x.toml"], r"--config: a resumed run takes its settings from"),
        (["--iterations", "20"], r"iterations: the saved run is already at iteration 30"),
    ],
)
def test_a_resume_refuses_what_would_change_the_run(three_runs, capsys, flags, message):
    from mlplab import cli

    stopped = three_runs[2]
    assert cli.main(["train", "--resume", str(stopped), *flags, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("mlplab: error: "), err
    assert re.search(message, err), err


def test_a_resume_of_something_that_is_no_run_is_named(tmp_path, capsys):
    from mlplab import cli

    assert cli.main(["train", "--resume", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"mlplab: error: {tmp_path / 'config.json'}: cannot read: No such file or directory "
        "(is it a run directory?)\n"
    )


def test_resuming_a_finished_run_writes_what_it_lacks_and_exits_0(tmp_path, capsys):
    """A job requeued with --resume after it finished (or after a kill while it drew its
    pictures) succeeds: nothing is trained, the missing files are written."""
    import shutil

    from mlplab import cli
    from mlplab.io.rundir import read_metrics

    flags = ["--model", "784-16-10", "--iterations", "40", "--eval-every", "20", "--quiet"]
    assert cli.main(["train", *flags, "--threads", "1", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    shutil.rmtree(run_dir / "plots")
    (run_dir / "model.safetensors").unlink()
    states = sorted(p.name for p in (run_dir / "state").iterdir())
    for _ in range(2):  # a second requeue finds it whole, and succeeds the same way
        assert cli.main(["train", "--resume", str(run_dir), "--quiet"]) == 0
        out, err = capsys.readouterr()
        assert f"{run_dir}: the run was already finished at iteration 40" in err
        assert "Test accuracy: " in out and f"Run saved to {run_dir}" in out
        assert sorted(p.name for p in (run_dir / "plots").iterdir()) == [
            "confusion.png",
            "curves.png",
        ]
        assert (run_dir / "model.safetensors").is_file()
        assert [r["kind"] for r in read_metrics(run_dir)].count("final") == 1
        assert sorted(p.name for p in (run_dir / "state").iterdir()) == states
