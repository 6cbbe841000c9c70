"""IDX parsing and writing: exact round trips, and an exact DataError for every corruption."""

from __future__ import annotations

import gzip
import os
import re
import struct

import numpy as np
import pytest
import torch

from mlplab.data.idx import encode_idx, md5, parse_idx, read_bytes, read_idx, write_idx
from mlplab.errors import DataError


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(50, 28, 28), dtype=np.uint8)


@pytest.fixture
def labels() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 10, size=50, dtype=np.uint8)


def idx_header(code: int, dims: tuple[int, ...]) -> bytes:
    return struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


def raises_for(path, problem: str):
    """pytest.raises for a DataError whose message is '<path>: <problem>...'."""
    return pytest.raises(DataError, match="^" + re.escape(f"{path}: {problem}"))


# Round trips


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("which", ["images", "labels"])
def test_round_trip_is_identical(tmp_path, images, labels, suffix, which):
    values = images if which == "images" else labels
    path = tmp_path / f"{which}-idx-ubyte{suffix}"
    write_idx(path, values)
    x = read_idx(path)
    assert x.dtype == torch.uint8
    assert tuple(x.shape) == values.shape
    assert torch.equal(x, torch.from_numpy(values))


def test_gz_suffix_compresses_and_raw_does_not(tmp_path, images):
    write_idx(tmp_path / "a.gz", images)
    write_idx(tmp_path / "a", images)
    raw, gz = (tmp_path / "a").read_bytes(), (tmp_path / "a.gz").read_bytes()
    assert raw == encode_idx(images)
    assert gz[:2] == b"\x1f\x8b" and gzip.decompress(gz) == raw
    # Same content, so the same uncompressed md5: that is what the registry checks.
    assert md5(read_bytes(tmp_path / "a.gz")) == md5(raw)


def test_compression_is_detected_by_magic_not_name(tmp_path, images):
    gz_named_raw = tmp_path / "images.gz"
    gz_named_raw.write_bytes(encode_idx(images))
    raw_named_gz = tmp_path / "images"
    raw_named_gz.write_bytes(gzip.compress(encode_idx(images)))
    assert torch.equal(read_idx(gz_named_raw), torch.from_numpy(images))
    assert torch.equal(read_idx(raw_named_gz), torch.from_numpy(images))


def test_encode_writes_the_documented_header(labels):
    data = encode_idx(labels)
    assert data[:8] == b"\x00\x00\x08\x01" + (50).to_bytes(4, "big")
    assert data[8:] == labels.tobytes()
    assert len(encode_idx(np.zeros((3, 28, 28), np.uint8))) == 4 + 3 * 4 + 3 * 28 * 28


def test_write_accepts_a_torch_tensor(tmp_path, images):
    write_idx(tmp_path / "t.gz", torch.from_numpy(images))
    assert torch.equal(read_idx(tmp_path / "t.gz"), torch.from_numpy(images))


