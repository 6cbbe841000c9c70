"""The IDX file format of MNIST-family datasets: strict parsing and writing.

An IDX file is: two zero bytes, a dtype code, the number of dimensions, one big-endian uint32
per dimension, then the values. mlplab reads uint8 data only (all MNIST-family files are),
and checks that the length matches the header exactly: a truncated or padded file is an
error, never a silent reshape.
"""

from __future__ import annotations

import gzip
import hashlib
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
_DTYPE_NAMES = {
    0x08: "uint8",
    0x09: "int8",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's content, decompressed when it is gzip (by its magic bytes, not its name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    return gunzip(raw, str(path))


def gunzip(raw: bytes, name: str) -> bytes:
    """Decompress gzip bytes; bytes without the gzip magic are returned as they are."""
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{name}: corrupt gzip data: {e}") from None


def parse_idx(data: bytes, name: str = "<bytes>") -> torch.Tensor:
    """Parse uncompressed IDX bytes into a uint8 tensor, checking the header against the length."""
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


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an IDX file, gzip or raw, into a uint8 tensor."""
    return parse_idx(read_bytes(path), str(path))


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
