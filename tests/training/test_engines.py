"""The fast engine's hand-written passes against autograd, step for step, and engine choice."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from conftest import head
from mlplab.config import TrainConfig
from mlplab.data.dataset import Dataset
from mlplab.errors import ConfigError, DataError
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
from mlplab.training.trainer import Trainer, check_weights, train


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


# --- per-row loss weights ---------------------------------------------------------------------


def _weights(n: int, seed: int = 1) -> torch.Tensor:
    """Integer weights 0..3 as float64, some of them 0."""
    return torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(seed)).double()


WEIGHTED = ("relu-adam", "relu-smoothing", "relu-nll-nesterov", "logistic")


@pytest.mark.parametrize("case", WEIGHTED)
def test_weighted_fast_engine_matches_autograd_step_for_step(case):
    config = TrainConfig(batch_size=16, **CASES[case])
    fast, reference = engine_pair(config)
    for i, (x, y) in enumerate(_batches(4, 16)):
        w = _weights(16, seed=i)
        loss_a, logits_a = fast.forward_backward(x, y, None, w)
        loss_b, logits_b = reference.forward_backward(x, y, None, w)
        torch.testing.assert_close(loss_a, loss_b, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(logits_a, logits_b, rtol=1e-12, atol=1e-12)
        fast.update(1e-2)
        reference.update(1e-2)
    ours, theirs = fast.module().state_dict(), reference.module().state_dict()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_integer_weights_are_duplicated_rows_and_zero_weights_are_no_rows(smoothing):
    """A row of weight k counts as k copies of it: the loss and every gradient of the
    weighted batch equal those of the batch with each row repeated k times (0: left out)."""
    config = TrainConfig(model="784-32-10:relu", optimizer="sgd", label_smoothing=smoothing)
    (x, y), w = next(_batches(1, 16)), _weights(16)
    repeats = w.long()
    for engine in engine_pair(config.replace(batch_size=int(repeats.sum()))):
        loss, _ = engine.forward_backward(x, y, None, w)
        weighted = [g.clone() for g in engine.grads]
        loss_rep, _ = engine.forward_backward(
            x.repeat_interleave(repeats, 0), y.repeat_interleave(repeats)
        )
        torch.testing.assert_close(loss, loss_rep, rtol=1e-12, atol=1e-12)
        for a, b in zip(weighted, engine.grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


def test_a_batch_whose_weights_sum_to_zero_has_no_loss_and_no_gradient():
    config = TrainConfig(model="784-32-10:relu", optimizer="sgd", batch_size=8)
    x, y = next(_batches(1, 8))
    for engine in engine_pair(config):
        loss, _ = engine.forward_backward(x, y, None, torch.zeros(8, dtype=torch.float64))
        assert float(loss) == 0.0
        assert all(float(g.abs().max()) == 0.0 for g in engine.grads)


def test_scratch_refuses_weights_in_one_line():
    config = TrainConfig(model="784-16-10:relu", optimizer="sgd", engine="scratch")
    engine = make_engine(config, build_model(config.model_spec))
    with pytest.raises(ConfigError, match=r"^weights: the scratch engine has no sample weights"):
        engine.forward_backward(torch.randn(4, 784), torch.arange(4), None, torch.ones(4))


def _blobs(n: int = 120, features: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, features, generator=g) + 2.0 * torch.nn.functional.one_hot(y, features)
    return x.numpy(), y.numpy()


def test_the_trainer_trains_on_the_weighted_loss():
    """Full batches, no shuffle: rows of weight 0 change nothing, so the weighted run is the
    run on the other rows; and every row at weight 1 is the unweighted run."""
    x, y = _blobs()
    keep = np.arange(len(y)) % 4 != 0
    config = TrainConfig(
        dataset="blobs",
        model="6-16-3:relu",
        normalization="none",
        batch_size=len(y),
        shuffle=False,
        epochs=5,
        lr=0.05,
    )
    weighted = Dataset.from_arrays(x, y, name="blobs", weights=keep.astype(np.float32))
    dropped = Dataset.from_arrays(x[keep], y[keep], name="blobs")
    a = train(config, weighted, "cpu")
    b = train(config.replace(batch_size=int(keep.sum())), dropped, "cpu")
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    ones = Dataset.from_arrays(x, y, name="blobs", weights=np.ones(len(y)))
    plain = Dataset.from_arrays(x, y, name="blobs")
    c, d = train(config, ones, "cpu"), train(config, plain, "cpu")
    assert [r["train_loss"] for r in c.history] == pytest.approx(
        [r["train_loss"] for r in d.history], rel=1e-5
    )


def test_weights_are_checked_and_need_an_engine_that_takes_them():
    x, y = _blobs(12)
    with pytest.raises(DataError, match=r"^weights: has NaN or infinite values"):
        Dataset.from_arrays(x, y, weights=[np.nan] + [1.0] * 11)
    with pytest.raises(DataError, match=r"^weights: expected shape \(12,\), one per row"):
        Dataset.from_arrays(x, y, weights=np.ones(5))
    data = Dataset.from_arrays(x, y, name="blobs", weights=np.ones(12))
    config = TrainConfig(
        dataset="blobs",
        model="6-8-3:relu",
        normalization="none",
        optimizer="sgd",
        engine="scratch",
        iterations=1,
    )
    with pytest.raises(ConfigError, match=r"^engine: scratch has no sample weights"):
        Trainer(config, data, "cpu")
    with pytest.raises(ConfigError, match=r"^weights: a data-parallel run weighs") as caught:
        check_weights("fast", data, dist=object())
    assert caught.value.field == "weights"
    check_weights("scratch", Dataset.from_arrays(x, y), dist=None)  # unweighted: no question
