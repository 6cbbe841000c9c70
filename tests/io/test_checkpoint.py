"""checkpoint.py: the safetensors codec (against the real package), save/load, corrupt files."""

from __future__ import annotations

import json
import pickle
import re
import struct

import pytest
import safetensors
import safetensors.torch
import torch

from mlplab.errors import CheckpointError
from mlplab.io.checkpoint import FORMAT, WEIGHTS, load_checkpoint, model_info, save_checkpoint
from mlplab.io.safetensors import decode_safetensors, encode_safetensors
from mlplab.nn.model import build_model
from mlplab.nn.normalization import Normalization

SPEC = "784-64-32-10:relu,dropout=0.3,bn"
NORM = Normalization(0.1306604762738429, 0.3081078038564627)

DTYPES = [
    torch.float64,
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
]
SHAPES = [(), (0,), (1,), (7,), (3, 0, 2), (2, 3, 4), (1, 1, 1, 5)]


def _random(shape, dtype, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=g, dtype=torch.float64) * 100).to(dtype)
    info = torch.iinfo(dtype)
    return torch.randint(info.min, info.max, shape, generator=g, dtype=torch.int64).to(dtype)


def _many_tensors() -> dict[str, torch.Tensor]:
    tensors = {}
    for i, dtype in enumerate(DTYPES):
        for j, shape in enumerate(SHAPES):
            tensors[f"{str(dtype).removeprefix('torch.')}/{j}"] = _random(shape, dtype, 10 * i + j)
    return tensors


def _assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]):
    assert set(got) == set(want)
    for name, t in want.items():
        assert got[name].dtype == t.dtype, name
        assert got[name].shape == t.shape, name
        assert torch.equal(got[name], t), name


# --- the codec ----------------------------------------------------------------------------


def test_round_trip_many_dtypes_and_shapes():
    tensors = _many_tensors()
    data = encode_safetensors(tensors, {"note": "hello", "json": '{"a": [1, 2]}'})
    got, metadata = decode_safetensors(data)
    _assert_same(got, tensors)
    assert metadata == {"note": "hello", "json": '{"a": [1, 2]}'}


def test_encoding_is_deterministic_and_aligned():
    tensors = _many_tensors()
    data = encode_safetensors(tensors, {"k": "v"})
    assert data == encode_safetensors(dict(reversed(tensors.items())), {"k": "v"})
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0
    assert data[8:9] == b"{"


def test_special_float_values_and_non_contiguous_input():
    t = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-45, 3.4e38])
    wide = torch.arange(12, dtype=torch.int32).reshape(3, 4).t()  # a transposed view
    got, _ = decode_safetensors(encode_safetensors({"t": t, "wide": wide}, {}))
    assert torch.equal(got["t"], t)
    assert torch.equal(torch.signbit(got["t"]), torch.signbit(t))
    assert torch.equal(got["wide"], wide)
    nan = torch.tensor([float("nan")])
    assert torch.isnan(decode_safetensors(encode_safetensors({"n": nan}, {}))[0]["n"]).all()


def test_decoded_tensors_are_writable_copies():
    data = encode_safetensors({"w": torch.ones(4)}, {})
    got, _ = decode_safetensors(data)
    got["w"] += 1
    assert torch.equal(decode_safetensors(data)[0]["w"], torch.ones(4))


def test_unsupported_dtype_is_refused():
    with pytest.raises(CheckpointError, match="tensor 'c': dtype torch.complex64 cannot be saved"):
        encode_safetensors({"c": torch.zeros(2, dtype=torch.complex64)}, {})


def test_files_we_write_load_in_safetensors(tmp_path):
    tensors = _many_tensors()
    path = tmp_path / "ours.safetensors"
    path.write_bytes(encode_safetensors(tensors, {"mlplab": '{"x": 1}', "other": "y"}))
    _assert_same(safetensors.torch.load_file(path), tensors)
    with safetensors.safe_open(path, framework="pt") as f:
        assert f.metadata() == {"mlplab": '{"x": 1}', "other": "y"}
        assert set(f.keys()) == set(tensors)


