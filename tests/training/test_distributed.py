"""Data-parallel training on torchrun: real processes, gloo, 127.0.0.1. Two ranks train the
model that one process trains with the same global batch; two "machines" meet at a c10d
rendezvous; torchrun's elastic restart resumes; failures are errors, not hangs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

TIMEOUT = 180
SMALL = [
    *("--model", "784-64-10:relu", "--batch-size", "64", "--iterations", "120"),
    *("--eval-every", "40", "--optimizer", "sgd", "--lr", "0.1", "--schedule", "constant"),
    *("--threads", "1", "--quiet"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(*args: str, cwd: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """`python -m torch.distributed.run ... -m mlplab train ARGS` on loopback."""
    command = [sys.executable, "-m", "torch.distributed.run", *extra, "-m", "mlplab", "train"]
    return subprocess.Popen(
        [*command, *args],
        cwd=cwd,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so that cleanup can end torchrun and its workers together
    )


def two_nodes(rdzv_id: str) -> tuple[str, ...]:
    """torchrun's flags for two "machines" meeting at a c10d rendezvous on loopback (give
    the same tuple to both agents)."""
    return (
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{free_port()}",
        f"--rdzv-id={rdzv_id}",
        "--monitor-interval=0.2",
    )


def standalone(n: int = 2, *more: str) -> tuple[str, ...]:
    return ("--standalone", f"--nproc-per-node={n}", "--monitor-interval=0.2", *more)


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        proc.communicate()
        raise
    return proc.returncode, out, err


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and every descendant (torchrun starts its workers in sessions of
    their own, so a process-group kill would miss them)."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    for p in [*family, psutil.Process(proc.pid)] if proc.poll() is None else family:
        try:
            p.kill()
        except psutil.Error:
            pass


def mlplab(*args: str, cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "mlplab", "train", *args],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return done.returncode, done.stdout, done.stderr


def only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def max_difference(a: Path, b: Path) -> float:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def accuracy(run: Path) -> float:
    return json.loads((run / "model.json").read_text())["test_accuracy"]


# --- the same model as one process ------------------------------------------------------------

STEPS_IN_FLOAT64 = """
import os, sys, contextlib, torch
from safetensors.torch import save_file
from mlplab.config import TrainConfig
from mlplab.data.sampler import BatchSampler
from mlplab.nn.model import build_model
from mlplab.training.distributed import StepReducer, from_environment, process_group
from mlplab.training.engines import make_engine
from mlplab.training.optim import Schedule

job = from_environment(os.environ)
rank, world = (job.rank, job.world_size) if job else (0, 1)
with process_group(job) if job else contextlib.nullcontext():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1001, 784, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (1001,), generator=g)
    for engine_name in ("fast", "autograd"):
        config = TrainConfig(model="784-32-16-10:tanh", engine=engine_name, optimizer="adam",
                             lr=1e-2, batch_size=60, schedule="onecycle", label_smoothing=0.1)
        torch.manual_seed(0)
        engine = make_engine(config, build_model(config.model_spec).double())
        reducer = StepReducer(engine.flat_grads()) if job else None
        sampler = BatchSampler(1001, 60, seed=2, rank=rank, world_size=world)
        schedule = Schedule("onecycle", 1e-2, 50)
        for step in range(50):  # 17 batches an epoch, the last of 41: 21 and 20 images
            idx = sampler.next()
            loss, logits = engine.forward_backward(x[idx], y[idx])
            if reducer:
                share = len(idx) / sampler.share[1]
                reducer(engine.grads, [loss * len(idx), 0, len(idx), 0], share)
            engine.update(schedule(step))
        if rank == 0:
            weights = {k: v.contiguous() for k, v in engine.module().state_dict().items()}
            save_file(weights, f"{sys.argv[1]}-{engine_name}.safetensors")
