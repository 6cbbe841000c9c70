"""A sweep logged to MLflow: one parent run for the study, each trial a run nested under it
with its state (complete, pruned, failed), read back with MlflowClient."""

from __future__ import annotations

import json

import pytest

from mlplab.experiments.sweep import SweepPlan, open_study, work
from mlplab.experiments.sweep_space import read_space
from mlplab.experiments.sweep_storage import storage_url
from mlplab.io.rundir import read_metrics

SPACE = """\
dataset = "mnist"
iterations = 60
eval_every = 20
batch_size = 64
val_size = 1000
normalization = "dataset"
checkpoint_every = 0

[sweep]
startup_trials = 2

[space]
lr = { low = 1e-5, high = 3e-2, log = true }
model = { choices = ["784-16-10:relu", "784-32-10:relu", "784-32-5:relu"] }
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two good trials, a hopeless one the median pruner stops, one with an invalid model."""
    folder = tmp_path_factory.mktemp("sweep-mlflow")
    (folder / "tiny.toml").write_text(SPACE)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    sweep_dir = folder / "sweep-tiny"
    plan = SweepPlan(
        read_space(folder / "tiny.toml"),
        "tiny",
        sweep_dir,
        storage_url(None, sweep_dir),
        trials=4,
        sampler="random",
        seed=0,
        log=(f"mlflow={uri}",),
    )
    study = open_study(plan)
    for lr, model in (
        (3e-2, "784-32-10:relu"),
        (1e-2, "784-32-10:relu"),
        (1e-5, "784-16-10:relu"),
        (1e-2, "784-32-5:relu"),
    ):
        study.enqueue_trial({"lr": lr, "model": model})
    work(plan, threads=1)
    return study, uri


def test_each_trial_is_a_run_nested_under_the_study(sweep):
    from mlflow import MlflowClient

    study, uri = sweep
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("mlplab").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.run_name == "study tiny" and parent.info.status == "FINISHED"
    children = {int(r.data.tags["number"]): r for r in runs if r is not parent}
    assert set(children) == {t.number for t in study.trials} == {0, 1, 2, 3}
    assert {r.data.tags["mlflow.parentRunId"] for r in children.values()} == {parent.info.run_id}
    states = {n: r.data.tags["state"] for n, r in children.items()}
    assert states == {t.number: t.state.name for t in study.trials}
    assert sorted(states.values()) == ["COMPLETE", "COMPLETE", "FAIL", "PRUNED"]
    best = study.best_trial
    assert parent.data.metrics["best_value"] == pytest.approx(best.value)
    assert parent.data.tags["best_trial"] == str(best.number)


def test_a_trial_run_holds_its_training_and_its_value(sweep):
    from mlflow import MlflowClient

    study, uri = sweep
    client = MlflowClient(uri)
    for trial in study.trials:
        if trial.state.name == "FAIL":
            continue
        run_dir = trial.user_attrs["run_dir"]
        run_id = json.loads(open(f"{run_dir}/mlflow.json").read())["run_id"]
        run = client.get_run(run_id)
        assert run.data.params["lr"] == str(trial.params["lr"])
        assert run.data.params["model"] == trial.params["model"]
        history = client.get_metric_history(run_id, "val/accuracy")
        evals = [r for r in read_metrics(run_dir) if r["kind"] == "eval"]
        assert sorted((m.step, m.value) for m in history) == [
            (r["iteration"], r["val_accuracy"]) for r in evals
        ]
        if trial.state.name == "COMPLETE":
            assert run.data.metrics["value"] == pytest.approx(trial.value)
        else:  # pruned: stopped by the trainer before its 60 iterations
            assert max(m.step for m in history) < 60
        assert "test/accuracy" not in run.data.metrics  # a sweep never sees the test split


def test_a_trial_that_never_trained_still_shows_as_failed(sweep):
    from mlflow import MlflowClient

    study, uri = sweep
    client = MlflowClient(uri)
    (failed,) = [t for t in study.trials if t.state.name == "FAIL"]
    runs = client.search_runs(
        [client.get_experiment_by_name("mlplab").experiment_id],
        filter_string=f"tags.number = '{failed.number}'",
    )
    (run,) = runs
    assert run.info.status == "FAILED"
    assert run.data.params["model"] == "784-32-5:relu"
    assert "output size must be 10" in run.data.tags["error"]
