"""The ONNX path of `predict` and `serve` on damaged and hostile files: every mutated .onnx
either loads, runs on a batch and gives one logit per class, or fails with one MlplabError
naming the file. Nothing else is raised, and nothing hangs (the profile's deadline)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlplab.io.checkpoint import load_checkpoint, model_info, save_checkpoint
from mlplab.nn.model import build_model
from mlplab.nn.normalization import Normalization
from mlplab.use.export import OnnxModel, export
from mlplab.use.predict import load_predictor
from property.strategies import damaged, examples, json_any

KEYS = ("classes", "normalization", "mlplab", "spec", "input")


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> bytes:
    model = build_model("784-16-10:relu")
    info = model_info(model, "mnist", tuple("0123456789"), Normalization(0.5, 0.5))
    folder = tmp_path_factory.mktemp("onnx")
    ckpt = load_checkpoint(save_checkpoint(folder / "model.safetensors", model, info))
    data = export(ckpt, "onnx").read_bytes()
    assert b"stack_trace" not in data  # the exporter's traces name files on this machine
    return data


def works(model) -> None:
    """What a loaded model must do: a batch in, one logit per class out."""
    assert model(np.zeros((3, 1, 28, 28), np.float32)).shape == (3, len(model.classes))


@examples(80)
@given(data=st.data())
def test_damaged_bytes(good, tmp_path, clean, data):
    path = tmp_path / "model.onnx"
    path.write_bytes(damaged(data, good))
    model = clean(OnnxModel, path, names=(str(path),))
    if model is not None:  # a byte that nothing reads, or a weight's value
        works(model)


def with_metadata(good: bytes, key: str, value: str) -> bytes:
    import onnx

    proto = onnx.load_from_string(good)
    for prop in proto.metadata_props:
        if prop.key == key:
            prop.value = value
    return proto.SerializeToString()


@examples(100)
@given(data=st.data())
def test_any_metadata_value(good, tmp_path, clean, data):
    key = data.draw(st.sampled_from(KEYS))
    value = data.draw(st.one_of(json_any(biggest=10**400).map(json.dumps), st.text(max_size=20)))
    path = tmp_path / "model.onnx"
    path.write_bytes(with_metadata(good, key, value))
    predictor = clean(load_predictor, path, names=(str(path),))
    if predictor is not None:
        probs = predictor.probabilities(np.zeros((2, 28, 28), np.uint8))
        assert probs.shape == (2, len(predictor.classes))


@examples(60)
@given(data=st.data())
def test_any_weight_shape_or_bytes(good, tmp_path, clean, data):
    """A weight's declared shape or its bytes changed: the graph no longer adds up."""
    import onnx

    proto = onnx.load_from_string(good)
    weights = list(proto.graph.initializer)
    weight = weights[data.draw(st.integers(0, len(weights) - 1))]
    if data.draw(st.booleans()):
        dims = data.draw(st.lists(st.integers(0, 2**31), min_size=0, max_size=3))
        del weight.dims[:]
        weight.dims.extend(dims)
    else:
        weight.raw_data = data.draw(st.binary(max_size=64))
    path = tmp_path / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    model = clean(OnnxModel, path, names=(str(path),))
    if model is not None:
        works(model)