def test_files_safetensors_writes_load_here(tmp_path):
    tensors = _many_tensors()
    path = tmp_path / "theirs.safetensors"
    safetensors.torch.save_file(tensors, path, metadata={"a": "1", "b": "two"})
    got, metadata = decode_safetensors(path.read_bytes(), str(path))
    _assert_same(got, tensors)
    assert metadata == {"a": "1", "b": "two"}


def test_safetensors_file_without_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"w": torch.arange(6.0).reshape(2, 3)}, path)
    got, metadata = decode_safetensors(path.read_bytes())
    assert metadata == {}
    assert torch.equal(got["w"], torch.arange(6.0).reshape(2, 3))


def test_checkpoint_loads_in_safetensors(tmp_path):
    model = build_model(SPEC)
    info = model_info(model, "mnist", tuple("0123456789"), NORM)
    path = save_checkpoint(tmp_path / WEIGHTS, model, info)
    loaded = safetensors.torch.load_file(path)
    _assert_same(loaded, model.state_dict())
    with safetensors.safe_open(path, framework="pt") as f:
        assert json.loads(f.metadata()["mlplab"])["spec"] == SPEC


def _header_file(header: dict, body: bytes) -> bytes:
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + body


def test_header_order_does_not_matter():
    # Keys out of offset order, and an empty tensor sharing its begin with a full one.
    body = struct.pack("<3f", 1.0, 2.0, 3.0) + b"\x07"
    header = {
        "u": {"dtype": "U8", "shape": [1], "data_offsets": [12, 13]},
        "full": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
        "empty": {"dtype": "F32", "shape": [0, 4], "data_offsets": [12, 12]},
        "__metadata__": {"k": "v"},
    }
    got, metadata = decode_safetensors(_header_file(header, body))
    assert metadata == {"k": "v"}
    assert got["full"].tolist() == [1.0, 2.0, 3.0]
    assert got["empty"].shape == (0, 4)
    assert got["u"].tolist() == [7]


# --- save and load ------------------------------------------------------------------------


def _trained_like(spec: str = SPEC):
    """A model whose batch-norm statistics are not the defaults, in eval mode."""
    model = build_model(spec)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0.0, 0.5)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
            elif name.endswith("num_batches_tracked"):
                buf.fill_(123)
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def _info(model):
    return model_info(model, "mnist", tuple("0123456789"), NORM, seed=42, epochs=[1, 2])


def test_save_load_gives_identical_logits(tmp_path, mnist):
    model = _trained_like()
    info = _info(model)
    path = save_checkpoint(tmp_path / "run" / WEIGHTS, model, info)
    assert path == tmp_path / "run" / WEIGHTS and path.is_file()

    ckpt = load_checkpoint(tmp_path / "run")
    assert not ckpt.model.training
    assert all(not m.training for m in ckpt.model.modules())
    assert str(ckpt.model.spec) == SPEC
    assert ckpt.path == path

    x = NORM.apply(mnist.test.x[:256])  # (256, 784)
    with torch.inference_mode():
        want = model(x)
        got = ckpt.model(x)
        again = ckpt.model(x)  # dropout is off in eval mode
        fresh = build_model(SPEC).eval()(x)
    assert torch.equal(got, want)
    assert torch.equal(again, want)
    assert not torch.allclose(fresh, want)
    for name, t in model.state_dict().items():
        assert torch.equal(ckpt.model.state_dict()[name], t), name
    assert ckpt.model.state_dict()["bn1.num_batches_tracked"].item() == 123


def test_info_survives(tmp_path):
    model = _trained_like()
    info = _info(model)
    save_checkpoint(tmp_path / WEIGHTS, model, info)
    ckpt = load_checkpoint(tmp_path / WEIGHTS)
    assert ckpt.info == json.loads(json.dumps(info))
    assert ckpt.info["format"] == FORMAT
    assert ckpt.info["seed"] == 42 and ckpt.info["epochs"] == [1, 2]
    assert ckpt.norm == NORM
    assert ckpt.classes == list("0123456789")
    assert set(ckpt.info["versions"]) == {"mlplab", "torch", "python"}


def test_load_from_directory_or_file(tmp_path):
    model = _trained_like("784-16-10:tanh")
    path = save_checkpoint(tmp_path / "run" / WEIGHTS, model, _info(model))
    from_dir = load_checkpoint(tmp_path / "run")
    from_file = load_checkpoint(str(path))
    assert from_dir.path == from_file.path == path
    for name, t in model.state_dict().items():
        assert torch.equal(from_dir.model.state_dict()[name], t)
        assert torch.equal(from_file.model.state_dict()[name], t)


