"""The lab's looks inside a Trainer (views, inside, snapshot), checked against the model itself."""

from __future__ import annotations

import base64
import copy
import json

import numpy as np
import pytest
import torch

from conftest import head
from mlplab.config import TrainConfig
from mlplab.errors import ConfigError, MlplabError
from mlplab.lab import views
from mlplab.lab.inside import STRONGEST
from mlplab.lab.live import finite
from mlplab.lab.session import LabSession
from mlplab.lab.snapshot import BINS, histogram, snapshot, to_bytes
from mlplab.nn.model import build_model
from mlplab.training.trainer import Trainer

SPEC = "784-100-32-10"
TEST = 1000


def trained(data, **kw) -> Trainer:
    base = dict(model=SPEC, batch_size=100, iterations=60, eval_every=60, device="cpu", seed=0)
    trainer = Trainer(TrainConfig(**{**base, **kw}), data)
    trainer.run()
    return trainer


@pytest.fixture(scope="module")
def data(mnist):
    return head(mnist, 3000, TEST)


@pytest.fixture(scope="module")
def trainer(data) -> Trainer:
    """A relu net after 60 steps of the fast engine (85.5% on these test images, measured)."""
    trainer = trained(data, normalization="dataset")
    assert trainer.state.latest["test"]["accuracy"] > 75.0
    return trainer


@pytest.fixture(scope="module")
def predicted(trainer, data) -> torch.Tensor:
    """The model's own predictions for the test images, computed here."""
    model = copy.deepcopy(trainer.eval_module()).eval()
    with torch.no_grad():
        return model(trainer.norm.apply(data.test.x)).argmax(1)