@pytest.mark.parametrize(
    "values, message",
    [
        (np.zeros((2, 2), np.float32), "IDX writing supports uint8 only, got float32"),
        (np.zeros((2, 2), np.int64), "IDX writing supports uint8 only, got int64"),
        (np.uint8(3), "IDX needs 1 to 255 dimensions, got 0"),
    ],
)
def test_write_rejects_what_it_cannot_encode(tmp_path, values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        write_idx(tmp_path / "x", values)
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_and_honours_umask(tmp_path, images):
    old = os.umask(0o022)
    try:
        write_idx(tmp_path / "sub" / "x.gz", images)
    finally:
        os.umask(old)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.gz"]  # no .part left over
    assert (tmp_path / "sub" / "x.gz").stat().st_mode & 0o777 == 0o644


def test_write_replaces_an_existing_file(tmp_path, images, labels):
    path = tmp_path / "x"
    write_idx(path, images)
    write_idx(path, labels)
    assert torch.equal(read_idx(path), torch.from_numpy(labels))


# Corruption: each case names the file and the problem


def test_bad_magic_number(tmp_path, labels):
    path = tmp_path / "bad-magic"
    path.write_bytes(b"\x01\x02" + encode_idx(labels)[2:])
    with raises_for(path, "bad magic number 0x01020801: not an IDX file"):
        read_idx(path)


def test_a_png_is_not_an_idx_file(tmp_path):
    path = tmp_path / "digit.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with raises_for(path, "bad magic number 0x89504e47: not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize(
    "code, kind", [(0x09, "int8"), (0x0B, "int16"), (0x0D, "float32"), (0x42, "unknown")]
)
def test_unsupported_dtype_code(tmp_path, code, kind):
    path = tmp_path / "floats"
    path.write_bytes(idx_header(code, (2,)) + bytes(8))
    with raises_for(
        path,
        f"dtype code 0x{code:02x} ({kind}) is not supported; MNIST-family files are uint8 (0x08)",
    ):
        read_idx(path)


def test_zero_dimensions(tmp_path):
    path = tmp_path / "zero-dims"
    path.write_bytes(b"\x00\x00\x08\x00")
    with raises_for(path, "header declares 0 dimensions"):
        read_idx(path)


@pytest.mark.parametrize("size", [0, 3])
def test_too_short_for_a_header(tmp_path, size):
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00\x08"[:size])
    with raises_for(path, f"too short for an IDX header ({size} bytes)"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "short-header"
    path.write_bytes(idx_header(0x08, (50, 28, 28))[:10])
    with raises_for(path, "truncated header: 3 dimensions need 16 bytes, file has 10"):
        read_idx(path)


def test_zero_in_an_inner_dimension(tmp_path):
    path = tmp_path / "zero-width"
    path.write_bytes(idx_header(0x08, (3, 0, 28)))
    with raises_for(path, "dimensions (3, 0, 28) contain a zero"):
        read_idx(path)


def test_truncated_data(tmp_path, images):
    path = tmp_path / "truncated"
    path.write_bytes(encode_idx(images)[:-1])
    with raises_for(path, "truncated: dimensions 50x28x28 need 39216 bytes, file has 39215"):
        read_idx(path)


def test_trailing_bytes(tmp_path, images):
    path = tmp_path / "padded"
    path.write_bytes(encode_idx(images) + b"\x00")
    with raises_for(
        path, "has trailing bytes: dimensions 50x28x28 need 39216 bytes, file has 39217"
    ):
        read_idx(path)


def test_a_header_that_lies_about_the_shape_is_not_reshaped(tmp_path, images):
    # A reader that stopped after the header's count would quietly return half the images.
    path = tmp_path / "lies"
    path.write_bytes(idx_header(0x08, (25, 28, 28)) + images.tobytes())
    with raises_for(path, "has trailing bytes: dimensions 25x28x28 need 19616 bytes"):
        read_idx(path)


def test_dimensions_whose_product_overflows_int64(tmp_path):
    # 65536**4 == 2**64, which wraps to 0 in int64: the 20-byte file then looked complete
    # and numpy's reshape raised a bare ValueError.
    path = tmp_path / "huge"
    path.write_bytes(idx_header(0x08, (65536,) * 4))
    with raises_for(path, f"truncated: dimensions 65536x65536x65536x65536 need {20 + 2**64} bytes"):
        read_idx(path)


def test_truncated_data_inside_a_valid_gzip(tmp_path, images):
    path = tmp_path / "truncated.gz"
    path.write_bytes(gzip.compress(encode_idx(images)[:-784]))
    with raises_for(path, "truncated: dimensions 50x28x28 need 39216 bytes, file has 38432"):
        read_idx(path)


def test_corrupt_gzip_stream(tmp_path, images):
    gz = bytearray(gzip.compress(encode_idx(images), mtime=0))
    gz[len(gz) // 2] ^= 0xFF
    path = tmp_path / "flipped.gz"
    path.write_bytes(bytes(gz))
    with raises_for(path, "corrupt gzip data: "):
        read_idx(path)


def test_truncated_gzip(tmp_path, images):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(encode_idx(images))[:-100])
    with raises_for(path, "corrupt gzip data: Compressed file ended before the end-of-stream"):
        read_idx(path)


def test_gzip_with_a_bad_crc(tmp_path, labels):
    gz = bytearray(gzip.compress(encode_idx(labels)))
    gz[-8] ^= 0xFF  # the CRC32 in the trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(gz))
    with raises_for(path, "corrupt gzip data: CRC check failed"):
        read_idx(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope"
    with raises_for(path, "cannot read: No such file or directory"):
        read_idx(path)


def test_parse_idx_names_bytes_without_a_file():
    with pytest.raises(DataError, match=r"^<bytes>: header declares 0 dimensions$"):
        parse_idx(b"\x00\x00\x08\x00")
    with pytest.raises(DataError, match=r"^labels: too short"):
        parse_idx(b"", "labels")


def test_empty_first_dimension_is_an_empty_tensor():
    x = parse_idx(idx_header(0x08, (0, 28, 28)))
    assert x.shape == (0, 28, 28) and x.dtype == torch.uint8
