"""The safetensors reader on hostile files: the header length, its JSON, each tensor's
offsets, dtype and shape, and the metadata. The result is tensors that fill the data
exactly, or a CheckpointError naming the file; a checkpoint's spec cannot make it allocate."""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from mlplab.errors import CheckpointError
from mlplab.io.checkpoint import load_checkpoint, model_info, save_checkpoint
from mlplab.io.safetensors import _DTYPES, decode_safetensors, encode_safetensors
from mlplab.nn.model import build_model
from mlplab.nn.normalization import Normalization
from property.strategies import JSON_ANY, examples

NAME = "model.safetensors"
CODES = sorted(_DTYPES.values())
SIZES = {code: torch.empty((), dtype=dtype).element_size() for dtype, code in _DTYPES.items()}


def mostly(usual, *others, weight: int = 4):
    return st.integers(0, weight).flatmap(lambda i: usual if i else st.one_of(*others))


SIZE = mostly(
    st.integers(0, 5),
    st.sampled_from([2**31, 2**63, 2**64, 2**70, -1]),
    st.just(True),
    st.just(2.0),
)

# No bytes, and dimensions that overflow torch's int64 sizes (or their product does).
EMPTY_BUT_HUGE = st.permutations([0, 2**64]) | st.permutations([0, 2**62, 2**62])


@st.composite
def tensors(draw) -> dict[str, torch.Tensor]:
    out = {}
    for name in draw(st.lists(st.text(min_size=1, max_size=10), unique=True, max_size=4)):
        dtype = draw(st.sampled_from(list(_DTYPES)))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        out[name] = (torch.arange(math.prod(shape)) % 7).to(dtype).reshape(shape)
    return out


@st.composite
def header_entries(draw, names: list[str]) -> tuple[dict, int]:
    """A header whose entries are each valid, or broken in one field, and the data size
    that the valid entries call for."""
    header: dict = {}
    if draw(st.booleans()):
        header["__metadata__"] = draw(
            mostly(st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3), JSON_ANY)
        )
    offset = 0
    for name in names:
        code = draw(mostly(st.sampled_from(CODES), st.text(max_size=5), JSON_ANY))
        shape = draw(mostly(st.lists(SIZE, max_size=3), EMPTY_BUT_HUGE, JSON_ANY))
        numel = (
            math.prod(shape)
            if isinstance(shape, list) and all(type(s) is int for s in shape)
            else 1
        )
        size = abs(numel) * SIZES.get(code, 1) if isinstance(code, str) else 8
        size = size if size < 1 << 16 else 8
        offsets = draw(
            mostly(
                st.just([offset, offset + size]),
                st.lists(SIZE, min_size=2, max_size=2),
                st.just([offset, offset + size + 1]),
                JSON_ANY,
            )
        )
        header[name] = draw(
            mostly(st.just({"dtype": code, "shape": shape, "data_offsets": offsets}), JSON_ANY)
        )
        offset += size
    return header, offset


def check_decoded(result, data: bytes) -> None:
    """Accepted tensors tile the data section exactly, and the metadata is str -> str."""
    if result is None:
        return
    out, metadata = result
    assert isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    (n,) = struct.unpack("<Q", data[:8])
    given = json.loads(data[8 : 8 + n]).get("__metadata__")
    assert given is None or given == metadata, "metadata that is not an object was accepted"
    assert sum(t.numel() * t.element_size() for t in out.values()) == len(data) - 8 - n


@examples(200)
@given(tensors(), st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3))
def test_encoded_files_decode_to_the_same_tensors(tensors, metadata):
    out, meta = decode_safetensors(encode_safetensors(tensors, metadata))
    assert meta == metadata and out.keys() == tensors.keys()
    for name, t in tensors.items():
        assert out[name].dtype == t.dtype and torch.equal(out[name], t)


@examples(300)
@given(
    st.lists(st.text(min_size=1, max_size=6), unique=True, max_size=4).flatmap(header_entries),
    st.data(),
)
@example(({"t": {"dtype": "F32", "shape": [2**70, 0], "data_offsets": [0, 0]}}, 0), None)
@example(({"t": {"dtype": "F32", "shape": [2**62, 2**62, 0], "data_offsets": [0, 0]}}, 0), None)
@example(({"__metadata__": []}, 0), None)
def test_any_header_decodes_consistently_or_is_a_checkpoint_error(clean, entries, data):
    header, size = entries
    skew, body = 0, bytes(size)
    if data is not None:
        skew = data.draw(mostly(st.just(0), st.sampled_from([1, -1, 7, 2**40, 2**64 - 1])))
        body = data.draw(mostly(st.just(body), st.just(body + b"x"), st.binary(max_size=64)))
    try:
        head = json.dumps(header).encode()
    except ValueError:  # floats that JSON cannot write
        head = b"{}"
    n = min(max(0, len(head) + skew), 2**64 - 1)
    raw = struct.pack("<Q", n) + head + body
    check_decoded(clean(decode_safetensors, raw, NAME, names=(NAME,)), raw)


