"""One short run on real MNIST, logged to TensorBoard and to a local MLflow store, read back
with each tool's own reader: TensorBoard's EventAccumulator, and mlflow.MlflowClient."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
import torch
from tracking_helpers import raw_events, read_tb, scalar_series

from conftest import head
from mlplab.config import TrainConfig
from mlplab.io.rundir import read_metrics
from mlplab.io.states import newest_state
from mlplab.runner import run
from mlplab.tracking.scalars import hparam_values
from mlplab.tracking.tensorboard_log import first_layer_image


@pytest.fixture(scope="module")
def logged(mnist, tmp_path_factory):
    """(run_dir, result, config, the MLflow store's URI)."""
    root = tmp_path_factory.mktemp("logged")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    config = TrainConfig(
        model="784-64-32-10:relu",
        iterations=40,
        eval_every=20,
        batch_size=64,
        val_size=1000,
        out=str(root / "runs"),
        log=("tensorboard", f"mlflow={uri}"),
    )
    run_dir, result = run(config, head(mnist, 6000))
    return run_dir, result, config, uri


def evals(run_dir) -> list[dict]:
    return [r for r in read_metrics(run_dir) if r["kind"] == "eval"]


# --- TensorBoard -------------------------------------------------------------------------


def test_scalars_are_the_metrics_log_by_iteration(logged):
    run_dir, result, _, _ = logged
    ea = read_tb(run_dir / "tb")
    assert [s for s, _ in scalar_series(ea, "train/loss")] == [10, 20, 30, 40]
    assert [s for s, _ in scalar_series(ea, "lr")] == [10, 20, 30, 40]
    for split in ("val", "test"):
        for what in ("loss", "accuracy"):
            series = scalar_series(ea, f"{split}/{what}")
            expected = [(r["iteration"], r[f"{split}_{what}"]) for r in evals(run_dir)]
            assert [s for s, _ in series] == [s for s, _ in expected] == [20, 40]
            assert [v for _, v in series] == pytest.approx([v for _, v in expected], rel=1e-6)
    # the training loss points are real losses of those steps: near the evaluations' means
    loss_40 = dict(scalar_series(ea, "train/loss"))[40]
    assert 0.05 < loss_40 < 1.5
    assert dict(scalar_series(ea, "final/test_accuracy"))[40] == pytest.approx(
        result.test.accuracy, rel=1e-6
    )


def test_histograms_are_every_layers_weights_and_gradients(logged):
    run_dir, _, _, _ = logged
    ea = read_tb(run_dir / "tb")
    for i, fan in enumerate([(64, 784), (32, 64), (10, 32)], 1):
        for kind in ("weights", "gradients"):
            assert [e.step for e in ea.Histograms(f"{kind}/fc{i}")] == [20, 40]
        last = ea.Histograms(f"weights/fc{i}")[-1].histogram_value
        assert last.num == fan[0] * fan[1]
        live = live_weights(run_dir, fan)
        assert (last.min, last.max) == pytest.approx((float(live.min()), float(live.max())))
        grad = ea.Histograms(f"gradients/fc{i}")[-1].histogram_value
        assert grad.num == fan[0] * fan[1] and grad.max > grad.min


def test_images_are_the_first_layer_and_the_confusion_matrix(logged):
    from PIL import Image

    run_dir, _, _, _ = logged
    ea = read_tb(run_dir / "tb")
    tiles = ea.Images("images/fc1_weights")
    assert [e.step for e in tiles] == [20, 40]
    assert (tiles[-1].width, tiles[-1].height) == (233, 233)  # 64 tiles of 28 in an 8x8 grid
    confusion = ea.Images("images/confusion")
    assert [e.step for e in confusion] == [20, 40]
    assert (confusion[-1].width, confusion[-1].height) == (120, 120)  # 10 classes, 12 px
    # the picture is of the live weights at step 40, which the saved state holds
    fc1 = live_weights(run_dir, (64, 784))
    expected = (first_layer_image(fc1) * 255).numpy()
    drawn = Image.open(io.BytesIO(tiles[-1].encoded_image_string))
    assert drawn.mode == "L"  # grey: one channel
    assert np.abs(np.asarray(drawn).astype(float) - expected).max() <= 0.5001
    colour = Image.open(io.BytesIO(confusion[-1].encoded_image_string))
    assert colour.mode == "RGB" and colour.size == (120, 120)


def live_weights(run_dir, shape: tuple[int, int]) -> torch.Tensor:
    """The (out, in) weight of that shape in the run's newest state (the step-40 weights;
    the saved model is the best by validation, which may be an earlier one)."""
    _, state = newest_state(run_dir / "state")
    for _, t in _tensors(state["engine"]):
        if tuple(t.shape) == shape:
            return t
        if tuple(t.shape) == shape[::-1]:
            return t.T
    raise AssertionError(f"no {shape} tensor in the state")


def _tensors(tree, prefix=""):
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from _tensors(v, f"{prefix}.{k}")
    elif isinstance(tree, list | tuple):
        for i, v in enumerate(tree):
            yield from _tensors(v, f"{prefix}.{i}")


def test_the_config_is_logged_as_hparams_with_the_final_metrics(logged):
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    run_dir, result, config, _ = logged
    ea = read_tb(run_dir / "tb")
    content = ea.PluginTagToContent("hparams")
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["lr"].number_value == pytest.approx(config.lr)
    assert hparams["model"].string_value == config.model
    assert hparams["val_size"].number_value == 1000
    experiment = HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metrics = {m.name.tag for m in experiment.metric_infos}
    assert metrics == {
        "final/test_accuracy",
        "final/test_loss",
        "final/val_accuracy",
        "final/val_loss",
    }
    assert dict(scalar_series(ea, "final/val_accuracy"))[40] == pytest.approx(result.val.accuracy)


def test_no_event_is_written_twice(logged):
    run_dir, _, _, _ = logged
    seen = [(v.tag, e.step) for e in raw_events(run_dir / "tb") for v in e.summary.value]
    assert len(seen) == len(set(seen))


# --- MLflow, local store -----------------------------------------------------------------


def test_mlflow_run_has_params_metrics_tags_and_files(logged, tmp_path):
    from mlflow import MlflowClient

    run_dir, result, config, uri = logged
    client = MlflowClient(uri)
    run_id = json.loads((run_dir / "mlflow.json").read_text())["run_id"]
    found = client.get_run(run_id)
    assert found.info.status == "FINISHED"
    assert found.info.run_name == run_dir.name
    assert found.data.params == {k: str(v) for k, v in hparam_values(config).items()}
    tags = found.data.tags
    assert tags["mlplab.spec"] == config.model and tags["mlplab.dataset"] == "mnist"
    assert tags["mlplab.engine"] == result.engine
    for split in ("val", "test"):
        history = client.get_metric_history(run_id, f"{split}/accuracy")
        expected = [(r["iteration"], r[f"{split}_accuracy"]) for r in evals(run_dir)]
        assert sorted((m.step, m.value) for m in history) == expected
    loss = client.get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in loss) == [10, 20, 30, 40]
    assert found.data.metrics["final/test_accuracy"] == pytest.approx(result.test.accuracy)
    files = {a.path for a in client.list_artifacts(run_id)}
    assert {"model", "config.json", "metrics.jsonl"} <= files
    model = {a.path for a in client.list_artifacts(run_id, "model")}
    assert model == {"model/model.safetensors", "model/model.json"}
    got = client.download_artifacts(run_id, "model/model.safetensors", str(tmp_path))
    assert open(got, "rb").read() == (run_dir / "model.safetensors").read_bytes()


