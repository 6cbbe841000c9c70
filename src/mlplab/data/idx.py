"""The IDX file format of MNIST-family datasets: strict parsing and writing.

An IDX file is: two zero bytes, a dtype code, the number of dimensions, one big-endian uint32
per dimension, then the values. mlplab reads uint8 data only (all MNIST-family files are),
and checks that the length matches the header exactly: a truncated or padded file is an
error, never a silent reshape. Nothing is allocated beyond what the header claims and the
file holds, and no file is read past MAX_BYTES: a gzip bomb or a header claiming 2^31 x 2^31
values fails before memory is spent on it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from mlplab.errors import DataError
from mlplab.io.atomic import atomic_write

GZIP_MAGIC = b"\x1f\x8b"
UINT8 = 0x08
# 20x the largest MNIST-family file (train images, 47 MB): room for larger IDX datasets,
# small enough that a hostile file cannot exhaust memory.
MAX_BYTES = 256 << 20  # 5x the largest MNIST-family file (47 MB): a parse peaks near twice it
_CHUNK = 1 << 20
_DTYPE_NAMES = {
    0x08: "uint8",
    0x09: "int8",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}


def read_bytes(path: str | os.PathLike, limit: int = MAX_BYTES) -> bytes:
    """The file's content, decompressed when it is gzip (by its magic bytes, not its name)."""
    return gunzip(_read_raw(path, limit), str(path), limit)


def _read_raw(path: str | os.PathLike, limit: int) -> bytes:
    path = Path(path)
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size > limit:
                raise DataError(f"{path}: file is larger than the {_size(limit)} limit")
            # read() sizes its buffer by the file; read(limit + 1) would allocate the limit
            raw = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    if len(raw) > limit:  # it grew while being read
        raise DataError(f"{path}: file is larger than the {_size(limit)} limit")
    return raw


def gunzip(raw: bytes, name: str, limit: int = MAX_BYTES) -> bytes:
    """Decompress gzip bytes, at most `limit` of them; bytes without the gzip magic are
    returned as they are."""
    if raw[:2] != GZIP_MAGIC:
        return raw
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
        data = _read_gzip(stream, limit + 1, name)
    if len(data) > limit:
        raise DataError(f"{name}: gzip data decompresses to more than {_size(limit)}")
    return data


def _read_gzip(stream: gzip.GzipFile, n: int, name: str) -> bytes:
    """Up to n decompressed bytes (fewer only at the end of the data), in chunks: one
    read(n) would allocate n bytes up front, however little the stream holds."""
    chunks, total = [], 0
    try:
        while total < n:
            chunk = stream.read(min(n - total, _CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{name}: corrupt gzip data: {e}") from None
    return b"".join(chunks)


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} bytes"


def parse_idx(data: bytes, name: str = "<bytes>") -> torch.Tensor:
    """Parse uncompressed IDX bytes into a uint8 tensor, checking the header against the length."""
    header, dims = parse_header(data, name)
    # Python ints: a crafted header's product overflows int64 (65536**4 wraps to 0).
    expected = header + math.prod(dims)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(
            f"{name}: {what}: dimensions {'x'.join(map(str, dims))} need "
            f"{expected} bytes, file has {len(data)}"
        )
    values = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    return torch.from_numpy(values.copy())


def parse_header(data: bytes, name: str = "<bytes>") -> tuple[int, tuple[int, ...]]:
    """The header's length in bytes and its dimensions, from the first bytes of an IDX file.

    `data` may stop after the header: nothing here depends on the values that follow.
    """
    if len(data) < 4:
        raise DataError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise DataError(f"{name}: bad magic number 0x{data[:4].hex()}: not an IDX file")
    if code != UINT8:
        kind = _DTYPE_NAMES.get(code, "unknown")
        raise DataError(
            f"{name}: dtype code 0x{code:02x} ({kind}) is not supported; "
            "MNIST-family files are uint8 (0x08)"
        )
    if ndim == 0:
        raise DataError(f"{name}: header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{name}: truncated header: {ndim} dimensions need {header} bytes, file has {len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if 0 in dims[1:]:
        raise DataError(f"{name}: dimensions {dims} contain a zero")
    return header, dims


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an IDX file, gzip or raw, into a uint8 tensor."""
    raw = _read_raw(path, MAX_BYTES)
    if raw[:2] != GZIP_MAGIC:
        return parse_idx(raw, str(path))
    return parse_idx(_gunzip_idx(raw, str(path)), str(path))


def _gunzip_idx(raw: bytes, name: str) -> bytes:
    """Decompress an IDX file's header, then only as many bytes as it claims, plus one to
    tell a padded file: a bomb behind a small header costs nothing."""
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
        data = _read_gzip(stream, 4, name)
        ndim = data[3] if len(data) == 4 else 0
        data += _read_gzip(stream, 4 * ndim, name)
        header, dims = parse_header(data, name)
        expected = header + math.prod(dims)
        if expected > MAX_BYTES:
            raise DataError(
                f"{name}: dimensions {'x'.join(map(str, dims))} need {expected} bytes, "
                f"more than the {_size(MAX_BYTES)} limit"
            )
        data += _read_gzip(stream, expected + 1 - header, name)
    if len(data) > expected:
        raise DataError(
            f"{name}: has trailing bytes: dimensions {'x'.join(map(str, dims))} need "
            f"{expected} bytes, the decompressed file has more"
        )
    return data


def encode_idx(values: np.ndarray | torch.Tensor) -> bytes:
    """The IDX bytes of a uint8 array."""
    arr = np.asarray(values)
    if arr.dtype != np.uint8:
        raise ValueError(f"IDX writing supports uint8 only, got {arr.dtype}")
    if not 1 <= arr.ndim <= 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {arr.ndim}")
    header = struct.pack(">HBB", 0, UINT8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr).tobytes()


def write_idx(path: str | os.PathLike, values: np.ndarray | torch.Tensor) -> None:
    """Write a uint8 array as IDX, gzip-compressed when the name ends in .gz; atomic."""
    path = Path(path)
    data = encode_idx(values)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    atomic_write(path, data)


def md5(data: bytes) -> str:
    """Hex md5 of some bytes (the checksum torchvision and the dataset authors publish)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