@examples(200)
@given(tensors(), st.data())
def test_damaged_files_are_checkpoint_errors_or_still_consistent(clean, tensors, data):
    raw = bytearray(encode_safetensors(tensors, {"k": "v"}))
    how = data.draw(st.sampled_from(["flip", "truncate", "extend", "length"]))
    if how == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "extend":
        raw += data.draw(st.binary(min_size=1, max_size=9))
    else:
        raw[:8] = struct.pack("<Q", data.draw(st.integers(0, 2**64 - 1)))
    check_decoded(clean(decode_safetensors, bytes(raw), NAME, names=(NAME,)), bytes(raw))


SPECS = st.one_of(
    st.sampled_from(["784-10", "784-16-10", "784-16-10:bn", "784-1000000000-10", "784-0-10"]),
    st.text(max_size=12),
)


@examples(100)
@given(
    st.one_of(
        st.fixed_dictionaries(
            {
                "format": mostly(st.just("mlplab-mlp"), JSON_ANY),
                "spec": mostly(st.just("784-16-10"), SPECS, JSON_ANY),
                "normalization": mostly(st.just({"mean": 0.5, "std": 0.5}), JSON_ANY),
                "classes": st.just([str(i) for i in range(10)]),
            }
        ),
        JSON_ANY,
    )
)
def test_any_checkpoint_metadata_loads_or_is_a_checkpoint_error(clean, tmp_path_factory, info):
    path = tmp_path_factory.getbasetemp() / NAME
    weights = build_model("784-16-10").state_dict()
    path.write_bytes(encode_safetensors(weights, {"mlplab": json.dumps(info)}))
    ckpt = clean(load_checkpoint, path, names=(str(path),))
    if ckpt is not None:
        assert ckpt.info["spec"] == "784-16-10"


# Regression tests for what the properties found.


def encoded(header: dict, body: bytes = b"") -> bytes:
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + body


@pytest.mark.parametrize(
    ("header", "message"),
    [
        # torch's reshape overflowed: a TypeError, then a RuntimeError
        (
            {"t": {"dtype": "F32", "shape": [2**70, 0], "data_offsets": [0, 0]}},
            "bad dtype or shape",
        ),
        (
            {"t": {"dtype": "F32", "shape": [2**62, 2**62, 0], "data_offsets": [0, 0]}},
            "bad dtype or shape",
        ),
        # falsy non-objects passed as empty metadata
        ({"__metadata__": []}, "metadata is not str -> str"),
        ({"__metadata__": 0}, "metadata is not str -> str"),
    ],
)
def test_found_header_cases_are_checkpoint_errors(header, message):
    with pytest.raises(CheckpointError, match=f"^{NAME}: .*{message}"):
        decode_safetensors(encoded(header), NAME)


def test_null_metadata_is_empty_metadata():
    assert decode_safetensors(encoded({"__metadata__": None}), NAME) == ({}, {})


def test_an_empty_tensor_with_large_dims_still_decodes():
    header = {"t": {"dtype": "F32", "shape": [2**40, 0], "data_offsets": [0, 0]}}
    out, _ = decode_safetensors(encoded(header), NAME)
    assert out["t"].shape == (2**40, 0)


def test_a_checkpoint_whose_spec_claims_a_huge_model_is_refused_before_building(tmp_path):
    model = build_model("784-16-10")
    info = model_info(model, "mnist", tuple("0123456789"), Normalization(0.5, 0.5))
    path = save_checkpoint(tmp_path / NAME, model, {**info, "spec": "784-1000000000-10"})
    with pytest.raises(
        CheckpointError, match=r"not a usable mlplab checkpoint: a model has at most"
    ):
        load_checkpoint(path)
    # Within the spec bounds, but 3 GB of weights for a 50 KB file: build_model allocated
    # them all before load_state_dict found that they did not match.
    path = save_checkpoint(tmp_path / NAME, model, {**info, "spec": "784-1000000-10"})
    message = "spec '784-1000000-10' has 795000010 parameters, the file holds 12730 values$"
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