def decode(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


# --- confusion ------------------------------------------------------------------------------


def test_confusion_cell_matches_the_models_own_predictions(trainer, data, predicted):
    y = data.test.y
    expected = torch.bincount(y * 10 + predicted, minlength=100).reshape(10, 10)
    off = expected.clone().fill_diagonal_(-1)
    t, p = divmod(int(off.argmax()), 10)  # the most common mistake
    assert t != p and int(expected[t, p]) > 1
    answer = views.confusion_cell(trainer, t, p, 60)
    assert answer["matrix"] == expected.tolist()
    assert sum(map(sum, answer["matrix"])) == TEST
    assert (answer["true"], answer["pred"]) == (t, p)
    assert answer["iteration"] == 60
    assert answer["count"] == int(expected[t, p])
    cell = torch.nonzero((y == t) & (predicted == p)).reshape(-1).tolist()
    assert answer["indices"] == cell[:60]
    for i in answer["indices"]:
        assert int(y[i]) == t and int(predicted[i]) == p
    assert len(answer["images"]) == len(answer["indices"])
    for i, text in zip(answer["indices"], answer["images"], strict=True):
        raw = decode(text)
        assert len(raw) == 784
        assert raw == data.test.x[i].numpy().tobytes()
        assert decode(views.test_image(trainer, i)["image"]) == raw


def test_confusion_cell_lists_at_most_limit_images(trainer, data, predicted):
    count = int(((data.test.y == 1) & (predicted == 1)).sum())
    assert count > 5
    answer = views.confusion_cell(trainer, 1, 1, 5)
    assert answer["count"] == count
    assert len(answer["indices"]) == len(answer["images"]) == 5
    for limit in (0, -3):
        answer = views.confusion_cell(trainer, 1, 1, limit)
        assert (answer["count"], answer["indices"], answer["images"]) == (count, [], [])


@pytest.mark.parametrize("name,cell", [("true", (10, 0)), ("true", (-1, 0)), ("pred", (0, 10))])
def test_confusion_cell_refuses_a_class_out_of_range(trainer, name, cell):
    with pytest.raises(MlplabError, match=rf"^{name}: must be a class from 0 to 9, got "):
        views.confusion_cell(trainer, *cell, 10)


# --- one unit -------------------------------------------------------------------------------


def test_a_first_layer_unit_is_its_row_of_weights_and_its_tile(trainer):
    fc1 = trainer.eval_module().fc1
    answer = views.unit(trainer, 1, 0)
    assert answer["layer"] == "fc1" and answer["unit"] == 0
    assert answer["weights"] == fc1.weight[0].tolist()
    assert answer["bias"] == float(fc1.bias[0].detach())
    assert answer["tile"] == list(to_bytes(fc1.weight[0]))
    assert len(answer["tile"]) == 784 and answer["tile"] != [128] * 784
    assert views.unit(trainer, 1, 99)["weights"] == fc1.weight[99].tolist()


def test_a_later_unit_lists_its_strongest_inputs(trainer):
    fc2 = trainer.eval_module().fc2
    answer = views.unit(trainer, 2, 5)
    w = fc2.weight[5].tolist()
    assert answer["weights"] == w and answer["tile"] is None
    strongest = answer["strongest"]
    assert len(strongest) == STRONGEST
    assert all(value == w[i] for i, value in strongest)
    sizes = [abs(value) for _, value in strongest]
    assert sizes == sorted(sizes, reverse=True)
    others = [abs(v) for i, v in enumerate(w) if i not in {j for j, _ in strongest}]
    assert min(sizes) >= max(others)


@pytest.mark.parametrize(
    "layer,index,message",
    [
        (0, 0, r"^layer: must be 1 to 3, got 0$"),
        (4, 0, r"^layer: must be 1 to 3, got 4$"),
        (1, 100, r"^unit: fc1 has units 0 to 99, got 100$"),
        (3, -1, r"^unit: fc3 has units 0 to 9, got -1$"),
    ],
)
def test_a_unit_out_of_range_is_refused(trainer, layer, index, message):
    with pytest.raises(MlplabError, match=message) as caught:
        views.unit(trainer, layer, index)
    assert views.field_of(caught.value) == message[1:].split(":")[0]


# --- inspect --------------------------------------------------------------------------------


def own_forward(model, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each linear layer's z and its activation, by the module's own layers, in eval mode."""
    model = copy.deepcopy(model).eval()
    linears = model.linears()
    out, h = [], x
    with torch.no_grad():
        for i, fc in enumerate(linears, start=1):
            z = fc(h)
            if i == len(linears):
                out.append((z, torch.softmax(z.double(), 1)))
                break
            u = getattr(model, f"bn{i}")(z) if hasattr(model, f"bn{i}") else z
            h = getattr(model, f"act{i}")(u)
            out.append((z, h))
    return out


@pytest.mark.parametrize("index", [0, 7, 999])
def test_inspect_gives_each_layers_z_and_activation(trainer, data, index):
    answer = views.inspect(trainer, {"test_index": index})
    model = trainer.eval_module()
    x = trainer.norm.apply(data.test.x[index : index + 1])
    layers = answer["layers"]
    assert [(s["name"], s["units"], s["activation"]) for s in layers] == [
        ("fc1", 100, "relu"),
        ("fc2", 32, "relu"),
        ("fc3", 10, "softmax"),
    ]
    for strip, (z, a) in zip(layers, own_forward(model, x), strict=True):
        assert len(strip["z"]) == len(strip["a"]) == strip["units"]
        assert np.allclose(strip["z"], z[0].numpy(), rtol=0, atol=1e-5)
        assert np.allclose(strip["a"], a[0].numpy(), rtol=0, atol=1e-5)
    with torch.no_grad():
        logits = copy.deepcopy(model).eval()(x)[0].double()
    probs = np.array(answer["probs"])
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(probs, torch.softmax(logits, 0).numpy(), rtol=0, atol=1e-6)
    assert answer["prediction"] == int(logits.argmax())
    assert answer["label"] == int(data.test.y[index])
    assert answer["iteration"] == 60
    assert len(answer["input"]) == 784
    pixels = data.test.x[index].reshape(-1).float().numpy() / 255
    assert np.allclose(answer["input"], pixels, rtol=0, atol=5e-5)
    assert answer["classes"] == list(data.classes)


def test_inspect_of_pixels_matches_inspect_of_the_test_image(trainer, data):
    pixels = (data.test.x[3].float() / 255).reshape(-1).tolist()
    drawn = views.inspect(trainer, views.input_of({"pixels": pixels}))
    indexed = views.inspect(trainer, views.input_of({"test_index": 3}))
    assert drawn["label"] is None and indexed["label"] == int(data.test.y[3])
    for a, b in zip(drawn["layers"], indexed["layers"], strict=True):
        assert np.allclose(a["z"], b["z"], rtol=0, atol=1e-5)


def test_inspect_with_batch_norm_and_dropout_uses_eval_mode(mnist):
    small = head(mnist, 600, 50)
    trainer = trained(small, model="784-32-16-10:tanh,bn,dropout=0.3", iterations=12)
    model = trainer.eval_module()
    mode = model.training
    x = trainer.norm.apply(small.test.x[5:6])
    answer = views.inspect(trainer, {"test_index": 5})
    assert model.training == mode  # put back as it was
    assert [s["activation"] for s in answer["layers"]] == ["tanh", "tanh", "softmax"]
    for strip, (z, a) in zip(answer["layers"], own_forward(model, x), strict=True):
        assert np.allclose(strip["z"], z[0].numpy(), rtol=0, atol=1e-5)
        assert np.allclose(strip["a"], a[0].numpy(), rtol=0, atol=1e-5)
    assert views.inspect(trainer, {"test_index": 5}) == answer  # no dropout masks


@pytest.mark.parametrize("index", [TEST, -1])
def test_inspect_refuses_a_test_index_out_of_range(trainer, index):
    with pytest.raises(MlplabError, match=rf"^test_index: must be 0 to {TEST - 1}, got {index}$"):
        views.inspect(trainer, {"test_index": index})


# --- config and fields ----------------------------------------------------------------------


@pytest.mark.parametrize("name,value", [("out", "elsewhere"), ("threads", 2), ("data_dir", "/")])
def test_config_of_refuses_the_labs_own_fields(tmp_path, name, value):
    session = LabSession(out=str(tmp_path))
    with pytest.raises(ConfigError, match=rf"^{name}: set by the lab's command line") as caught:
        views.config_of(session, {name: value, "lr": 0.01})
    assert views.field_of(caught.value) == name


def test_config_of_builds_the_default_job_under_the_fields(tmp_path):
    session = LabSession(out=str(tmp_path))
    config = views.config_of(session, {"lr": 0.01, "model": "784-32-10", "schedule": "cosine"})
    assert (config.lr, config.model, config.schedule) == (0.01, "784-32-10", "cosine")
    assert config.out == str(tmp_path)
    assert list(tmp_path.iterdir()) == []  # building a config makes no run
    with pytest.raises(ConfigError) as caught:
        views.config_of(session, {"lr": -1})
    assert views.field_of(caught.value) == "lr"


@pytest.mark.parametrize(
    "error,field",
    [
        (ConfigError("lr: must be positive", field="lr"), "lr"),
        (ConfigError("test_index: must be 0 to 9, got 10", field="test_index"), "test_index"),
        (ConfigError("nonsense: a name that is no field", field="nonsense"), None),
        (ConfigError("lr: a message that names a field it does not carry"), None),
        (MlplabError("lr: not a ConfigError"), None),
    ],
)
def test_field_of_is_the_field_an_error_carries(error, field):
    assert views.field_of(error) == field


@pytest.mark.parametrize(
    "values",
    [{"lr": -1}, {"batch_size": 0}, {"model": "784-x-10"}, {"optimizer": "rmsprop"}],
)
def test_a_bad_config_field_is_carried_by_the_error_not_parsed_from_it(values):
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**values)
    (name,) = values
    assert caught.value.field == name and str(caught.value).startswith(f"{name}: ")


# --- snapshot -------------------------------------------------------------------------------


def test_snapshot_of_a_trained_relu_net(trainer, data):
    model = trainer.eval_module()
    grads = trainer.last_grads()
    probe = trainer.norm.apply(data.test.x[:256])
    shot = snapshot(model, grads, probe)
    linears = model.linears()
    assert [layer["name"] for layer in shot["layers"]] == ["fc1", "fc2", "fc3"]
    assert [layer["shape"] for layer in shot["layers"]] == [[100, 784], [32, 100], [10, 32]]
    for layer, fc, grad in zip(shot["layers"], linears, grads, strict=True):
        assert layer["weight_norm"] == pytest.approx(float(fc.weight.detach().norm()), rel=1e-6)
        assert layer["grad_norm"] == pytest.approx(float(grad.norm()), rel=1e-6)
        assert layer["grad_norm"] > 0
        for hist, numel in ((layer["weights"], fc.weight.numel()), (layer["grads"], grad.numel())):
            assert len(hist["counts"]) == BINS
            assert sum(hist["counts"]) == numel
        assert layer["weights"]["max"] == pytest.approx(float(fc.weight.detach().abs().max()))
    deads = [layer["dead"] for layer in shot["layers"]]
    assert all(0.0 <= d <= 1.0 for d in deads[:2]) and deads[2] is None
    assert shot["tiles"]["count"] == 64
    assert decode(shot["tiles"]["data"]) == to_bytes(linears[0].weight[:64])
    json.dumps(shot, allow_nan=False)


def test_snapshot_counts_units_that_are_dead_for_every_probe_image(trainer, data):
    model = copy.deepcopy(trainer.eval_module())
    with torch.no_grad():
        model.fc1.bias[:10] = -1e4  # no input lifts these ten above zero
    probe = trainer.norm.apply(data.test.x[:256])
    shot = snapshot(model, [None] * 3, probe)
    with torch.no_grad():
        h1 = torch.relu(model.fc1(probe))
        h2 = torch.relu(model.fc2(h1))
    expected = [float((h <= 0).all(0).float().mean()) for h in (h1, h2)]
    assert [layer["dead"] for layer in shot["layers"][:2]] == pytest.approx(expected, abs=1e-9)
    assert shot["layers"][0]["dead"] >= 0.1
    assert all(layer["grad_norm"] is None and layer["grads"] is None for layer in shot["layers"])


@pytest.mark.parametrize(
    "spec,tiles", [("784-32-10:tanh", 32), ("784-64-10:leaky_relu,bn", 64), ("100-20-10", 0)]
)
def test_snapshot_of_other_nets(spec, tiles):
    model = build_model(spec)
    probe = torch.randn(16, model.spec.sizes[0])
    shot = snapshot(model, [None] * len(model.linears()), probe)
    relu = model.spec.activation == "relu"
    assert [layer["dead"] is None for layer in shot["layers"]] == (
        [False, True] if relu else [True, True]
    )
    for layer, fc in zip(shot["layers"], model.linears(), strict=True):
        assert sum(layer["weights"]["counts"]) == fc.weight.numel()
    assert shot["tiles"]["count"] == tiles
    assert len(decode(shot["tiles"]["data"])) == tiles * 784


def test_histogram_of_zeros_and_of_nothing():
    zeros = {"max": 0.0, "counts": [5] + [0] * (BINS - 1), "nonfinite": 0}
    assert histogram(torch.zeros(5)) == zeros
    assert histogram(None) is None
    hist = histogram(torch.tensor([-2.0, -1.0, 0.5, 2.0]), bins=4)
    assert hist == {"max": 2.0, "counts": [1, 1, 1, 1], "nonfinite": 0}
    hist = histogram(torch.tensor([float("nan"), -1.0, float("inf"), 1.0]), bins=2)
    assert hist == {"max": 1.0, "counts": [1, 1], "nonfinite": 2}


@pytest.fixture(scope="module")
def diverged(mnist) -> Trainer:
    """A run whose lr is far too high: plain SGD at 1e6 on a linear-activation net."""
    trainer = trained(
        head(mnist, 600, 50),
        model="784-32-10:identity",
        optimizer="sgd",
        lr=1e6,
        schedule="constant",
        iterations=30,
        eval_every=10,
    )
    return trainer


def test_a_diverged_run_has_nan_weights(diverged):
    # what the lab must be able to show: the learner set the lr too high
    assert not torch.isfinite(diverged.eval_module().fc1.weight).all()


def test_snapshot_of_a_diverged_run(diverged, mnist):
    model = diverged.eval_module()
    probe = diverged.norm.apply(mnist.test.x[:64])
    shot = snapshot(model, diverged.last_grads(), probe)
    json.dumps(finite(shot), allow_nan=False)
    first = shot["layers"][0]["weights"]
    assert first["nonfinite"] > 0  # the diverged weights are counted, apart from the bins
    assert sum(first["counts"]) + first["nonfinite"] == 784 * 32