"""


def test_two_ranks_step_as_one_process_in_float64(tmp_path):
    """The all-reduce of share-weighted gradients is the whole batch's gradient: in float64
    the weights after 50 steps (with epochs' uneven last batches) agree to 1e-10."""
    script = tmp_path / "steps.py"
    script.write_text(textwrap.dedent(STEPS_IN_FLOAT64))
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one")], env=env(), timeout=TIMEOUT
    )
    assert one.returncode == 0
    two = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            *standalone(2),
            str(script),
            str(tmp_path / "two"),
        ],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    rc, _, err = finish(two)
    assert rc == 0, err[-3000:]
    for engine in ("fast", "autograd"):
        a = load_file(tmp_path / f"one-{engine}.safetensors")
        b = load_file(tmp_path / f"two-{engine}.safetensors")
        for k in a:
            assert a[k].dtype == torch.float64
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-10, msg=f"{engine} {k}")


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """SMALL in one process."""
    work = tmp_path_factory.mktemp("single")
    rc, _, err = mlplab(*SMALL, "--out", "one", cwd=work)
    assert rc == 0, err
    return only_run(work / "one")


def test_torchrun_trains_the_model_one_process_trains(single, tmp_path):
    """float32: each step's gradient over 64 rows is summed in another order (two halves of
    32, then their sum). With float32's unit roundoff u = 2^-24 (6e-8) an element can move by
    about 64 u of the sum of its terms' magnitudes, a relative 1e-7 or so; over 120 SGD steps
    at lr 0.1, on weights of magnitude 0.04-0.4, that stays well under 1e-5 (measured: the
    largest difference is 1.8e-7). Beyond 1e-5, something other than rounding differs."""
    rc, out, err = finish(torchrun(*SMALL, "--out", "two", cwd=tmp_path, extra=standalone(2)))
    assert rc == 0, err[-3000:]
    run = only_run(tmp_path / "two")
    assert max_difference(run, single) < 1e-5
    assert abs(accuracy(run) - accuracy(single)) <= 0.05
    assert out.count("Test accuracy:") == 1  # rank 0 alone speaks
    assert not list((tmp_path / "two").glob(".torchrun-*"))  # the restart marker is gone


def test_the_shorthand_starts_torchrun(single, tmp_path):
    rc, out, err = mlplab(
        *SMALL, "--nproc-per-node", "2", "--out", "two", "--log", "tensorboard=tb", cwd=tmp_path
    )
    assert rc == 0, err[-3000:]
    run = only_run(tmp_path / "two")
    assert max_difference(run, single) < 1e-5
    assert "Setting OMP_NUM_THREADS" not in err
    # rank 0 alone logs: one event file, in the folder named after its run directory
    assert [p.name for p in (tmp_path / "tb").iterdir()] == [run.name]
    assert len(list((tmp_path / "tb" / run.name).glob("events.out.tfevents.*"))) == 1


