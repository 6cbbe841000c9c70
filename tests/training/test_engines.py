"""The fast engine's hand-written passes against autograd, step for step, and engine choice."""

from __future__ import annotations

import inspect

import pytest
import torch

from conftest import head
from mlplab.config import TrainConfig
from mlplab.errors import ConfigError
from mlplab.nn.model import build_model
from mlplab.training.engines import (
    ENGINES,
    AutogradEngine,
    Engine,
    FastEngine,
    make_engine,
    resolve_engine,
)
from mlplab.training.optim import Schedule
from mlplab.training.trainer import train


def _batches(count: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        x = torch.randn(size, 784, generator=g, dtype=torch.float64)
        yield x, torch.randint(0, 10, (size,), generator=g)


def engine_pair(config: TrainConfig):
    """A fast and an autograd engine on copies of one float64 model."""
    torch.manual_seed(0)
    model = build_model(config.model_spec).double()
    twin = build_model(config.model_spec).double()
    twin.load_state_dict(model.state_dict())
    return FastEngine(config, model), AutogradEngine(config, twin)


CASES = {
    "relu-adam": dict(model="784-32-16-10:relu", optimizer="adam", lr=1e-2),
    "tanh-sgd-momentum": dict(model="784-32-10:tanh", optimizer="sgd", lr=0.1, momentum=0.9),
    "sigmoid-adamw": dict(model="784-24-24-10:sigmoid", optimizer="adamw", weight_decay=0.1),
    "relu-smoothing": dict(model="784-32-10:relu", optimizer="adam", label_smoothing=0.1),
    "relu-nll-nesterov": dict(
        model="784-32-10:relu", optimizer="sgd", momentum=0.9, nesterov=True, loss="nll"
    ),
    "logistic": dict(model="784-10", optimizer="sgd", lr=0.5, weight_decay=1e-3),
}


@pytest.mark.parametrize("kw", CASES.values(), ids=CASES.keys())
def test_fast_engine_matches_autograd_step_for_step(kw):
    config = TrainConfig(batch_size=16, schedule="onecycle", **kw)
    fast, reference = engine_pair(config)
    schedule = Schedule(config.schedule, config.lr, 6)
    # the last batch is short, as an epoch's last batch is
    for i, (x, y) in enumerate(_batches(6, 16)):
        if i == 5:
            x, y = x[:5], y[:5]
        loss_a, logits_a = fast.step(x, y, schedule(i))
        loss_b, logits_b = reference.step(x, y, schedule(i))
        torch.testing.assert_close(loss_a, loss_b, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(logits_a, logits_b, rtol=1e-12, atol=1e-12)
    ours, theirs = fast.module().state_dict(), reference.module().state_dict()
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-10, atol=1e-12)


def test_fast_engine_module_is_refreshed_at_every_request():
    config = TrainConfig(model="784-16-10:relu", batch_size=8, optimizer="sgd", lr=0.5)
    fast, _ = engine_pair(config)
    before = {k: v.clone() for k, v in fast.module().state_dict().items()}
    x, y = next(_batches(1, 8))
    fast.step(x, y, 0.5)
    after = fast.module().state_dict()
    assert not torch.equal(before["fc1.weight"], after["fc1.weight"])
    torch.testing.assert_close(after["fc1.weight"], fast.weights[0].t())


@pytest.mark.parametrize(
    "kw, engine",
    [
        (dict(preset="quickstart-512"), "fast"),
        (dict(preset="a"), "fast"),
        (dict(preset="logistic"), "fast"),
        (dict(model="784-32-10:gelu"), "autograd"),
        (dict(model="784-32-10:relu,dropout=0.2"), "autograd"),
        (dict(model="784-32-10:relu,bn"), "autograd"),
        (dict(preset="c", engine="autograd"), "autograd"),
        (dict(preset="c", engine="scratch", optimizer="sgd"), "scratch"),
    ],
)
def test_auto_picks_fast_only_for_plain_mlps(kw, engine):
    config = TrainConfig(**kw)
    assert resolve_engine(config) == engine
    model = build_model(config.model_spec)
    assert type(make_engine(config, model)).__name__.lower().startswith(engine)


@pytest.mark.parametrize(
    "model, message",
    [
        ("784-32-10:gelu", r"^engine: fast supports relu, tanh, sigmoid, got gelu"),
        ("784-32-10:relu,dropout=0.1", r"^engine: fast supports neither dropout nor batch norm"),
    ],
)
def test_fast_engine_rejects_what_it_cannot_train(model, message):
    config = TrainConfig(model=model, engine="fast")  # valid as a config; not for this engine
    with pytest.raises(ConfigError, match=message):
        resolve_engine(config)


def test_fast_and_autograd_train_to_the_same_model(mnist):
    """Same seed, same batches: float32 rounding apart, the same run."""
    data = head(mnist, 3000)
    config = TrainConfig(preset="c", batch_size=100, epochs=2, normalization="dataset")
    fast = train(config.replace(engine="fast"), data, "cpu")
    reference = train(config.replace(engine="autograd"), data, "cpu")
    assert fast.test.accuracy > 88.0
    assert abs(fast.test.accuracy - reference.test.accuracy) <= 0.1
    for a, b in zip(fast.history, reference.history, strict=True):
        assert a["iteration"] == b["iteration"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)


def test_the_result_names_the_engine_that_trained(mnist):
    data = head(mnist, 256)
    config = TrainConfig(preset="c", batch_size=128, iterations=2)
    assert train(config, data, "cpu").engine == "fast"
    assert train(config.replace(engine="autograd"), data, "cpu").engine == "autograd"
    gelu = config.replace(preset=None, model="784-32-10:gelu")
    assert train(gelu, data, "cpu").engine == "autograd"


# --- the Engine protocol ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_engine_has_each_member_of_the_protocol_with_its_parameters(name):
    config = TrainConfig(model="784-16-10:relu", optimizer="sgd", engine=name)
    engine = make_engine(config, build_model(config.model_spec))  # attributes set in __init__
    names = [n for n in vars(Engine) if not n.startswith("_")] + ["name"]
    assert len(names) == 16
    assert [n for n in names if inspect.getattr_static(engine, n, None) is None] == []
    for member in names:
        ours = inspect.getattr_static(Engine, member, None)
        if callable(ours) and not isinstance(ours, property):
            wanted = inspect.signature(getattr(Engine, member)).parameters
            got = inspect.signature(getattr(type(engine), member)).parameters
            assert list(got) == list(wanted), (name, member)


@pytest.mark.parametrize("name", list(ENGINES))
def test_each_engine_answers_for_its_own_gradients(name):
    config = TrainConfig(model="784-16-10:relu", optimizer="sgd", batch_size=8, engine=name)
    engine = make_engine(config, build_model(config.model_spec))
    assert engine.linear_grads() == [None, None] or name == "fast"
    x, y = torch.randn(8, 784), torch.arange(8)
    engine.forward_backward(x, y)
    grads = engine.linear_grads()
    assert [g is not None for g in grads] == [True, True]
    reference = build_model(config.model_spec)
    reference.load_state_dict(engine.module().state_dict())
    torch.nn.functional.cross_entropy(reference(x), y).backward()
    for g, layer in zip(grads, reference.linears(), strict=True):
        g = g if g.shape == layer.weight.shape else g.t()  # fast keeps (in, out)
        torch.testing.assert_close(g, layer.weight.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda e: e.constrain(1.0), r"^max_norm: the scratch engine has no max-norm; use engine"),
        (lambda e: e.averaged(), r"^ema: the scratch engine has no weight average"),
        (lambda e: e.module_from([]), r"^ema: the scratch engine has no weight average"),
        (lambda e: e.load_optimizer_state({"m": 1}), r"^optimizer: the scratch engine has no"),
    ],
)
def test_what_scratch_lacks_is_a_one_line_error(call, message):
    config = TrainConfig(model="784-16-10:relu", optimizer="sgd", engine="scratch")
    engine = make_engine(config, build_model(config.model_spec))
    with pytest.raises(ConfigError, match=message) as caught:
        call(engine)
    assert "\n" not in str(caught.value) and caught.value.field in ("max_norm", "ema", "optimizer")
    assert engine.flat_grads() is None and engine.optimizer_state() == {}
