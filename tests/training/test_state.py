"""A run's state round-trips: N steps, saved, loaded in a new process, M more steps, is
exactly (torch.equal) the run of N + M steps that never stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import safetensors.torch
import torch

from mlplab.config import TrainConfig
from mlplab.data.dataset import Dataset
from mlplab.errors import CheckpointError, ConfigError
from mlplab.io.states import load_state, save_state
from mlplab.training.trainer import Trainer

# 2,000 training images less 200 for validation: 29 steps an epoch at batch 64 (the last of
# 8), so the interruption at step 20 is mid-epoch and the rest crosses an epoch's end.
BEFORE, AFTER = 20, 25
COMMON = dict(
    batch_size=64,
    iterations=BEFORE + AFTER,
    eval_every=10,
    val_size=200,
    normalization="dataset",
    seed=3,
    device="cpu",
)
CASES = {
    "fast-adam-affine": dict(preset="c", engine="fast", optimizer="adam", augment="affine"),
    "fast-sgd-nesterov-shift": dict(
        model="784-32-16-10:tanh",
        engine="fast",
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        nesterov=True,
        augment="shift",
        schedule="onecycle",
    ),
    "autograd-adamw-dropout-affine": dict(
        model="784-64-10:relu,dropout=0.3",
        optimizer="adamw",
        weight_decay=0.01,
        augment="affine",
        schedule="cosine",
    ),
    "autograd-sgd-batchnorm-smoothing": dict(
        model="784-32-10:gelu,bn",
        optimizer="sgd",
        lr=0.1,
        momentum=0.5,
        label_smoothing=0.1,
        patience=50,
    ),
    "scratch-sgd": dict(
        model="784-32-10:sigmoid",
        engine="scratch",
        optimizer="sgd",
        lr=0.5,
        schedule="step",
        step_size=10,
    ),
}

# The data both processes rebuild: the first 2,000 training and 500 test images of MNIST.
DATA = """
from mlplab.data.dataset import Dataset, Split, load_dataset
full = load_dataset("mnist", download=False)
data = Dataset(full.name, full.classes, Split(full.train.x[:2000], full.train.y[:2000]),
               Split(full.test.x[:500], full.test.y[:500]), full.files, full.stats)
"""

CONTINUE = (
    DATA
    + """
import json, sys, torch
from mlplab.config import TrainConfig
from mlplab.training.trainer import Trainer
torch.set_num_threads(1)
torch.rand(7)  # the caller's RNG must not matter
for folder, fields in json.loads(sys.argv[1]).items():
    trainer = Trainer(TrainConfig(**fields), data)
    trainer.load_state(folder + "/before")
    assert trainer.state.iteration == BEFORE
    trainer.run()
    trainer.save_state(folder + "/after")
"""
).replace("BEFORE", str(BEFORE))


def _data() -> Dataset:
    scope: dict = {}
    exec(DATA, scope)
    return scope["data"]


def _tensors(tree, prefix="") -> dict[str, torch.Tensor]:
    """Every tensor of a state tree by its path."""
    out = {}
    if isinstance(tree, torch.Tensor):
        out[prefix] = tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out.update(_tensors(v, f"{prefix}/{i}"))
    return out


def _plain(tree):
    """The tree without its tensors (compared separately)."""
    if isinstance(tree, torch.Tensor):
        return "tensor"
    if isinstance(tree, dict):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_plain(v) for v in tree]
    return tree


def _without_seconds(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """For each case: the uninterrupted run's final state, and the state of the same run
    stopped after BEFORE steps, saved, and finished by a fresh process."""
    data = _data()
    root = tmp_path_factory.mktemp("states")
    straight, folders = {}, {}
    for name, kw in CASES.items():
        config = TrainConfig(**COMMON, **kw)
        reference = Trainer(config, data)
        reference.run()
        straight[name] = reference.state_dict()
        interrupted = Trainer(config, data)
        for _ in range(BEFORE):
            interrupted.step()
        interrupted.save_state(root / name / "before")
        folders[str(root / name)] = config.to_dict()
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CONTINUE), json.dumps(folders)],
        check=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    resumed = {name: load_state(root / name / "after") for name in CASES}
    return straight, resumed


@pytest.mark.parametrize("name", CASES)
def test_resumed_run_is_identical_to_the_uninterrupted_one(runs, name):
    straight, resumed = runs[0][name], runs[1][name]
    ours, theirs = _tensors(straight), _tensors(resumed)
    assert ours.keys() == theirs.keys()
    assert any(k.startswith("/engine/") for k in ours)  # weights and optimizer buffers
    for key in ours:
        assert torch.equal(ours[key].cpu(), theirs[key].cpu()), key
    a, b = straight["loop"], resumed["loop"]
    assert a["iteration"] == b["iteration"] == BEFORE + AFTER
    assert _without_seconds(a["records"]) == _without_seconds(b["records"])
    assert a["latest"] == b["latest"]
    assert straight["sampler"]["epoch"] == resumed["sampler"]["epoch"] == 2
    # the best-by-validation metrics and the patience count too (their weights are above)
    assert _plain(straight["callbacks"]) == _plain(resumed["callbacks"])
    assert straight["callbacks"]["best"]["iteration"] is not None


def test_the_records_span_the_interruption():
    """The interrupted run's evaluations and epoch ends fall on both sides of step 20."""
    config = TrainConfig(**COMMON, **CASES["fast-adam-affine"])
    result = Trainer(config, _data()).run()
    kinds = [(r["kind"], r["iteration"]) for r in result.history]
    assert ("eval", 10) in kinds and ("epoch", 29) in kinds and ("eval", 40) in kinds
    assert kinds[-1] == ("epoch", 45)


