"""The IDX parser on hostile bytes: a uint8 tensor that matches its header, or a DataError
naming the file; never another exception, and never memory beyond what the file holds."""

from __future__ import annotations

import gzip
import math
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlplab.data import idx
from mlplab.data.idx import encode_idx, parse_idx, read_idx
from mlplab.errors import DataError


def examples(n: int) -> settings:
    """n examples under the ci profile, as many times more as the profile in use asks."""
    scale = settings.default.max_examples / settings.get_profile("ci").max_examples
    return settings(max_examples=max(1, round(n * scale)))


NAME = "t10k-images-idx3-ubyte"
MAX_BODY = 1 << 16  # a claimed size beyond this gets a short random body instead


def mostly(usual, *others, weight: int = 4):
    """`usual` about weight/(weight + 1) of the time, else one of the others: each hostile
    feature is rare enough that a fair share of examples are valid files."""
    return st.integers(0, weight).flatmap(lambda i: usual if i else st.one_of(*others))


DTYPE_CODES = mostly(
    st.just(0x08), st.sampled_from([0x09, 0x0B, 0x0C, 0x0D, 0x0E]), st.integers(0, 255)
)
DIM = mostly(
    st.integers(1, 30),
    st.integers(0, 40),
    st.sampled_from([0, 28, 60000, 2**16, 2**31, 2**32 - 1]),
    st.integers(0, 2**32 - 1),
    weight=8,
)


@st.composite
def idx_bytes(draw) -> bytes:
    """IDX-like bytes: any magic, dtype code and dimensions, a header sometimes cut short,
    and values of the declared length, or one byte short or long, or a few random bytes."""
    magic = draw(mostly(st.just(0), st.integers(0, 0xFFFF)))
    code = draw(DTYPE_CODES)
    ndim = draw(mostly(st.integers(1, 3), st.integers(0, 255), st.just(0)))
    dims = tuple(draw(st.lists(DIM, min_size=ndim, max_size=ndim)))
    header = struct.pack(">HBB", magic, code, ndim) + struct.pack(f">{ndim}I", *dims)
    header = header[: draw(mostly(st.just(len(header)), st.sampled_from([len(header) - 1, 3])))]
    n = math.prod(dims) + draw(mostly(st.just(0), st.sampled_from([-1, 1])))
    if not 0 <= n <= MAX_BODY:
        n = draw(st.integers(0, 64))
    if n <= 64:
        return header + draw(st.binary(min_size=n, max_size=n))
    return header + (bytes(range(256)) * (n // 256 + 1))[:n]


def well_formed_dims(data: bytes) -> tuple[int, ...] | None:
    """The format's definition, read directly: the dims of a valid uint8 IDX file, else None."""
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or data[3] == 0:
        return None
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        return None
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if any(d == 0 for d in dims[1:]) or len(data) != 4 + 4 * ndim + math.prod(dims):
        return None
    return dims


def check_parsed(x: torch.Tensor | None, data: bytes) -> None:
    dims = well_formed_dims(data)
    if dims is None:
        assert x is None, "a malformed file was accepted"
        return
    assert x is not None, "a well-formed file was refused"
    assert x.dtype == torch.uint8 and tuple(x.shape) == dims
    assert x.numpy().tobytes() == data[4 + 4 * len(dims) :]


@examples(300)
@given(idx_bytes())
@example(struct.pack(">HBBII", 0, 8, 2, 2**31, 2**31))  # 2^62 bytes claimed
@example(struct.pack(">HBBIIII", 0, 8, 4, 65536, 65536, 65536, 65536))  # int64 wraps to 0
def test_parse_idx_accepts_exactly_the_well_formed_files(clean, data):
    check_parsed(clean(parse_idx, data, NAME, names=(NAME,)), data)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("idx")


@examples(150)
@given(idx_bytes(), st.sampled_from(["raw", "gzip", "gzip-truncated", "gzip-flipped"]))
def test_read_idx_raw_or_gzip_agrees_with_the_bytes(clean, folder, data, wrap):
    path = folder / (NAME + ("" if wrap == "raw" else ".gz"))
    raw = data if wrap == "raw" else gzip.compress(data, mtime=0)
    if wrap == "gzip-truncated":
        raw = raw[: len(raw) - 9]  # the CRC and size trailer is cut
    elif wrap == "gzip-flipped":
        raw = raw[:12] + bytes([raw[12] ^ 0x55]) + raw[13:]
    path.write_bytes(raw)
    x = clean(read_idx, path, names=(str(path),))
    if wrap.startswith("gzip-"):
        assert x is None, "a damaged gzip stream was accepted"
    else:
        check_parsed(x, data)


@examples(100)
@given(
    st.lists(st.integers(1, 6), min_size=1, max_size=4).flatmap(
        lambda shape: st.binary(min_size=math.prod(shape), max_size=math.prod(shape)).map(
            lambda b: np.frombuffer(b, dtype=np.uint8).reshape(shape)
        )
    )
)
def test_encode_then_parse_is_identity(values):
    assert np.array_equal(parse_idx(encode_idx(values)).numpy(), values)


# Regression tests: each a case the properties above found, or the bound they check.


def peak_python_memory(fn) -> int:
    """The peak of Python's allocations while fn runs (bytes objects included)."""
    tracemalloc.start()
    try:
        fn()
    except DataError:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_gzip_bomb_behind_a_small_header_is_not_decompressed(tmp_path):
    # 10 images declared, then 256 MiB of zeros: gzip makes that 256 KiB.
    header = struct.pack(">HBBIII", 0, 8, 3, 10, 28, 28)
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    parts = [z.compress(header + bytes(7840))] + [z.compress(chunk) for _ in range(256)]
    path = tmp_path / (NAME + ".gz")
    path.write_bytes(b"".join([*parts, z.flush()]))
    with pytest.raises(DataError, match=f"^{path}: has trailing bytes: dimensions 10x28x28"):
        read_idx(path)
    assert peak_python_memory(lambda: read_idx(path)) < 8 << 20


def test_gzip_header_claiming_2_to_the_62_bytes_fails_before_reading_on(tmp_path):
    path = tmp_path / (NAME + ".gz")
    path.write_bytes(gzip.compress(struct.pack(">HBBII", 0, 8, 2, 2**31, 2**31) + bytes(1 << 20)))
    with pytest.raises(DataError, match=r"need 4611686018427387916 bytes, more than the 256 MiB"):
        read_idx(path)
    assert peak_python_memory(lambda: read_idx(path)) < 1 << 20


def test_raw_file_over_the_limit_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "MAX_BYTES", 1000)
    path = tmp_path / NAME
    path.write_bytes(encode_idx(np.zeros((2, 28, 28), dtype=np.uint8)))
    with pytest.raises(DataError, match=f"^{path}: file is larger than the 1000 bytes limit$"):
        read_idx(path)


def test_gzip_of_an_empty_file_is_too_short(tmp_path):
    path = tmp_path / (NAME + ".gz")
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match=r"too short for an IDX header \(0 bytes\)"):
        read_idx(path)


def test_gzip_with_a_bad_magic_is_named_as_such(tmp_path):
    path = tmp_path / (NAME + ".gz")
    path.write_bytes(gzip.compress(bytes.fromhex("12340803") + bytes(100)))
    with pytest.raises(DataError, match=f"^{path}: bad magic number 0x12340803"):
        read_idx(path)
