"""Run by test_memory_bounds.py: each parser on its worst input, under RLIMIT_AS.

    python bounded_child.py HEADROOM_MIB

Imports what the parsers need, then caps this process's address space at what it uses now
plus HEADROOM_MIB, and prints one JSON line per case: "error" (an MlplabError, its message),
"ok", "MemoryError", or "other" (any other exception). A control case that allocates past the
cap must end in MemoryError: it shows the cap is real.
"""

from __future__ import annotations

import gzip
import json
import resource
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image  # imported before the cap, as a server has it

from mlplab.data.idx import read_idx
from mlplab.errors import MlplabError
from mlplab.io.safetensors import decode_safetensors
from mlplab.io.states import load_state, tree_digest
from mlplab.serve.parsing import form_file, parse_pixels, parse_request
from mlplab.use.predict import open_image, preprocess

MIB = 1 << 20


def vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def gzip_bomb(total: int, claim: int) -> bytes:
    """A gzip stream that inflates to `total` zero bytes (members repeated), behind an IDX
    header that claims `claim` of them."""
    dims = (claim // (28 * 28), 28, 28)
    header = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", *dims)
    member = gzip.compress(b"\0" * (64 * MIB), compresslevel=9)
    return gzip.compress(header) + member * (total // (64 * MIB))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def safetensors_claiming(shape: list[int]) -> bytes:
    head = json.dumps({"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(head)) + head + b"\0" * 4


def cases(folder: Path) -> dict:
    idx = folder / "bomb-idx3-ubyte.gz"
    idx.write_bytes(gzip_bomb(2048 * MIB, 2048 * MIB))
    within = folder / "within-idx3-ubyte.gz"
    within.write_bytes(gzip_bomb(2048 * MIB, 250 * MIB))
    jpeg = folder / "big.jpg"
    Image.new("L", (64, 64)).save(jpeg, "JPEG")
    data = bytearray(jpeg.read_bytes())
    at = data.index(b"\xff\xc0") + 5  # SOF0: precision, then height and width
    data[at : at + 4] = struct.pack(">HH", 65000, 65000)
    jpeg.write_bytes(bytes(data))
    state = folder / "000000001"
    state.mkdir()
    (state / "state.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    (state / "tensors.safetensors").write_bytes(b"")
    deep = folder / "000000002"
    deep.mkdir()
    tree = {"format": "mlplab-train-state", "format_version": 2, "state": {"a": 1}}
    tree["tensors"] = {"bytes": 1 << 62, "sha256": "0" * 64}
    tree["state_sha256"] = tree_digest(tree)  # right, so that the size is what is tested
    (deep / "state.json").write_text(json.dumps(tree))
    (deep / "tensors.safetensors").write_bytes(safetensors_claiming([1 << 40]))
    boundary = b"b"
    many = b"".join(
        b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(30_000)
    )
    return {
        "control: 2 GiB past the cap": lambda: bytearray(2048 * MIB),
        "IDX: gzip bomb of 2 GiB behind a header claiming it": lambda: read_idx(idx),
        "IDX: gzip bomb of 2 GiB behind a header claiming 250 MiB": lambda: read_idx(within),
        "JPEG: 65000x65000 declared": lambda: preprocess(open_image(jpeg)),
        "safetensors: a shape of 2^40 floats": lambda: decode_safetensors(
            safetensors_claiming([1 << 40]), "w.safetensors"
        ),
        "safetensors: a header length of 2^62": lambda: decode_safetensors(
            struct.pack("<Q", 1 << 62) + b"{}", "w.safetensors"
        ),
        "PNG: 60000x60000 declared": lambda: preprocess(
            open_image(png_header(60000, 60000), "bomb.png")
        ),
        "PNG in a request: 4096x4096 declared": lambda: parse_request(
            "image/png", png_header(4096, 4096)
        ),
        "JSON: nested 1,000,000 deep": lambda: parse_pixels(b"[" * 1_000_000 + b"]" * 1_000_000),
        "JSON: 1024 rows of 784 pixels": lambda: parse_pixels(
            json.dumps({"pixels": [[0.5] * 784] * 1024}).encode()
        ),
        "multipart: 30,000 parts": lambda: form_file(
            "multipart/form-data; boundary=" + boundary.decode(), many + b"--b--\r\n"
        ),
        "state: state.json nested 200,000 deep": lambda: load_state(state),
        "state: tensors claiming 2^62 bytes": lambda: load_state(deep),
    }


def main() -> None:
    headroom = int(sys.argv[1]) * MIB
    torch.set_num_threads(1)  # no thread pools to start under the cap
    np.zeros(1)
    with tempfile.TemporaryDirectory() as tmp:
        todo = cases(Path(tmp))
        cap = vm_size() + headroom
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        for name, case in todo.items():
            try:
                case()
                outcome, detail = "ok", ""
            except MlplabError as e:
                outcome, detail = "error", str(e)
            except MemoryError:
                outcome, detail = "MemoryError", ""
            except BaseException as e:  # noqa: BLE001 - what else escaped is the finding
                outcome, detail = "other", f"{type(e).__name__}: {e}"[:300]
            print(json.dumps({"case": name, "outcome": outcome, "detail": detail}), flush=True)


if __name__ == "__main__":
    main()
