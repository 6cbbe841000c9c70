"""The hand-written backprop against autograd, in float64, and the scratch engine against nn."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlplab.nn.model import build_model
from mlplab.nn.scratch import ScratchMLP, cross_entropy, sigmoid, softmax, tanh
from mlplab.nn.spec import parse_spec

TORCH_ACT = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


def autograd_grads(model: ScratchMLP, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    params = [
        t.clone().requires_grad_()
        for pair in zip(model.weights, model.biases, strict=True)
        for t in pair
    ]
    a, last = x, len(model.weights) - 1
    for i in range(len(model.weights)):
        z = a @ params[2 * i].t() + params[2 * i + 1]
        a = z if i == last else TORCH_ACT[model.activation](z)
    F.cross_entropy(a, y).backward()
    return [p.grad for p in params]


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_gradients_match_autograd(activation, depth):
    spec = parse_spec("-".join(["784"] + ["48"] * depth + ["10"]) + f":{activation}")
    model = ScratchMLP.from_spec(spec, torch.Generator().manual_seed(depth), torch.float64)
    x = torch.randn(32, 784, dtype=torch.float64)
    y = torch.randint(0, 10, (32,))
    logits, cache = model.forward(x)
    ours = [g for pair in model.backward(cache, y) for g in pair]
    reference = autograd_grads(model, x, y)
    assert len(ours) == 2 * (depth + 1)
    for got, want in zip(ours, reference, strict=True):
        assert got.shape == want.shape
        rel = (got - want).abs().max() / want.abs().max()
        assert rel < 1e-6


def test_hand_written_functions_match_torch():
    z = torch.linspace(-800, 800, 10001, dtype=torch.float64)
    assert torch.allclose(sigmoid(z), torch.sigmoid(z), atol=1e-15)
    assert torch.allclose(tanh(z), torch.tanh(z), atol=1e-15)
    logits = torch.randn(64, 10, dtype=torch.float64) * 300  # exp would overflow unshifted
    assert torch.allclose(softmax(logits), torch.softmax(logits, 1), atol=1e-12)
    assert torch.isfinite(softmax(logits)).all()
    y = torch.randint(0, 10, (64,))
    assert torch.allclose(cross_entropy(logits, y), F.cross_entropy(logits, y))


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_ten_sgd_steps_match_autograd_training(activation, mnist):
    module = build_model(f"784-64-32-10:{activation}")
    scratch = ScratchMLP.from_module(module)
    start = scratch.weights[0].clone()
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    x = mnist.train.x[:640].reshape(10, 64, 784).float() / 255
    y = mnist.train.y[:640].reshape(10, 64)
    for xb, yb in zip(x, y, strict=True):
        scratch.train_step(xb, yb, lr=0.1)
        loss = F.cross_entropy(module(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name, p in module.state_dict().items():
        assert (scratch.state_dict()[name] - p).abs().max() < 1e-5, name
    assert (scratch.weights[0] - start).abs().max() > 1e-4  # it did train


def test_scratch_weights_load_into_the_module(mnist):
    scratch = ScratchMLP.from_spec(
        parse_spec("784-256-10:sigmoid"), torch.Generator().manual_seed(3)
    )
    x = mnist.test.x[:100].float() / 255
    module = scratch.to_module().eval()
    assert [n for n, _ in module.named_children()] == ["flatten", "fc1", "act1", "fc2"]
    with torch.no_grad():
        assert torch.allclose(module(x), scratch(x), atol=1e-6)


def test_scratch_engine_trains_preset_c_past_95_percent(mnist):
    from mlplab.config import TrainConfig
    from mlplab.training.trainer import train

    config = TrainConfig(
        preset="c",
        engine="scratch",
        optimizer="sgd",
        lr=0.1,
        batch_size=100,
        iterations=3000,
        eval_every=1000,
        schedule="constant",
        normalization="none",
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matmuls: one thread is faster, and immune to a busy core
    try:
        result = train(config, mnist, "cpu")
    finally:
        torch.set_num_threads(threads)
    assert result.test.accuracy >= 95.0
    evals = [r["iteration"] for r in result.history if r["kind"] == "eval"]
    assert evals == [1000, 2000, 3000]
    # the trained scratch weights are an ordinary nn.Module checkpoint
    assert [n for n, _ in result.model.named_children()] == ["flatten", "fc1", "act1", "fc2"]


def test_scratch_config_errors():
    from mlplab.config import TrainConfig
    from mlplab.errors import ConfigError
    from mlplab.training.engines import resolve_engine

    with pytest.raises(ConfigError, match="engine: scratch trains with plain SGD"):
        resolve_engine(TrainConfig(preset="c", engine="scratch", optimizer="adam"))
    with pytest.raises(ConfigError, match="engine: scratch supports sigmoid, tanh, relu, got gelu"):
        resolve_engine(TrainConfig(model="784-32-10:gelu", engine="scratch", optimizer="sgd"))
    with pytest.raises(ConfigError, match="neither dropout nor batch norm"):
        resolve_engine(TrainConfig(model="784-32-10:relu,bn", engine="scratch", optimizer="sgd"))
