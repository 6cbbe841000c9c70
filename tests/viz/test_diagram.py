"""The lessons' drawings: which units a wide layer shows, the values that shade them, and the
autograd graph as `grad_fn` links it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import mlplab  # noqa: E402
from mlplab.viz.diagram import (  # noqa: E402
    _activations,
    draw_graph,
    draw_network,
    graph_nodes,
    shown_units,
)


def test_a_wide_layer_shows_its_units_evenly_spread_and_a_narrow_one_all():
    assert shown_units(5, 10) == [0, 1, 2, 3, 4]
    assert shown_units(784, 10) == [0, 87, 174, 261, 348, 435, 522, 609, 696, 783]


def test_units_are_shaded_by_the_values_each_layer_really_computes():
    torch.manual_seed(0)
    model = mlplab.build_model("784-16-12-10:tanh,dropout=0.3").eval()
    x = torch.randn(784)
    values = _activations(model, x)
    with torch.no_grad():
        h1 = torch.tanh(model.fc1(x.view(1, -1)))[0]
        h2 = torch.tanh(model.fc2(h1.view(1, -1)))[0]
        logits = model(x.view(1, -1))[0]
    assert [v.shape[0] for v in values] == [784, 16, 12, 10]
    assert torch.allclose(values[1], h1) and torch.allclose(values[2], h2)
    assert torch.allclose(values[3], logits)


def test_draw_network_returns_the_units_it_drew_and_refuses_shading_without_weights():
    fig, ax = plt.subplots()
    model = mlplab.build_model("784-256-10:relu")
    drawn = draw_network(ax, model, x=torch.rand(784), max_units=8, top_k=2)
    assert [len(d) for d in drawn] == [8, 8, 8]
    assert len(ax.lines) == 2 * 8 * 2  # top_k edges into each drawn unit of two layers
    with pytest.raises(ValueError, match="needs a model"):
        draw_network(ax, [784, 256, 10], x=torch.rand(784))
    plt.close(fig)


def test_the_graph_follows_grad_fn_from_the_leaves_to_the_output():
    w = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(1.0, requires_grad=True)
    loss = (w * 3.0 + b - 10) ** 2
    nodes = graph_nodes(loss, {"w": w, "b": b})
    assert nodes == {
        "PowBackward0": ["SubBackward0"],
        "SubBackward0": ["AddBackward0"],
        "AddBackward0": ["MulBackward0", "b"],
        "MulBackward0": ["w"],
        "w": [],
        "b": [],
    }
    fig, ax = plt.subplots()
    assert draw_graph(ax, loss, {"w": w, "b": b}) == nodes
    with pytest.raises(ValueError, match="no grad_fn"):
        graph_nodes(torch.tensor(1.0))
    plt.close(fig)