def test_save_overwrites_atomically(tmp_path):
    first, second = _trained_like("784-8-10:relu"), _trained_like("784-8-10:relu")
    path = tmp_path / WEIGHTS
    save_checkpoint(path, first, _info(first))
    save_checkpoint(path, second, _info(second))
    assert torch.equal(load_checkpoint(path).model.fc1.weight, second.fc1.weight)
    assert [p.name for p in tmp_path.iterdir()] == [WEIGHTS]


def test_loading_never_unpickles(tmp_path, monkeypatch):
    model = _trained_like()
    path = save_checkpoint(tmp_path / WEIGHTS, model, _info(model))

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.serialization, "load", refuse)
    ckpt = load_checkpoint(tmp_path)
    assert torch.equal(ckpt.model.fc2.weight, model.fc2.weight)
    assert b"pickle" not in path.read_bytes()[:200] and path.read_bytes()[8:9] == b"{"


# --- missing and corrupt files ------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(
        CheckpointError, match=re.escape(f"{tmp_path / 'nope'}: no such checkpoint")
    ):
        load_checkpoint(tmp_path / "nope")


def test_run_directory_without_weights(tmp_path):
    message = f"{tmp_path / WEIGHTS}: no such checkpoint (give a run directory or its {WEIGHTS})"
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        load_checkpoint(tmp_path)


@pytest.fixture
def good(tmp_path):
    """The bytes of a valid checkpoint, and a path to write variants of it to."""
    model = _trained_like("784-16-10:relu,bn")
    data = encode_safetensors(model.state_dict(), {"mlplab": json.dumps(_info(model))})
    return data, tmp_path / WEIGHTS


def _split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _expect(path, data: bytes, message: str):
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text
    return text


def test_good_fixture_loads(good):
    data, path = good
    path.write_bytes(data)
    assert load_checkpoint(path).model.spec.batch_norm


def test_truncated_to_nothing(good):
    data, path = good
    _expect(path, data[:5], "not a safetensors file (only 5 bytes)")
    _expect(path, b"", "not a safetensors file (only 0 bytes)")


def test_truncated_body(good):
    data, path = good
    header, _ = _split(data)
    del header["__metadata__"]
    last = max(header, key=lambda name: header[name]["data_offsets"][1])
    _expect(path, data[:-10], f"tensor {last!r} has bad offsets")


def test_truncated_header(good):
    data, path = good
    _expect(path, data[:100], "header length")


def test_impossible_header_length(good):
    data, path = good
    bad = struct.pack("<Q", 2**63) + data[8:]
    text = _expect(path, bad, f"header length {2**63} is impossible for a {len(data)}-byte file")
    assert "not a safetensors file" in text


def test_bad_json_header(good):
    data, path = good
    (n,) = struct.unpack("<Q", data[:8])
    bad = data[:8] + b"{not json" + b" " * (n - 9) + data[8 + n :]
    _expect(path, bad, "corrupt safetensors header")


def test_header_not_utf8(good):
    data, path = good
    (n,) = struct.unpack("<Q", data[:8])
    bad = data[:8] + b"\xff" * n + data[8 + n :]
    _expect(path, bad, "corrupt safetensors header")


def test_header_not_an_object(good):
    data, path = good
    _expect(path, _header_file([1, 2], b""), "corrupt safetensors header: not a JSON object")


@pytest.mark.parametrize(
    "offsets, message",
    [
        ([0, 4], "has bad offsets [0, 4]"),  # wrong size
        ([8, None], "has no valid data_offsets"),
        ([-1, 3], "has no valid data_offsets"),
        ([0], "has no valid data_offsets"),
        ([True, 4], "has no valid data_offsets"),
    ],
)
def test_bad_offsets(good, offsets, message):
    data, path = good
    header, body = _split(data)
    header["fc1.bias"]["data_offsets"] = offsets
    _expect(path, _header_file(header, body), f"tensor 'fc1.bias' {message}")


