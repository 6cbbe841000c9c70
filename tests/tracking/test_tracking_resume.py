"""kill -9 and resume with TensorBoard and MLflow: the resumed run continues the same
TensorBoard folder and the same MLflow run, and what they hold is what an uninterrupted run
logs: the same steps with the same values, none twice. Real `mlplab train` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from tracking_helpers import raw_events, read_tb

from mlplab.io.rundir import read_metrics
from mlplab.tracking.mlflow_log import open_experiment

TIMEOUT = 120
# a state at 40 and 80, evaluations (and sends to MLflow) at 20, 40, 60, ...: a kill just
# after 60 leaves events and metrics logged after the newest state
# after 60, and steps big enough (about 10 ms each) that the kill lands well before 80
ARGS = ["--model", "784-256-10:relu", "--iterations", "120", "--eval-every", "20"]
ARGS += ["--checkpoint-every", "40", "--batch-size", "512", "--threads", "1", "--quiet"]


def start(work: Path, out: str, *extra: str) -> subprocess.Popen:
    uri = f"sqlite:///{work / 'mlflow.db'}"
    return subprocess.Popen(
        [sys.executable, "-m", "mlplab", "train", *ARGS, "--out", out, *extra]
        + ["--log", "tensorboard", "--log", f"mlflow={uri}"],
        cwd=work,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> str:
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0, err
    return err


def evaluated(out: Path, iteration: int) -> bool:
    runs = list(out.glob("*/metrics.jsonl")) if out.is_dir() else []
    try:
        return any(r.get("iteration") == iteration for r in read_metrics(runs[0].parent))
    except Exception:
        return False


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(an uninterrupted run, a run killed after its evaluation at 60 and resumed, the URI)."""
    work = tmp_path_factory.mktemp("kill")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    client = open_experiment(uri)[0]  # the store made, and a client ready for the moment
    reference = start(work, "reference")
    killed = start(work, "killed")
    wait(lambda: list((work / "killed").glob("*/mlflow.json")), killed)
    (run_dir,) = (work / "killed").iterdir()
    watch = Watch(client, run_dir)
    wait(lambda: evaluated(work / "killed", 60), killed)
    sent = watch.reaches(60, seconds=0.5)
    killed.kill()
    killed.communicate(timeout=TIMEOUT)
    finish(reference)
    # killed mid-run, after MLflow got steps that the newest state (at 40) had not seen
    assert read_metrics(run_dir)[-1]["iteration"] < 120
    assert sent
    resumed = subprocess.run(
        [sys.executable, "-m", "mlplab", "train", "--resume", str(run_dir), "--quiet"],
        cwd=work,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert resumed.returncode == 0, resumed.stderr
    (ref_dir,) = (work / "reference").iterdir()
    return ref_dir, run_dir, f"sqlite:///{work / 'mlflow.db'}"


def wait(condition, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.002)


class Watch:
    """Reads a run's test accuracy from MLflow as it comes."""

    def __init__(self, client, run_dir: Path):
        self.client = client
        self.run_id = json.loads((run_dir / "mlflow.json").read_text())["run_id"]
        self.client.get_metric_history(self.run_id, "test/accuracy")

    def reaches(self, step: int, seconds: float) -> bool:
        """Whether the accuracy at `step` is there within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            history = self.client.get_metric_history(self.run_id, "test/accuracy")
            if any(m.step == step for m in history):
                return True
            time.sleep(0.005)
        return False


def tb_logged(run_dir: Path) -> dict[str, list[tuple[int, object]]]:
    """Every (step, value) of every tag, as TensorBoard's reader gives them."""
    ea = read_tb(run_dir / "tb")
    tags = ea.Tags()
    out = {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in tags["scalars"]}
    out |= {
        t: [(e.step, e.histogram_value.sum) for e in ea.Histograms(t)] for t in tags["histograms"]
    }
    out |= {t: [(e.step, e.encoded_image_string) for e in ea.Images(t)] for t in tags["images"]}
    return out


def test_tensorboard_holds_the_uninterrupted_runs_steps(runs):
    reference, resumed, _ = runs
    assert len(list((resumed / "tb").glob("events.out.tfevents.*"))) == 2  # one per process
    ours, theirs = tb_logged(resumed), tb_logged(reference)
    assert ours.keys() == theirs.keys()
    for tag in theirs:
        assert [s for s, _ in ours[tag]] == [s for s, _ in theirs[tag]], tag
        if not tag.startswith("images/"):
            assert [v for _, v in ours[tag]] == pytest.approx([v for _, v in theirs[tag]]), tag
    # on disk, not just as the reader shows it: no (tag, step) twice
    written = Counter((v.tag, e.step) for e in raw_events(resumed / "tb") for v in e.summary.value)
    assert [k for k, n in written.items() if n > 1] == []


def test_mlflow_continues_the_same_run_with_no_step_twice(runs):
    from mlflow import MlflowClient

    reference, resumed, uri = runs
    client = MlflowClient(uri)
    ids = [json.loads((d / "mlflow.json").read_text())["run_id"] for d in (reference, resumed)]
    experiment = client.get_experiment_by_name("mlplab").experiment_id
    assert len(client.search_runs([experiment])) == 2  # the resume made no third run
    ref_run, our_run = (client.get_run(i) for i in ids)
    assert our_run.info.status == "FINISHED"
    assert our_run.data.metrics.keys() == ref_run.data.metrics.keys()
    for key in ref_run.data.metrics:
        ours = sorted((m.step, m.value) for m in client.get_metric_history(ids[1], key))
        theirs = sorted((m.step, m.value) for m in client.get_metric_history(ids[0], key))
        assert [s for s, _ in ours] == [s for s, _ in theirs], key
        assert [v for _, v in ours] == pytest.approx([v for _, v in theirs]), key
