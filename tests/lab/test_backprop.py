"""The lab's hand-written backward pass against autograd, in float64, for every activation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import MlplabError
from mlplab.lab import backprop
from mlplab.lab.backprop import gradient_check, hand_gradients
from mlplab.nn.model import build_model
from mlplab.nn.spec import ACTIVATIONS

# Rounding alone separates the two in float64; a wrong formula is off by far more.
TOL = 1e-10
DEPTHS = {1: "784-24-10", 2: "784-24-16-10", 3: "784-24-16-12-10"}


@pytest.fixture(scope="module")
def images(mnist) -> torch.Tensor:
    """Three real test images, normalised as the tutorials do: (3, 784) float32."""
    return (mnist.test.x[:3].reshape(3, -1).float() / 255.0 - 0.5) / 0.5


def labels(mnist) -> list[int]:
    return [int(v) for v in mnist.test.y[:3]]


def with_running_stats(model, images) -> None:
    """A few train-mode forwards (batch norm's running mean and var move off 0 and 1) and a
    random scale and shift, so that eval-mode batch norm is no identity."""
    torch.manual_seed(1)
    with torch.no_grad():
        for bn in (m for m in model if isinstance(m, nn.BatchNorm1d)):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        model.train()
        for _ in range(4):
            model(images + 0.3 * torch.randn_like(images))


def reference(model, x: torch.Tensor, label: int):
    """Autograd on a float64 eval copy: the loss, logits and each linear layer's gradients."""
    model64 = copy.deepcopy(model).to(torch.float64).eval()
    x64 = x.to(torch.float64).reshape(1, -1)
    logits = model64(x64)
    loss = F.cross_entropy(logits, torch.tensor([label]))
    params = [p for fc in model64.linears() for p in (fc.weight, fc.bias)]
    grads = torch.autograd.grad(loss, params)
    return (
        model64,
        x64,
        float(loss.detach()),
        logits.detach()[0],
        list(zip(grads[0::2], grads[1::2], strict=True)),
    )


def check_against_autograd(model, x: torch.Tensor, label: int) -> dict:
    """gradient_check's verdict, and the hand gradients compared here with autograd directly."""
    result = gradient_check(model, x, label)
    model64, x64, loss, _, auto = reference(model, x, label)
    hand = hand_gradients(model64, x64, label)
    assert len(hand["grads"]) == len(auto) == len(model.linears())
    for (hw, hb), (aw, ab), fc in zip(hand["grads"], auto, model.linears(), strict=True):
        assert hw.dtype == torch.float64
        assert hw.shape == fc.weight.shape and hb.shape == fc.bias.shape
        assert float((hw - aw).abs().max()) <= TOL
        assert float((hb - ab).abs().max()) <= TOL
        assert float(aw.norm()) > 1e-6  # a gradient, not two zeros that agree
    assert hand["loss"] == pytest.approx(loss, abs=TOL)
    assert result["max_diff"] <= TOL
    assert result["dtype"] == "float64"
    assert [r["name"] for r in result["layers"]] == [f"fc{i + 1}" for i in range(len(auto))]
    for row, (aw, ab), fc in zip(result["layers"], auto, model.linears(), strict=True):
        assert row["shape"] == list(fc.weight.shape)
        norm = float(torch.cat([aw.reshape(-1), ab]).norm())
        assert row["autograd_norm"] == pytest.approx(norm, rel=1e-12)
        assert row["hand_norm"] == pytest.approx(norm, rel=1e-9)
    return result


@pytest.mark.parametrize("depth", sorted(DEPTHS))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_hand_gradients_match_autograd(mnist, images, activation, depth):
    model = build_model(f"{DEPTHS[depth]}:{activation}")
    for x, label in zip(images, labels(mnist), strict=True):
        check_against_autograd(model, x, label)


@pytest.mark.parametrize("depth", sorted(DEPTHS))
@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
def test_batch_norm_with_running_stats_matches_autograd(mnist, images, activation, depth):
    model = build_model(f"{DEPTHS[depth]}:{activation},bn")
    with_running_stats(model, images)
    bn = model.bn1
    assert bn.num_batches_tracked == 4
    assert float((bn.running_mean).abs().max()) > 1e-3
    assert float((bn.running_var - 1).abs().max()) > 1e-3
    for x, label in zip(images, labels(mnist), strict=True):
        check_against_autograd(model, x, label)
    assert model.training  # the check worked on a copy: the caller's model is untouched


@pytest.mark.parametrize(
    "spec", ["784-24-16-10:relu,dropout=0.5", "784-24-10:tanh,input_dropout=0.3"]
)
def test_dropout_is_off_in_the_check(mnist, images, spec):
    model = build_model(spec)
    model.train()
    x, label = images[0], labels(mnist)[0]
    first = check_against_autograd(model, x, label)
    # Eval mode: no random masks, so the same input gives the same answer twice.
    again = gradient_check(model, x, label)
    assert again["loss"] == first["loss"]
    assert again["layers"] == first["layers"]
    # ...and the same as the same weights without dropout in the spec.
    plain = build_model(spec.split(",")[0])
    plain.load_state_dict(model.state_dict())
    assert gradient_check(plain, x, label)["loss"] == pytest.approx(first["loss"], abs=1e-12)


@pytest.mark.parametrize("label", [0, 3, 9])
def test_output_block(images, label):
    model = build_model("784-24-16-10:sigmoid")
    x = images[1]
    result = gradient_check(model, x, label)
    _, _, loss, logits, _ = reference(model, x, label)
    out = result["output"]
    probs, onehot, delta = (torch.tensor(out[k], dtype=torch.float64) for k in out)
    assert len(out["probs"]) == len(out["onehot"]) == len(out["delta"]) == 10
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(probs, torch.softmax(logits, 0), rtol=0, atol=1e-12)
    assert out["onehot"] == [1.0 if i == label else 0.0 for i in range(10)]
    assert torch.allclose(delta, probs - onehot, rtol=0, atol=1e-15)
    assert float(delta.sum()) == pytest.approx(0.0, abs=1e-12)
    assert result["loss"] == pytest.approx(-math.log(out["probs"][label]), abs=1e-12)
    assert result["loss"] == pytest.approx(loss, abs=1e-12)
    assert result["label"] == label


@pytest.mark.parametrize("label", [10, -1, True, "3", 3.0, None])
def test_bad_label_is_refused(images, label):
    model = build_model("784-24-10")
    with pytest.raises(MlplabError, match=r"^label: must be a class from 0 to 9, got "):
        gradient_check(model, images[0], label)


def test_a_wrong_derivative_is_caught(monkeypatch, mnist, images):
    """The check can fail: relu with a derivative of 1 everywhere is far from autograd."""
    model = build_model(DEPTHS[2])
    x, label = images[0], labels(mnist)[0]
    assert gradient_check(model, x, label)["max_diff"] <= TOL
    f, _ = backprop.DERIVATIVES["relu"]
    monkeypatch.setitem(backprop.DERIVATIVES, "relu", (f, lambda z: torch.ones_like(z)))
    result = gradient_check(model, x, label)
    assert result["max_diff"] > 1e-4
    # The output layer's gradient needs no derivative; the layers below it are wrong.
    assert result["layers"][-1]["max_diff_weight"] <= TOL
    assert result["layers"][0]["max_diff_weight"] > 1e-4
