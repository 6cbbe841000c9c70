"""mlplab against a real `mlflow server` on 127.0.0.1, started by the test and always stopped:
a run logged through the CLI, a server that goes away mid-run, and servers that never answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings

import pytest
from tracking_helpers import Relay, free_port, mlflow_server

from conftest import head
from mlplab.config import TrainConfig
from mlplab.errors import MlplabWarning
from mlplab.io.rundir import read_metrics
from mlplab.runner import run
from mlplab.training.callbacks import Callback

ARGS = ["--model", "784-32-10:relu", "--iterations", "40", "--eval-every", "20"]
ARGS += ["--batch-size", "64", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


def train(*args: str, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlplab", "train", *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_mlplab_train_logs_to_the_server(server, tmp_path):
    from mlflow import MlflowClient

    done = train(*ARGS, "--log", f"mlflow={server}", "--out", "runs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    run_id = json.loads((run_dir / "mlflow.json").read_text())["run_id"]
    client = MlflowClient(server)
    found = client.get_run(run_id)
    assert found.info.status == "FINISHED"
    evals = [r for r in read_metrics(run_dir) if r["kind"] == "eval"]
    history = client.get_metric_history(run_id, "test/accuracy")
    assert sorted((m.step, m.value) for m in history) == [
        (r["iteration"], r["test_accuracy"]) for r in evals
    ]
    assert found.data.params["model"] == "784-32-10:relu"
    # files go through the server's artifact proxy; the pictures are the CLI's own
    assert {a.path for a in client.list_artifacts(run_id, "plots")} == {
        "plots/curves.png",
        "plots/confusion.png",
    }
    got = client.download_artifacts(run_id, "model/model.safetensors", str(tmp_path))
    assert open(got, "rb").read() == (run_dir / "model.safetensors").read_bytes()


class CutAtSecondEvaluation(Callback):
    def __init__(self, relay: Relay):
        self.relay = relay

    def on_evaluate(self, trainer, evaluation):
        if evaluation.iteration == 40:
            self.relay.cut()


def test_a_server_that_goes_away_warns_once_and_training_goes_on(
    server, mnist, tmp_path, monkeypatch
):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own, else minutes
    relay = Relay(int(server.rsplit(":", 1)[1]))
    config = TrainConfig(
        model="784-32-10:relu",
        iterations=60,
        eval_every=20,
        batch_size=64,
        out=str(tmp_path),
        log=(f"mlflow=http://127.0.0.1:{relay.port}",),
    )
    start = time.monotonic()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cut = CutAtSecondEvaluation(relay)
            run_dir, result = run(config, head(mnist, 4000), callbacks=[cut])
    finally:
        relay.cut()
    ours = [w for w in caught if issubclass(w.category, MlplabWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert str(ours[0].message).startswith(f"mlflow http://127.0.0.1:{relay.port}: ")
    assert "training goes on" in str(ours[0].message)
    assert time.monotonic() - start < 60
    # the run directory is whole
    assert result.iterations == 60
    assert read_metrics(run_dir)[-1]["kind"] == "final"
    assert (run_dir / "model.safetensors").is_file()
    # the server kept what came before the cut, and nothing after it
    run_id = json.loads((run_dir / "mlflow.json").read_text())["run_id"]
    steps = [m.step for m in MlflowClient(server).get_metric_history(run_id, "train/loss")]
    assert sorted(steps) == [10, 20]


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers (a hung or firewalled server)."""
    import socket

    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_an_unreachable_server_is_a_one_line_error_within_10_s(kind, tmp_path, request):
    port = request.getfixturevalue("silent_port") if kind == "silent" else free_port()
    uri = f"http://alice:s3cret@127.0.0.1:{port}"
    start = time.monotonic()
    done = train(*ARGS, "--log", f"mlflow={uri}", "--out", "runs", cwd=tmp_path, timeout=60)
    took = time.monotonic() - start
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"mlplab: error: --log mlflow=http://alice:***@127.0.0.1:{port}: "
        "cannot reach the tracking server: "
    )
    assert "s3cret" not in done.stderr + done.stdout
    assert took < 10, took
    assert not (tmp_path / "runs").exists()  # before training: no run directory