def test_two_machines_meet_on_loopback(single, tmp_path):
    """Two torchrun agents, --nnodes 2, one process each, at a c10d rendezvous; rank 0's
    run directory holds the result."""
    nodes = two_nodes("loopback")
    agents = [torchrun(*SMALL, "--out", "two", cwd=tmp_path, extra=nodes) for _ in range(2)]
    results = [finish(a) for a in agents]
    assert [rc for rc, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    assert max_difference(only_run(tmp_path / "two"), single) < 1e-5
    assert sum(out.count("Test accuracy:") for _, out, _ in results) == 1


def test_ranks_with_different_settings_are_refused(tmp_path):
    nodes = two_nodes("mismatch")
    agents = [
        torchrun(*SMALL, "--lr", lr, "--out", "two", cwd=tmp_path, extra=nodes)
        for lr in ("0.1", "0.2")
    ]
    results = [finish(a) for a in agents]
    assert all(rc != 0 for rc, _, _ in results)
    errors = "".join(err for _, _, err in results)
    assert "mlplab: error: config: rank 1's settings differ from rank 0's" in errors


def test_a_rank_that_cannot_find_the_data_ends_the_job(tmp_path):
    """The second machine's data folder does not exist: that rank says so on one line and
    the job ends on both machines, well before the collectives' timeout."""
    nodes = two_nodes("nodata")
    missing = tmp_path / "no-such-folder"
    agents = [
        torchrun(*SMALL, *more, "--dist-timeout", "120", "--out", "two", cwd=tmp_path, extra=nodes)
        for more in ((), ("--data-dir", str(missing)))
    ]
    start = time.monotonic()
    results = [finish(a) for a in agents]
    assert all(rc != 0 for rc, _, _ in results)
    assert time.monotonic() - start < 100
    assert f"mlplab: error: data_dir {missing}: no such folder" in results[1][2]


# --- restarts and errors ------------------------------------------------------------------------


def workers(agent: subprocess.Popen) -> dict[int, psutil.Process]:
    """torchrun's worker processes by local rank."""
    found = {}
    for child in psutil.Process(agent.pid).children(recursive=True):
        try:
            rank = child.environ().get("LOCAL_RANK")
        except psutil.Error:
            continue
        if rank is not None:
            found[int(rank)] = child
    return found


def test_an_elastic_restart_resumes_and_ends_as_if_never_stopped(tmp_path):
    args = [*SMALL, "--iterations", "400", "--checkpoint-every", "10"]
    reference = torchrun(*args, "--out", "ref", cwd=tmp_path, extra=standalone(2))
    rc, _, err = finish(reference)
    assert rc == 0, err[-3000:]
    agent = torchrun(*args, "--out", "runs", cwd=tmp_path, extra=standalone(2, "--max-restarts=1"))
    deadline = time.monotonic() + TIMEOUT
    while not list((tmp_path / "runs").glob("*/state/0*")):
        assert agent.poll() is None and time.monotonic() < deadline, "no state was saved"
        time.sleep(0.01)
    victim = workers(agent)[1]
    victim.send_signal(signal.SIGKILL)
    rc, _, err = finish(agent)
    assert rc == 0, err[-3000:]
    run = only_run(tmp_path / "runs")
    assert "failed (exitcode: -9) local_rank: 1" in err  # torchrun saw the kill, and restarted
    wa = load_file(run / "model.safetensors")
    wb = load_file(only_run(tmp_path / "ref") / "model.safetensors")
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_a_global_batch_the_ranks_cannot_share_is_an_error(tmp_path):
    args = [*SMALL, "--batch-size", "63", "--out", "two"]
    rc, _, err = finish(torchrun(*args, cwd=tmp_path, extra=standalone(2)))
    assert rc != 0
    assert (
        "mlplab: error: batch_size: the global batch of 63 does not divide evenly among "
        "2 processes" in err
    )


def test_resuming_with_another_world_size_is_an_error(tmp_path):
    args = [*SMALL, "--iterations", "100000", "--out", "two"]
    agent = torchrun(*args, cwd=tmp_path, extra=standalone(2))
    deadline = time.monotonic() + TIMEOUT
    while not list((tmp_path / "two").glob("*/state/0*")):
        assert agent.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    agent.send_signal(signal.SIGINT)
    finish(agent)
    run = only_run(tmp_path / "two")
    rc, _, err = mlplab("--resume", str(run), cwd=tmp_path)
    assert rc == 1
    state = sorted((run / "state").glob("0*"))[-1]
    assert err.strip().splitlines()[-1] == (
        f"mlplab: error: {state / 'state.json'}: world_size: the saved state was trained by 2 "
        "process(es); resume it with 2, not 1"
    )


def test_a_rendezvous_that_never_completes_times_out(tmp_path):
    port = free_port()
    lonely = (
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}",
        "--rdzv-id=alone",
        "--rdzv-conf=join_timeout=5",
    )
    start = time.monotonic()
    rc, _, err = finish(torchrun(*SMALL, "--out", "x", cwd=tmp_path, extra=lonely), timeout=90)
    assert rc != 0
    assert time.monotonic() - start < 60
    assert "RendezvousTimeoutError" in err or "timed out" in err.lower()