def test_overlapping_offsets(good):
    data, path = good
    header, body = _split(data)
    entry = header["fc2.bias"]
    begin, stop = entry["data_offsets"]
    entry["data_offsets"] = [begin - 4, stop - 4]
    _expect(path, _header_file(header, body), "bad offsets")


@pytest.mark.parametrize(
    "field, value",
    [("dtype", "F128"), ("dtype", ["F32"]), ("dtype", None), ("shape", [16, -1]), ("shape", 16)],
)
def test_bad_dtype_or_shape(good, field, value):
    data, path = good
    header, body = _split(data)
    header["fc1.bias"][field] = value
    _expect(path, _header_file(header, body), "tensor 'fc1.bias' has a bad dtype or shape")


def test_shape_that_disagrees_with_size(good):
    data, path = good
    header, body = _split(data)
    header["fc1.bias"]["shape"] = [8]
    _expect(path, _header_file(header, body), "tensor 'fc1.bias' has bad offsets")


def test_trailing_bytes(good):
    data, path = good
    _expect(path, data + b"\0" * 8, "8 trailing bytes after the tensors")


@pytest.mark.parametrize("metadata", [{}, {"other": "x"}])
def test_missing_mlplab_metadata(good, metadata):
    data, path = good
    tensors, _ = decode_safetensors(data)
    text = _expect(path, encode_safetensors(tensors, metadata), "not an mlplab checkpoint")
    assert text == f"{path}: not an mlplab checkpoint (missing 'mlplab')"


def test_plain_safetensors_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: not an mlplab checkpoint")):
        load_checkpoint(path)


def _with_info(data: bytes, change) -> bytes:
    tensors, metadata = decode_safetensors(data)
    info = json.loads(metadata["mlplab"])
    change(info)
    return encode_safetensors(tensors, {"mlplab": json.dumps(info)})


def test_wrong_spec_for_tensors(good):
    data, path = good
    bad = _with_info(data, lambda info: info.update(spec="784-32-10:relu,bn"))
    text = _expect(
        path,
        bad,
        "not a usable mlplab checkpoint: spec '784-32-10:relu,bn' does not match the tensors: "
        "size mismatch for fc1.weight",
    )
    assert "[16, 784]" in text and "[32, 784]" in text


def test_spec_missing_layers(good):
    data, path = good
    bad = _with_info(data, lambda info: info.update(spec="784-16-10:relu"))
    _expect(path, bad, 'does not match the tensors: Unexpected key(s) in state_dict: "bn1.bias"')


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda info: info.update(spec="not a spec"), "bad model spec 'not a spec'"),
        (lambda info: info.update(spec=784), "spec is 784, expected text"),
        (lambda info: info.update(format="other"), "format is 'other', expected 'mlplab-mlp'"),
        (lambda info: info.pop("spec"), "not an mlplab checkpoint (missing 'spec')"),
        (lambda info: info.pop("normalization"), "missing 'normalization'"),
        (lambda info: info.update(normalization={"mean": 0, "std": 0}), "std must be positive"),
        (lambda info: info.update(normalization="z"), "not a usable mlplab checkpoint"),
    ],
)
def test_bad_info(good, change, message):
    data, path = good
    _expect(path, _with_info(data, change), message)


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"mlplab": "{not json"}, "not a usable mlplab checkpoint"),
        ({"mlplab": "[1, 2]"}, "the mlplab metadata is not a JSON object"),
        ({"mlplab": "null"}, "the mlplab metadata is not a JSON object"),
    ],
)
def test_bad_mlplab_metadata(good, metadata, message):
    data, path = good
    tensors, _ = decode_safetensors(data)
    _expect(path, encode_safetensors(tensors, metadata), message)


def test_metadata_not_strings(good):
    data, path = good
    header, body = _split(data)
    header["__metadata__"] = {"mlplab": {"format": FORMAT}}
    _expect(path, _header_file(header, body), "metadata is not str -> str")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_load_onto_the_gpu(tmp_path, mnist):
    model = _trained_like()
    save_checkpoint(tmp_path / WEIGHTS, model, _info(model))
    ckpt = load_checkpoint(tmp_path, device="cuda")
    assert all(p.device.type == "cuda" for p in ckpt.model.parameters())
    x = NORM.apply(mnist.test.x[:256])
    with torch.inference_mode():
        want = model(x)
        got = ckpt.model(x.cuda()).cpu()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
