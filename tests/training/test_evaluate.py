"""evaluate() against a direct float64 computation on a real MNIST model and the real test split."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlplab.config import TrainConfig
from mlplab.data.dataset import Split
from mlplab.nn.model import build_model
from mlplab.nn.normalization import Normalization
from mlplab.training.evaluate import Metrics, evaluate, predict_logits
from mlplab.training.trainer import train


@pytest.fixture(scope="module")
def trained(mnist):
    """Preset c after 150 steps: right on most images, wrong on a few hundred."""
    config = TrainConfig(preset="c", batch_size=128, iterations=150, device="cpu")
    result = train(config, mnist, "cpu")
    return result.model, result.norm


def reference(model, split: Split, norm: Normalization, num_classes: int = 10):
    """Loss, predictions, confusion and per-class accuracy, the long way, in float64."""
    model64 = copy.deepcopy(model).double().eval()
    x = (split.x.reshape(len(split), -1).double() / 255.0 - norm.mean) / norm.std
    with torch.no_grad():
        logits = model64(x)  # (N, 784) -> (N, classes)
    loss = float(F.cross_entropy(logits, split.y))
    pred = logits.argmax(1).numpy()
    y = split.y.numpy()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(y, pred, strict=True):
        confusion[t, p] += 1
    per_class = []
    for c in range(num_classes):
        n = int((y == c).sum())
        per_class.append(float((pred[y == c] == c).sum()) * 100.0 / n if n else math.nan)
    accuracy = float((pred == y).sum()) * 100.0 / len(y)
    return loss, accuracy, per_class, confusion


def test_metrics_match_a_direct_float64_computation(trained, mnist):
    model, norm = trained
    metrics = evaluate(model, mnist.test, norm, 10)
    loss, accuracy, per_class, confusion = reference(model, mnist.test, norm)

    assert isinstance(metrics, Metrics)
    assert metrics.count == 10_000
    assert metrics.loss == pytest.approx(loss, rel=1e-5)
    assert metrics.accuracy == pytest.approx(accuracy, abs=1e-9)
    assert 80 < metrics.accuracy < 99  # a real model: mostly right, with errors to count
    assert metrics.confusion == confusion.tolist()
    assert metrics.per_class_accuracy == pytest.approx(per_class, abs=1e-9)
    assert sum(map(sum, metrics.confusion)) == 10_000
    # Row sums are the true class counts; the diagonal is what the accuracy counts.
    assert [sum(row) for row in metrics.confusion] == torch.bincount(mnist.test.y).tolist()
    assert sum(metrics.confusion[i][i] for i in range(10)) == round(metrics.accuracy * 100)


def test_metrics_do_not_depend_on_the_batch_size(trained, mnist):
    model, norm = trained
    whole = evaluate(model, mnist.test, norm, 10)
    pieces = evaluate(model, mnist.test, norm, 10, batch_size=777)
    assert pieces.loss == pytest.approx(whole.loss, rel=1e-6)
    assert pieces.confusion == whole.confusion


def test_a_class_absent_from_the_split_has_nan_accuracy(trained, mnist):
    model, norm = trained
    keep = mnist.test.y != 3
    split = Split(mnist.test.x[keep], mnist.test.y[keep])
    metrics = evaluate(model, split, norm, 10)
    loss, accuracy, per_class, confusion = reference(model, split, norm)

    assert metrics.count == int(keep.sum()) == 10_000 - 1010
    assert math.isnan(metrics.per_class_accuracy[3])
    assert all(math.isfinite(a) for i, a in enumerate(metrics.per_class_accuracy) if i != 3)
    assert metrics.confusion[3] == [0] * 10
    assert metrics.confusion == confusion.tolist()
    assert metrics.per_class_accuracy == pytest.approx(per_class, abs=1e-9, nan_ok=True)
    assert metrics.loss == pytest.approx(loss, rel=1e-5)
    assert metrics.accuracy == pytest.approx(accuracy, abs=1e-9)
    assert sum(map(sum, metrics.confusion)) == metrics.count


def test_evaluation_is_in_eval_mode_and_restores_training_mode(mnist):
    # Dropout 0.5 would make two evaluations differ if it were active.
    model = build_model("784-64-10:relu,dropout=0.5,bn").train()
    split = Split(mnist.test.x[:500], mnist.test.y[:500])
    norm = Normalization(0.5, 0.5)
    first = evaluate(model, split, norm, 10)
    assert model.training
    second = evaluate(model, split, norm, 10)
    assert first == second
    logits = predict_logits(model, split.x, norm)
    assert logits.shape == (500, 10) and not logits.requires_grad
    assert model.training


def test_metrics_to_dict(trained, mnist):
    model, norm = trained
    split = Split(mnist.test.x[:100], mnist.test.y[:100])
    metrics = evaluate(model, split, norm, 10)
    d = metrics.to_dict()
    assert d == {
        "loss": metrics.loss,
        "accuracy": metrics.accuracy,
        "count": 100,
        "per_class_accuracy": metrics.per_class_accuracy,
        "confusion": metrics.confusion,
    }
