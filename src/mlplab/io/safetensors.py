"""The safetensors format, read and written by the few lines below. Nothing here unpickles.

A file is an 8-byte little-endian header length, a JSON header (each tensor's dtype, shape
and byte offsets, plus string metadata), then the raw little-endian tensor bytes. The core
needs no extra dependency for it; tests/io check our files against the `safetensors`
package both ways, and the decoder checks every offset and size against the file.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import torch

from mlplab.errors import CheckpointError

MAX_HEADER = 100 * 1024 * 1024

_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_FROM_CODE = {code: dtype for dtype, code in _DTYPES.items()}


def encode_safetensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """The safetensors bytes of named tensors plus string metadata."""
    return b"".join(safetensors_parts(tensors, metadata))


def safetensors_parts(
    tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> list[bytes | memoryview]:
    """The same bytes as encode_safetensors, in pieces: the header, then a view of each
    tensor's memory, so that a writer copies each byte once (a state is megabytes)."""
    header: dict[str, Any] = {"__metadata__": metadata}
    chunks: list[bytes | memoryview] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _DTYPES:
            raise CheckpointError(f"tensor {name!r}: dtype {t.dtype} cannot be saved")
        data = memoryview(t.reshape(-1).view(torch.uint8).numpy()) if t.numel() else b""
        header[name] = {
            "dtype": _DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return [struct.pack("<Q", len(head)) + head, *chunks]


def decode_safetensors(
    data: bytes, name: str = "<bytes>"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Named tensors and metadata from safetensors bytes, every offset and size checked."""
    if len(data) < 8:
        raise CheckpointError(f"{name}: not a safetensors file (only {len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(MAX_HEADER, len(data) - 8):
        raise CheckpointError(
            f"{name}: not a safetensors file (header length {n} is impossible "
            f"for a {len(data)}-byte file)"
        )
    try:
        header = json.loads(data[8 : 8 + n])
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError included
        raise CheckpointError(f"{name}: corrupt safetensors header: {e}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: corrupt safetensors header: not a JSON object")
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata  # null is allowed, [] or 0 is not
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{name}: corrupt safetensors header: metadata is not str -> str")
    body = memoryview(data)[8 + n :]
    tensors, end = {}, 0
    # (begin, stop): an empty tensor sharing its begin with a full one comes first.
    for key, entry in sorted(header.items(), key=lambda kv: _offsets(kv, name)):
        begin, stop = _offsets((key, entry), name)
        code, shape = entry.get("dtype"), entry.get("shape")
        dtype = _FROM_CODE.get(code) if isinstance(code, str) else None
        if dtype is None or not _is_shape(shape):
            raise CheckpointError(f"{name}: tensor {_quote(key)} has a bad dtype or shape")
        size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        if begin != end or stop - begin != size or stop > len(body):
            raise CheckpointError(
                f"{name}: tensor {_quote(key)} has bad offsets {[begin, stop]} "
                f"(expected {size} bytes at {end}; data is {len(body)} bytes)"
            )
        raw = bytearray(body[begin:stop])
        t = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
        tensors[key] = t.view(dtype).reshape(shape)
        end = stop
    if end != len(body):
        raise CheckpointError(f"{name}: {len(body) - end} trailing bytes after the tensors")
    return tensors, metadata


def _offsets(item, name: str) -> tuple[int, int]:
    key, entry = item
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_size(o) for o in offsets)):
        raise CheckpointError(f"{name}: tensor {_quote(key)} has no valid data_offsets")
    return offsets[0], offsets[1]


def _is_size(value: Any) -> bool:
    # JSON true/false arrive as bool, which is an int subclass.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_shape(shape: Any) -> bool:
    # torch sizes are int64: with a zero among them, the other dimensions could be anything.
    return (
        isinstance(shape, list)
        and all(_is_size(s) for s in shape)
        and math.prod(s for s in shape if s) < 1 << 63
    )


def _quote(key: str) -> str:
    """repr of a tensor name, cut short: an error message stays one readable line."""
    return repr(key if len(key) <= 80 else key[:77] + "...")