def test_the_estimator_takes_the_same_loggers(tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning

    from mlplab import MLPClassifier
    from mlplab.sklearn import fitting

    monkeypatch.chdir(tmp_path)
    before = set(threading.enumerate())
    X, y = load_digits(return_X_y=True)
    uri = f"sqlite:///{tmp_path / 'est.db'}"
    est = MLPClassifier((32,), max_iter=3, random_state=0, log=("tensorboard", f"mlflow={uri}"))
    with pytest.warns(ConvergenceWarning):  # 3 epochs
        est.fit(X / 16, y)
    folders = list((tmp_path / "tb").iterdir())
    assert len(folders) == 1 and folders[0].name.endswith("-mlpclassifier")
    ea = read_tb(folders[0])
    assert ea.Scalars("train/epoch_accuracy")
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("mlplab").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    history = client.get_metric_history(runs[0].info.run_id, "train/epoch_accuracy")
    assert len(history) == est.n_iter_ == 3
    # the fitted estimator's own file is the model artifact, and it loads without a pickle
    got = client.download_artifacts(
        runs[0].info.run_id, "model/mlpclassifier.safetensors", str(tmp_path)
    )
    assert (MLPClassifier.load(got).predict_proba(X / 16) == est.predict_proba(X / 16)).all()
    # a fit that raises after training ends its run as FAILED, not RUNNING forever
    monkeypatch.setattr(fitting, "from_model", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        MLPClassifier((8,), max_iter=1, log=(f"mlflow={uri}",)).fit(X / 16, y)
    statuses = [r.info.status for r in client.search_runs([runs[0].info.experiment_id])]
    assert sorted(statuses) == ["FAILED", "FINISHED"]
    # an ended run leaves no sender thread behind (a notebook may fit a thousand times)
    senders = [t for t in threading.enumerate() if t.name == "mlplab-mlflow" and t not in before]
    for thread in senders:
        thread.join(timeout=10)
    assert not [t for t in senders if t.is_alive()]
    with pytest.raises(ValueError, match="log: unknown target 'wandb'"):
        MLPClassifier(log=("wandb",)).fit(X, y)
