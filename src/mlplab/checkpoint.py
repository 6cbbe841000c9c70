"""Checkpoints and run directories. Nothing here unpickles.

Weights are stored in the safetensors format (an 8-byte header length, a JSON header, raw
little-endian tensor bytes), written and read by the few lines below so that the core needs no
extra dependency; the tests check files against the `safetensors` package both ways. The
header's metadata carries model.json, so model.safetensors alone is enough to predict.
"""

from __future__ import annotations

import json
import math
import platform
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mlplab.data import Normalization
from mlplab.errors import CheckpointError, MlplabError
from mlplab.idx import atomic_write
from mlplab.models import MLP, build_model

FORMAT = "mlplab-mlp"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
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
    header: dict[str, Any] = {"__metadata__": metadata}
    chunks, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _DTYPES:
            raise CheckpointError(f"tensor {name!r}: dtype {t.dtype} cannot be saved")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {
            "dtype": _DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


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
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{name}: corrupt safetensors header: metadata is not str -> str")
    body = memoryview(data)[8 + n :]
    tensors, end = {}, 0
    # (begin, stop): an empty tensor sharing its begin with a full one comes first.
    for key, entry in sorted(header.items(), key=lambda kv: _offsets(kv, name)):
        begin, stop = _offsets((key, entry), name)
        code, shape = entry.get("dtype"), entry.get("shape")
        dtype = _FROM_CODE.get(code) if isinstance(code, str) else None
        if dtype is None or not isinstance(shape, list) or not all(_is_size(s) for s in shape):
            raise CheckpointError(f"{name}: tensor {key!r} has a bad dtype or shape")
        size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        if begin != end or stop - begin != size or stop > len(body):
            raise CheckpointError(
                f"{name}: tensor {key!r} has bad offsets {[begin, stop]} "
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
        raise CheckpointError(f"{name}: tensor {key!r} has no valid data_offsets")
    return offsets[0], offsets[1]


def _is_size(value: Any) -> bool:
    # JSON true/false arrive as bool, which is an int subclass.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def versions() -> dict[str, str]:
    from mlplab import __version__

    return {"mlplab": __version__, "torch": torch.__version__, "python": platform.python_version()}


def model_info(
    model: MLP, dataset: str, classes: tuple[str, ...], norm: Normalization, **extra: Any
) -> dict[str, Any]:
    """What a checkpoint says of itself: enough to rebuild, normalise and name the classes."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": str(model.spec),
        "dataset": dataset,
        "classes": list(classes),
        "normalization": {"mean": norm.mean, "std": norm.std},
        **extra,
        "versions": versions(),
    }


def save_checkpoint(path: str | Path, model: MLP, info: dict[str, Any]) -> Path:
    """Write weights plus info to a .safetensors file, atomically; returns the path."""
    path = Path(path)
    data = encode_safetensors(model.state_dict(), {"mlplab": json.dumps(info)})
    atomic_write(path, data)
    return path


@dataclass(frozen=True)
class Checkpoint:
    """A loaded model with what its checkpoint says about it."""

    model: MLP
    info: dict[str, Any]
    path: Path

    @property
    def norm(self) -> Normalization:
        n = self.info["normalization"]
        return Normalization(float(n["mean"]), float(n["std"]))

    @property
    def classes(self) -> list[str]:
        return list(self.info["classes"])


def weights_path(path: str | Path) -> Path:
    """A run directory or a .safetensors file -> the weights file, which must exist."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint (give a run directory or its {WEIGHTS})")
    return path


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Load a checkpoint (a run directory or its model.safetensors) into an eval-mode model."""
    path = weights_path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror or e}") from None
    tensors, metadata = decode_safetensors(data, str(path))
    try:
        info = json.loads(metadata["mlplab"])
        if not isinstance(info, dict):
            raise ValueError("the mlplab metadata is not a JSON object")
        if info.get("format") != FORMAT:
            raise ValueError(f"format is {info.get('format')!r}, expected {FORMAT!r}")
        if not isinstance(info["spec"], str):
            raise ValueError(f"spec is {info['spec']!r}, expected text")
        model = build_model(info["spec"])
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as e:
            # The first line only says "Error(s) in loading state_dict"; the next one says what.
            lines = [line.strip() for line in str(e).splitlines() if line.strip()] or ["?"]
            raise ValueError(
                f"spec {info['spec']!r} does not match the tensors: {lines[min(1, len(lines) - 1)]}"
            ) from None
        Normalization(float(info["normalization"]["mean"]), float(info["normalization"]["std"]))
    except KeyError as e:
        raise CheckpointError(f"{path}: not an mlplab checkpoint (missing {e})") from None
    except (ValueError, TypeError, RuntimeError, MlplabError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path}: not a usable mlplab checkpoint: {first}") from None
    return Checkpoint(model.to(device).eval(), info, path)
