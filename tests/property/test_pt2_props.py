"""The .pt2 reader on hostile files: a real export cut short, with a flipped byte, or with any
JSON value put anywhere in its graph, its weights' config or mlplab's metadata. The result is
a program that answers a batch, or an MlplabError naming the file: never a traceback from
torch."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlplab.io.checkpoint import load_checkpoint, model_info, save_checkpoint
from mlplab.nn.model import build_model
from mlplab.nn.normalization import Normalization
from mlplab.use.export import Pt2Model, export
from property.strategies import JSON_ANY, examples

EDITABLE = ("models/model.json", "data/weights/model_weights_config.json", "extra/mlplab.json")


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> bytes:
    model = build_model("784-16-10:relu,bn")
    info = model_info(model, "mnist", tuple("0123456789"), Normalization(0.5, 0.5))
    folder = tmp_path_factory.mktemp("pt2")
    ckpt = load_checkpoint(save_checkpoint(folder / "model.safetensors", model, info))
    return export(ckpt, "pt2").read_bytes()


def paths(node, prefix=()):
    """Every place in a JSON document that holds a value, as a tuple of keys."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield (*prefix, key)
        if isinstance(value, (dict, list)) and value:
            yield from paths(value, (*prefix, key))


def replaced(data: bytes, name: str, path: tuple, value) -> bytes:
    """The archive with one JSON value replaced (the zip's CRCs made right again)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for n in src.namelist():
            content = src.read(n)
            if n == f"archive/{name}":
                doc = json.loads(content)
                node = doc
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = value
                content = json.dumps(doc).encode()
            dst.writestr(n, content)
    return out.getvalue()


@examples(60)
@given(data=st.data())
def test_damaged_bytes(good, tmp_path, clean, data):
    how = data.draw(st.sampled_from(["cut", "flip"]))
    if how == "cut":
        damaged = good[: data.draw(st.integers(0, len(good) - 1))]
    else:
        at = data.draw(st.integers(0, len(good) - 1))
        damaged = good[:at] + bytes([good[at] ^ data.draw(st.integers(1, 255))]) + good[at + 1 :]
    path = tmp_path / "model.pt2"
    path.write_bytes(damaged)
    program = clean(Pt2Model, path, names=(str(path),))
    if program is not None:  # the byte was one that nothing reads, such as a timestamp
        assert program.classes == list("0123456789")


@examples(100)
@given(data=st.data())
def test_any_json_value_anywhere(good, tmp_path, clean, data):
    name = data.draw(st.sampled_from(EDITABLE))
    with zipfile.ZipFile(io.BytesIO(good)) as archive:
        doc = json.loads(archive.read(f"archive/{name}"))
    where = data.draw(st.sampled_from(sorted(paths(doc), key=repr)))
    path = tmp_path / "model.pt2"
    path.write_bytes(replaced(good, name, where, data.draw(JSON_ANY)))
    program = clean(Pt2Model, path, names=(str(path),))
    if program is not None:  # a value that changes nothing torch runs, such as a stack trace
        assert program(np.zeros((3, 1, 28, 28), np.float32)).shape == (3, 10)