def test_the_state_folder_is_safetensors_plus_json(tmp_path):
    trainer = Trainer(TrainConfig(**COMMON, preset="c"), _data())
    for _ in range(3):
        trainer.step()
    folder = trainer.save_state(tmp_path / "state")
    assert sorted(p.name for p in folder.iterdir()) == ["state.json", "tensors.safetensors"]
    tensors = safetensors.torch.load_file(folder / "tensors.safetensors")
    assert "engine/weights/0" in tensors and tensors["engine/weights/0"].shape == (784, 100)
    doc = json.loads((folder / "state.json").read_text())
    assert doc["format"] == "mlplab-train-state"
    assert doc["state"]["loop"]["iteration"] == 3
    assert doc["state"]["identity"] == {
        "model": "784-100-10:relu",
        "engine": "fast",
        "dataset": "mnist",
        "val_size": 200,
        "world_size": 1,
    }
    # saving again replaces the folder; nothing is left beside it
    trainer.step()
    trainer.save_state(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    assert load_state(folder)["loop"]["iteration"] == 4


@pytest.mark.parametrize(
    "change, message",
    [
        (
            dict(preset=None, model="784-64-10:relu"),
            r"/state.json: model: the saved state has '784-100-10",
        ),
        (
            dict(engine="autograd"),
            r"/state.json: engine: the saved state has 'fast', the config 'autograd'",
        ),
        (dict(val_size=300), r"/state.json: val_size: the saved state has 200, the config 300"),
    ],
)
def test_loading_refuses_a_state_of_another_model_engine_or_split(tmp_path, change, message):
    config = TrainConfig(**COMMON, preset="c")
    trainer = Trainer(config, _data())
    trainer.step()
    trainer.save_state(tmp_path / "state")
    other = Trainer(config.replace(**change), _data())
    with pytest.raises(ConfigError, match=message):
        other.load_state(tmp_path / "state")


def test_loading_refuses_another_dataset(tmp_path):
    data = _data()
    trainer = Trainer(TrainConfig(**COMMON, preset="c"), data)
    trainer.save_state(tmp_path / "state")
    renamed = Dataset("fashion-mnist", data.classes, data.train, data.test)
    other = Trainer(TrainConfig(**COMMON, preset="c", dataset="fashion-mnist"), renamed)
    with pytest.raises(ConfigError, match="/state.json: dataset: the saved state has 'mnist'"):
        other.load_state(tmp_path / "state")


def test_a_damaged_state_is_named(tmp_path):
    folder = tmp_path / "state"
    save_state(folder, {"x": torch.zeros(3), "n": 1})
    assert load_state(folder)["n"] == 1
    (folder / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"state.json: corrupt training state"):
        load_state(folder)
    (folder / "state.json").write_text('{"format": "something else"}')
    with pytest.raises(CheckpointError, match=r"state.json: not an mlplab training state"):
        load_state(folder)
    with pytest.raises(CheckpointError, match=r"missing/state.json: cannot read the training"):
        load_state(tmp_path / "missing")
