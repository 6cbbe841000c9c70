"""models.py: layer names and shapes, exact parameter counts, spec text, init schemes."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from mlplab.errors import SpecError
from mlplab.nn.init import init_weights, parse_init
from mlplab.nn.model import MLP, build_model, count_parameters
from mlplab.nn.presets import PRESETS
from mlplab.nn.spec import ModelSpec, parse_spec

# Worked by hand as sum(in * out + out) over the Linear layers, e.g. model D:
# 784*100+100 + 100*100+100 + 100*10+10 = 78,500 + 10,100 + 1,010 = 89,610.
PRESET_PARAMS = {
    "logistic": 7_850,  # 784*10+10
    "a": 79_510,  # 78,500 + 1,010
    "b": 79_510,
    "c": 79_510,
    "d": 89_610,
    "e": 99_710,  # 89,610 + 10,100
    "tutorial-256": 203_530,  # 200,960 + 2,570
    "tutorial-128-64": 109_386,  # 100,480 + 8,256 + 650
    "quickstart-512": 669_706,  # 401,920 + 262,656 + 5,130
}

ACTIVATION_CLASSES = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}
ACTIVATION_LIST = "sigmoid, tanh, relu, gelu, leaky_relu, silu, identity"
PRESET_LIST = "logistic, a, b, c, d, e, tutorial-256, tutorial-128-64, quickstart-512"


def hand_count(sizes: tuple[int, ...], batch_norm: bool = False) -> int:
    linear = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:], strict=False))
    return linear + (2 * sum(sizes[1:-1]) if batch_norm else 0)


# --- structure ---------------------------------------------------------------------------


def test_module_names_and_linear_shapes():
    model = build_model("784-128-64-10:relu")
    assert [name for name, _ in model.named_children()] == [
        "flatten",
        "fc1",
        "act1",
        "fc2",
        "act2",
        "fc3",
    ]
    assert isinstance(model.flatten, nn.Flatten)
    shapes = [(m.in_features, m.out_features) for m in model.linears()]
    assert shapes == [(784, 128), (128, 64), (64, 10)]
    assert [tuple(m.weight.shape) for m in model.linears()] == [(128, 784), (64, 128), (10, 64)]
    assert [tuple(m.bias.shape) for m in model.linears()] == [(128,), (64,), (10,)]


def test_module_names_with_batch_norm_and_dropout():
    model = build_model("784-100-50-10:tanh,dropout=0.3,bn")
    names = [name for name, _ in model.named_children()]
    assert names == [
        "flatten",
        "fc1",
        "bn1",
        "act1",
        "drop1",
        "fc2",
        "bn2",
        "act2",
        "drop2",
        "fc3",
    ]
    assert model.bn1.num_features == 100 and model.bn2.num_features == 50
    assert isinstance(model.bn1, nn.BatchNorm1d)
    assert isinstance(model.drop1, nn.Dropout) and model.drop1.p == 0.3
    assert isinstance(model.act2, nn.Tanh)


def test_input_dropout_comes_first_and_leaves_the_parameter_names_alone():
    model = build_model("784-100-10:relu,dropout=0.5,input_dropout=0.2")
    names = [name for name, _ in model.named_children()]
    assert names == ["flatten", "drop0", "fc1", "act1", "drop1", "fc2"]
    assert isinstance(model.drop0, nn.Dropout) and model.drop0.p == 0.2
    plain = build_model("784-100-10:relu,dropout=0.5")
    assert list(model.state_dict()) == list(plain.state_dict())  # checkpoints load either way
    assert count_parameters(model) == count_parameters(plain) == 79_510
    assert parse_spec("784-100-10").input_dropout == 0.0
    # it drops pixels when training (scaled by 1/0.8), none in eval mode
    x = torch.ones(64, 784)
    torch.manual_seed(0)
    dropped = model.drop0(x)
    assert set(dropped.unique().tolist()) == {0.0, 1.25}
    assert 0.15 < float((dropped == 0).float().mean()) < 0.25
    assert torch.equal(model.eval().drop0(x), x)


def test_a_checkpoint_of_an_input_dropout_model_round_trips(tmp_path):
    from mlplab.io.checkpoint import load_checkpoint, model_info, save_checkpoint
    from mlplab.nn.normalization import make_normalization

    model = build_model("784-32-10:relu,input_dropout=0.2")
    norm = make_normalization("tutorial", torch.zeros(2, 784), None)
    info = model_info(model, "mnist", tuple("0123456789"), norm)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", model, info)).model
    assert loaded.spec == model.spec and isinstance(loaded.drop0, nn.Dropout)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)


def test_logistic_has_no_hidden_layer_extras():
    model = build_model("784-10:dropout=0.5,bn")
    assert [name for name, _ in model.named_children()] == ["flatten", "fc1"]
    assert count_parameters(model) == 7_850


def test_model_remembers_its_spec():
    spec = parse_spec("784-32-10:gelu")
    model = build_model(spec)
    assert isinstance(model, MLP)
    assert model.spec is spec
    assert build_model("784-32-10:gelu").spec == spec


# --- parameter counts ---------------------------------------------------------------------


def test_every_preset_has_a_known_count():
    assert set(PRESETS) == set(PRESET_PARAMS)


@pytest.mark.parametrize("name", PRESET_PARAMS)
def test_preset_parameter_counts(name):
    model = build_model(name)
    assert count_parameters(model) == PRESET_PARAMS[name]
    assert hand_count(model.spec.sizes) == PRESET_PARAMS[name]
    assert model.spec == parse_spec(PRESETS[name][0])


@pytest.mark.parametrize("name", ["a", "d", "e", "tutorial-128-64", "quickstart-512"])
def test_batch_norm_adds_two_params_per_hidden_unit(name):
    spec_text = PRESETS[name][0] + ",bn"
    model = build_model(spec_text)
    hidden = sum(model.spec.hidden)
    assert count_parameters(model) == PRESET_PARAMS[name] + 2 * hidden
    assert count_parameters(model) == hand_count(model.spec.sizes, batch_norm=True)


def test_dropout_adds_no_parameters():
    assert count_parameters(build_model("784-100-100-10:relu,dropout=0.5")) == 89_610


# --- activations and outputs --------------------------------------------------------------


@pytest.mark.parametrize("act", ACTIVATION_CLASSES)
def test_activation_builds_its_module(act):
    model = build_model(f"784-20-20-10:{act}")
    assert type(model.act1) is ACTIVATION_CLASSES[act]
    assert type(model.act2) is ACTIVATION_CLASSES[act]


@pytest.mark.parametrize("spec", ["logistic", "c", "784-64-32-10:sigmoid,dropout=0.2,bn"])
def test_outputs_are_logits_for_images_and_flat_inputs(spec):
    model = build_model(spec).eval()
    images = torch.rand(16, 1, 28, 28)
    with torch.inference_mode():
        from_images = model(images)
        from_flat = model(images.reshape(16, 784))
        from_unbatched_channel = model(images.reshape(16, 28, 28))
    assert from_images.shape == (16, 10)
    assert from_images.dtype == torch.float32
    torch.testing.assert_close(from_flat, from_images, rtol=0, atol=0)
    torch.testing.assert_close(from_unbatched_channel, from_images, rtol=0, atol=0)
    # Logits, not probabilities: rows do not sum to 1 and some entries are negative.
    assert not torch.allclose(from_images.sum(dim=1), torch.ones(16), atol=1e-3)
    assert (from_images < 0).any()
    assert not any(isinstance(m, nn.Softmax | nn.LogSoftmax) for m in model.modules())


def test_batch_of_one_in_eval_mode_with_batch_norm():
    model = build_model("784-32-10:relu,bn").eval()
    with torch.inference_mode():
        assert model(torch.rand(1, 784)).shape == (1, 10)


# --- spec text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "784-10",
        "784-10:sigmoid",
        "784-10:dropout=0.5",
        "784-10:bn",
        "784-100-10:sigmoid",
        "784-128-64-10:relu",
        "784-100-10:tanh,dropout=0.2",
        "784-100-10:sigmoid,dropout=0.2,bn",
        "784-300-100-10:leaky_relu,bn",
        "784-100-10:relu,dropout=0.123456789",
        "784-100-10:silu,dropout=1e-05",
        "784-10:input_dropout=0.2",
        "784-1024-1024-10:relu,dropout=0.5,input_dropout=0.2",
        "784-100-10:tanh,input_dropout=0.123456789,bn",
    ],
)
def test_spec_round_trip(text):
    spec = parse_spec(text)
    assert str(spec) == text
    assert parse_spec(str(spec)) == spec


def test_spec_parsing_fields():
    spec = parse_spec("  784-100-50-10:tanh, dropout=0.25 ,batchnorm ")
    assert spec == ModelSpec((784, 100, 50, 10), "tanh", 0.25, True)
    assert spec.hidden == (100, 50)
    assert parse_spec("784-100-10") == ModelSpec((784, 100, 10), "relu", 0.0, False)
    assert parse_spec("784-100-10:batch_norm").batch_norm
    assert parse_spec("784-100-10:relu,dropout=0").dropout == 0.0
    assert str(parse_spec("784-100-10:relu,dropout=0")) == "784-100-10:relu"


@pytest.mark.parametrize("name", PRESETS)
def test_preset_names_parse_to_their_spec(name):
    assert parse_spec(name) == parse_spec(PRESETS[name][0])
    assert str(parse_spec(name)) == PRESETS[name][0]


def _bad_sizes(text: str) -> str:
    return f"bad model spec {text!r}: expected sizes like 784-128-10 (or a preset: {PRESET_LIST})"


@pytest.mark.parametrize(
    "text, message",
    [
        ("784-abc-10", _bad_sizes("784-abc-10")),
        ("784--10", _bad_sizes("784--10")),
        ("", _bad_sizes("")),
        ("mystery", _bad_sizes("mystery")),
        ("784", _bad_sizes("784")),  # a single size
        ("784-10-", _bad_sizes("784-10-")),
        (
            "784-100-10:swish",
            "bad model spec '784-100-10:swish': unknown option 'swish'; expected an "
            f"activation ({ACTIVATION_LIST}), dropout=P, input_dropout=P or bn",
        ),
        (
            "784-100-10:relu,momentum=0.9",
            "bad model spec '784-100-10:relu,momentum=0.9': unknown option 'momentum=0.9'; "
            f"expected an activation ({ACTIVATION_LIST}), dropout=P, input_dropout=P or bn",
        ),
        (
            "784-100-10:dropout",
            "bad model spec '784-100-10:dropout': unknown option 'dropout'; "
            f"expected an activation ({ACTIVATION_LIST}), dropout=P, input_dropout=P or bn",
        ),
        (
            "784-100-10:relu,dropout=lots",
            "bad model spec '784-100-10:relu,dropout=lots': dropout='lots' is not a number",
        ),
        ("784-100-10:dropout=1", "dropout must be in [0, 1), got 1.0"),
        ("784-100-10:dropout=-0.1", "dropout must be in [0, 1), got -0.1"),
        ("784-100-10:dropout=nan", "dropout must be in [0, 1), got nan"),
        ("784-100-10:input_dropout=1", "input_dropout must be in [0, 1), got 1.0"),
        ("784-100-10:input_dropout=-0.5", "input_dropout must be in [0, 1), got -0.5"),
        (
            "784-100-10:input_dropout=most",
            "bad model spec '784-100-10:input_dropout=most': input_dropout='most' is not a number",
        ),
        (
            "784-100-10:input_dropout",
            "bad model spec '784-100-10:input_dropout': unknown option 'input_dropout'; "
            f"expected an activation ({ACTIVATION_LIST}), dropout=P, input_dropout=P or bn",
        ),
        ("784-0-10", "layer sizes must be positive, got (784, 0, 10)"),
        ("784-100-0", "layer sizes must be positive, got (784, 100, 0)"),
    ],
)
def test_spec_errors(text, message):
    with pytest.raises(SpecError, match=f"^{re.escape(message)}$"):
        parse_spec(text)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sizes": (784,)}, "a model needs at least input and output sizes, got (784,)"),
        ({"sizes": ()}, "a model needs at least input and output sizes, got ()"),
        ({"sizes": (784, -5, 10)}, "layer sizes must be positive, got (784, -5, 10)"),
        (
            {"sizes": (784, 10), "activation": "softmax"},
            f"unknown activation 'softmax'; choose one of: {ACTIVATION_LIST}",
        ),
        ({"sizes": (784, 10), "dropout": 1.5}, "dropout must be in [0, 1), got 1.5"),
    ],
)
def test_model_spec_validation(kwargs, message):
    with pytest.raises(SpecError, match=f"^{re.escape(message)}$"):
        ModelSpec(**kwargs)


def test_build_model_rejects_bad_text():
    with pytest.raises(SpecError, match="bad model spec 'nope'"):
        build_model("nope")


# --- init schemes -------------------------------------------------------------------------


def _weights(model: MLP) -> list[torch.Tensor]:
    return [m.weight.detach().double() for m in model.linears()]


def test_normal_init_std_and_zero_biases():
    model = init_weights(build_model("784-300-100-10:relu"), "normal:0.01")
    for w in _weights(model)[:2]:  # the 10-row output layer is too small to measure well
        assert w.mean().item() == pytest.approx(0.0, abs=3e-4)
        assert w.std().item() == pytest.approx(0.01, rel=0.03)
    for layer in model.linears():
        assert torch.count_nonzero(layer.bias) == 0


def test_normal_init_default_and_given_std():
    assert parse_init("normal") == ("normal", 0.01)
    assert parse_init("normal:0.5") == ("normal", 0.5)
    model = init_weights(build_model("784-200-10:relu"), "normal:0.5")
    assert model.fc1.weight.double().std().item() == pytest.approx(0.5, rel=0.02)


@pytest.mark.parametrize(
    "act, gain",
    [("sigmoid", 1.0), ("tanh", 5.0 / 3.0), ("relu", math.sqrt(2.0)), ("gelu", math.sqrt(2.0))],
)
def test_xavier_init_bound(act, gain):
    model = init_weights(build_model(f"784-300-100-10:{act}"), "xavier")
    for layer in model.linears():
        fan_out, fan_in = layer.weight.shape
        bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
        w = layer.weight.detach().double()
        assert w.abs().max().item() <= bound
        assert torch.count_nonzero(layer.bias) == 0
    w = model.fc1.weight.detach().double()
    bound = gain * math.sqrt(6.0 / (784 + 300))
    assert w.abs().max().item() > 0.99 * bound  # uniform fills the whole interval
    assert w.std().item() == pytest.approx(bound / math.sqrt(3.0), rel=0.02)


@pytest.mark.parametrize(
    "act, gain",
    [
        ("relu", math.sqrt(2.0)),
        ("sigmoid", math.sqrt(2.0)),
        ("leaky_relu", math.sqrt(2.0 / (1.0 + 0.01**2))),
    ],
)
def test_kaiming_init_std(act, gain):
    model = init_weights(build_model(f"784-400-200-10:{act}"), "kaiming")
    for layer in model.linears()[:2]:
        fan_in = layer.weight.shape[1]
        w = layer.weight.detach().double()
        assert w.std().item() == pytest.approx(gain / math.sqrt(fan_in), rel=0.03)
        assert torch.count_nonzero(layer.bias) == 0


def test_default_init_leaves_pytorch_init():
    torch.manual_seed(7)
    reference = build_model("784-100-10:relu")
    torch.manual_seed(7)
    model = build_model("784-100-10:relu")
    assert init_weights(model, "default") is model
    for got, want in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(got, want)
    # PyTorch's init: uniform in +-1/sqrt(fan_in) with non-zero biases.
    bound = 1.0 / math.sqrt(784)
    assert model.fc1.weight.abs().max().item() <= bound
    assert model.fc1.weight.abs().max().item() > 0.99 * bound
    assert torch.count_nonzero(model.fc1.bias) == 100


@pytest.mark.parametrize("init", ["normal:0.05", "xavier", "kaiming"])
def test_init_is_reproducible_with_a_generator(init):
    a = init_weights(build_model("784-50-10:relu"), init, torch.Generator().manual_seed(3))
    b = init_weights(build_model("784-50-10:relu"), init, torch.Generator().manual_seed(3))
    c = init_weights(build_model("784-50-10:relu"), init, torch.Generator().manual_seed(4))
    assert torch.equal(a.fc1.weight, b.fc1.weight)
    assert not torch.equal(a.fc1.weight, c.fc1.weight)


def test_init_does_not_touch_batch_norm():
    model = init_weights(build_model("784-50-10:relu,bn"), "normal:0.01")
    assert torch.equal(model.bn1.weight, torch.ones(50))
    assert torch.equal(model.bn1.bias, torch.zeros(50))


@pytest.mark.parametrize("text", ["default", "xavier", "kaiming", "normal", "normal:1e-3"])
def test_parse_init_accepts(text):
    scheme, std = parse_init(text)
    assert scheme == text.split(":")[0]
    assert std == (1e-3 if text == "normal:1e-3" else 0.01)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "uniform",
            "unknown init 'uniform'; choose one of: default, normal[:STD], xavier, kaiming",
        ),
        ("", "unknown init ''; choose one of: default, normal[:STD], xavier, kaiming"),
        ("xavier:2", "init 'xavier' takes no argument, got 'xavier:2'"),
        ("kaiming:0.1", "init 'kaiming' takes no argument, got 'kaiming:0.1'"),
        ("default:1", "init 'default' takes no argument, got 'default:1'"),
        ("normal:abc", "init 'normal:abc': std 'abc' is not a number"),
        ("normal:0", "init 'normal:0': std must be positive"),
        ("normal:-0.01", "init 'normal:-0.01': std must be positive"),
        ("normal:nan", "init 'normal:nan': std must be positive"),
        ("normal:inf", "init 'normal:inf': std must be positive"),
    ],
)
def test_parse_init_errors(text, message):
    with pytest.raises(SpecError, match=f"^{re.escape(message)}$"):
        parse_init(text)


def test_init_weights_rejects_bad_scheme_before_touching_weights():
    model = build_model("784-20-10:relu")
    before = model.fc1.weight.clone()
    with pytest.raises(SpecError):
        init_weights(model, "orthogonal")
    assert torch.equal(model.fc1.weight, before)
