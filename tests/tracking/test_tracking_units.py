"""The pieces of tracking on their own: `log` targets and their errors, the event-file trim
that a resume does, the pictures, the MLflow sender's bounds, and a missing extra."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings
from types import SimpleNamespace

import pytest
import torch
from tracking_helpers import raw_events, read_tb

from mlplab.config import TrainConfig
from mlplab.config.targets import LogTarget, parse_logs, redact
from mlplab.errors import ConfigError, MlplabError, MlplabWarning
from mlplab.tracking.mlflow_log import Sender
from mlplab.tracking.scalars import StepLoss
from mlplab.tracking.tensorboard_log import (
    TensorBoardLog,
    add_histogram,
    confusion_image,
    first_layer_image,
    trim_events,
)
from mlplab.training.state import TrainState


def test_targets_parse_with_their_defaults():
    assert parse_logs(["tensorboard", "mlflow=http://h:5000"]) == (
        LogTarget("tensorboard"),
        LogTarget("mlflow", "http://h:5000"),
    )
    assert str(LogTarget("tensorboard", "logs")) == "tensorboard=logs"


@pytest.mark.parametrize(
    "log, message",
    [
        (["wandb"], "log: unknown target 'wandb'; use tensorboard[=DIR] or mlflow[=TRACKING_URI]"),
        (["tensorboard", "tensorboard=x"], "log: tensorboard is given 2 times; give it once"),
        (["mlflow="], "log: mlflow= needs a URI"),
        ("tensorboard", "log: must be a list of strings, got 'tensorboard'"),
        ([3], "log: must be a list of strings, got (3,)"),
    ],
)
def test_bad_targets_name_the_field(log, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig(log=log)
    assert str(e.value) == message


def test_a_password_is_hidden():
    assert redact("http://alice:s3cret@host:5000/x") == "http://alice:***@host:5000/x"
    assert redact("http://host:5000") == "http://host:5000"


def test_log_comes_from_a_toml_file_and_is_saved_as_a_list(tmp_path):
    from mlplab.config import read_toml

    path = tmp_path / "c.toml"
    path.write_text('log = ["tensorboard", "mlflow=sqlite:///m.db"]\n')
    config = TrainConfig.from_dict(read_toml(path), str(path))
    assert config.log == ("tensorboard", "mlflow=sqlite:///m.db")
    assert config.to_dict()["log"] == ["tensorboard", "mlflow=sqlite:///m.db"]
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_an_unwritable_tensorboard_folder_names_the_path(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the folder would go")
    with pytest.raises(MlplabError, match=f"^{blocker / 'run'}: cannot write TensorBoard logs: "):
        TensorBoardLog(blocker / "run", TrainConfig())


def test_the_trim_keeps_steps_up_to_the_state_and_drops_the_end(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from mlplab.tracking.tensorboard_log import write_hparams

    writer = SummaryWriter(str(tmp_path))
    for step in range(1, 11):
        writer.add_scalar("train/loss", 1.0 / step, step)
    write_hparams(writer, {"lr": 0.1}, {"final/test_accuracy": 90.0}, 10)
    writer.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    with open(path, "ab") as f:
        f.write(b"\x17\x00\x00")  # a record torn by a kill
    trim_events(tmp_path, 10)  # the end goes even at its own step
    tags = [(v.tag, e.step) for e in raw_events(tmp_path) for v in e.summary.value]
    assert tags == [("train/loss", s) for s in range(1, 11)]
    trim_events(tmp_path, 6)
    steps = [e.step for e in raw_events(tmp_path) if e.summary.value]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # rewritten in place, no temp


def test_a_diverged_tensors_histogram_bins_its_finite_values(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    add_histogram(writer, "plain", torch.tensor([1.0, 2.0, 4.0]), 1)
    add_histogram(writer, "diverged", torch.tensor([1.0, float("nan"), 3.0, -float("inf")]), 1)
    add_histogram(writer, "all_nan", torch.full((5,), float("nan")), 1)
    writer.close()
    ea = read_tb(tmp_path)
    plain = ea.Histograms("plain")[0].histogram_value
    assert (plain.min, plain.max, plain.num, plain.sum, plain.sum_squares) == (1, 4, 3, 7, 21)
    assert sum(plain.bucket) == 3
    diverged = ea.Histograms("diverged")[0].histogram_value
    assert (diverged.min, diverged.max, diverged.num, diverged.sum) == (1, 3, 2, 4)
    assert "all_nan" not in ea.Tags()["histograms"]


def test_the_first_layer_image_is_a_grid_of_unit_tiles():
    w = torch.randn(100, 784)
    image = first_layer_image(w)
    assert image.shape == (233, 233)  # 64 tiles of 28 px with 1 px lines
    tile = image[1:29, 1:29]
    expected = 0.5 + 0.5 * w[0].reshape(28, 28) / w[0].abs().max()
    torch.testing.assert_close(tile, expected)
    assert first_layer_image(torch.randn(7, 20)).shape == (7, 20)  # tabular: the matrix


def test_the_confusion_image_shades_each_row_as_shares():
    image = confusion_image([[9, 1], [0, 10]], cell=2)
    assert image.shape == (3, 4, 4)
    assert image[:, 0, 0].tolist() == pytest.approx([1 - 0.9, 1 - 0.9, 1.0])  # 90% right: blue
    assert image[:, 2, 0].tolist() == [1.0, 1.0, 1.0]  # no mistakes: white
    red = 1 - 0.1**0.5
    assert image[:, 0, 2].tolist() == pytest.approx([1.0, red, red])  # 10% wrong: red


class CountedTotal:
    """A loss total that counts its reads (a host sync each, on a GPU)."""

    def __init__(self, value: float, reads: list[int]):
        self.value, self.reads = value, reads

    def __float__(self) -> float:
        self.reads[0] += 1
        return self.value


def test_two_trackers_share_the_step_losss_reads():
    reads = [0]
    loss = StepLoss()
    s = SimpleNamespace(iteration=0, loss_total=CountedTotal(0.0, reads), seen=0, lr=0.1)
    s.mark = lambda accuracy=True: TrainState.mark(s, accuracy)  # the state's own marks
    loss.begin(s)
    logged = []
    for it in range(1, 31):
        s.iteration, s.loss_total, s.seen = it, CountedTotal(2.0 * it, reads), 64 * it
        first, second = loss.after_step(s), loss.after_step(s)  # TensorBoard's, MLflow's
        assert first == second
        if first:
            logged.append((it, first["train/loss"], first["lr"]))
    assert logged == [(10, 2 / 64, 0.1), (20, 2 / 64, 0.1), (30, 2 / 64, 0.1)]
    assert reads[0] == 1 + 2 * 3  # the start, then steps 9 and 10, 19 and 20, 29 and 30


def test_the_sender_waits_a_bounded_time_and_warns_once():
    sender = Sender("http://example")
    done = []
    sender.submit(done.append, 1)
    assert sender.wait(5) and done == [1]
    release = threading.Event()
    sender.submit(release.wait)  # a call that hangs, as one to a dead server does
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not sender.wait(0.2)
        sender.submit(done.append, 2)
        assert not sender.wait(0.2)
    assert time.monotonic() - start < 1.0
    assert [str(w.message) for w in caught if w.category is MlplabWarning] == [
        "mlflow http://example: no answer in 0.2 s; training goes on, and the rest of this "
        "run is not sent to MLflow (the run directory has all of it)"
    ]
    release.set()
    time.sleep(0.1)
    assert done == [1]  # nothing after the failure is sent


def test_an_error_from_the_server_warns_once():
    sender = Sender("sqlite:///x")

    def fail():
        raise RuntimeError("database is locked\nmore lines")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sender.submit(fail)
        sender.submit(fail)
        assert not sender.wait(5)
    messages = [str(w.message) for w in caught if w.category is MlplabWarning]
    assert len(messages) == 1 and messages[0].startswith("mlflow sqlite:///x: database is locked;")


@pytest.mark.parametrize(
    "blocked, target", [("mlflow", "mlflow"), ("torch.utils.tensorboard", "tensorboard")]
)
def test_a_missing_extra_is_named(blocked, target, tmp_path):
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from mlplab.cli import main\n"
        f"sys.exit(main(['train', '--iterations', '1', '--log', {target!r}, '--quiet']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"mlplab: error: --log {target} needs the {target} package: pip install 'mlplab[{target}]'"
    ]
