"""Export a checkpoint to ONNX, a torch.export program (.pt2) or TorchScript, and run an
exported ONNX model (without torch) or .pt2 program.

Every format takes float32 images (batch, 1, 28, 28), already normalised, with a dynamic batch
axis, and returns `logits` (batch, classes). The class names and the normalisation travel in
the file's metadata (ONNX metadata_props; the extra file `mlplab.json` of a .pt2 or a
TorchScript file, holding the same keys). Each is built in memory and written with
atomic_write, like every file mlplab writes: permissions follow the umask, and a full disk
leaves no half-written model. torch 2.13 deprecates TorchScript (torch.jit.save and load), so
exporting to it warns.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mlplab.errors import MlplabError, MlplabWarning
from mlplab.io.atomic import atomic_write
from mlplab.use import pt2

if TYPE_CHECKING:
    from mlplab.io.checkpoint import Checkpoint

FORMATS = ("onnx", "pt2", "torchscript")
EXTENSIONS = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt"}
INPUT, OUTPUT = "image", "logits"
METADATA_FILE = "mlplab.json"  # the extra file of a .pt2 or TorchScript export
TORCHSCRIPT_DEPRECATED = (
    "torchscript is deprecated: torch 2.13 deprecates torch.jit.save and torch.jit.load; "
    "use --format pt2 (torch.export) or --format onnx"
)


def _metadata(ckpt: Checkpoint) -> dict[str, str]:
    n = ckpt.norm
    return {
        "mlplab": json.dumps(ckpt.info),
        "classes": json.dumps(ckpt.classes),
        "normalization": json.dumps({"mean": n.mean, "std": n.std}),
        "spec": ckpt.info["spec"],
        "input": f"{INPUT}: float32 (batch, 1, 28, 28), pixels in [0, 1] then (p - mean) / std",
    }


def export_onnx(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write an ONNX model with a dynamic batch axis and mlplab's metadata; atomic."""
    try:
        import onnx  # noqa: F401 - torch's exporter needs it; say how to get it
    except ImportError:
        raise MlplabError(
            "ONNX export needs onnx and onnxscript: pip install 'mlplab[export]'"
        ) from None
    import torch

    model = ckpt.model.cpu().eval()
    example = torch.zeros(2, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (example,),
            None,  # in memory: the file is written once, whole, by atomic_write
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamo=True,
            verbose=False,
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1 << 20)},),
        )
    proto = program.model_proto
    for node in proto.graph.node:  # the exporter's stack traces name this machine's files
        kept = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    for key, value in _metadata(ckpt).items():
        proto.metadata_props.add(key=key, value=value)
    return atomic_write(path, proto.SerializeToString())


def export_pt2(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write a torch.export program with a dynamic batch axis and mlplab.json as an extra
    file; atomic."""
    import torch

    model = ckpt.model.cpu().eval()
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(
            model, (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: batch},)
        )
    for node in program.graph.nodes:
        node.meta.pop("stack_trace", None)  # this machine's source paths: of no use to readers
    buffer = io.BytesIO()
    extra = {METADATA_FILE: json.dumps(_metadata(ckpt))}
    torch.export.save(program, buffer, extra_files=extra)
    return atomic_write(path, buffer.getbuffer())


def export_torchscript(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write a TorchScript module with mlplab.json as an extra file; atomic. Deprecated, as
    torch deprecates TorchScript: warns (MlplabWarning), and torch's own warnings are hidden."""
    import torch

    warnings.warn(TORCHSCRIPT_DEPRECATED, MlplabWarning, stacklevel=2)
    model = ckpt.model.cpu().eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(model, torch.zeros(2, 1, 28, 28))
        extra = {METADATA_FILE: json.dumps(_metadata(ckpt))}
        torch.jit.save(scripted, buffer, _extra_files=extra)
    return atomic_write(path, buffer.getbuffer())


EXPORTERS = {"onnx": export_onnx, "pt2": export_pt2, "torchscript": export_torchscript}


def export(ckpt: Checkpoint, fmt: str, path: str | Path | None = None) -> Path:
    """Export to `fmt` (onnx, pt2 or torchscript); the default path sits beside the
    checkpoint."""
    if fmt not in FORMATS:
        raise MlplabError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    path = Path(path) if path else ckpt.path.with_suffix(EXTENSIONS[fmt])
    return EXPORTERS[fmt](ckpt, path)


def _read_metadata(meta: Mapping[str, str], path: Path, kind: str) -> tuple:
    """(classes, mean, std, info) from the metadata an export wrote."""
    try:
        classes = json.loads(meta["classes"])
        norm = json.loads(meta["normalization"])
        mean, std = float(norm["mean"]), float(norm["std"])
        info = json.loads(meta.get("mlplab", "{}"))
        if not (
            isinstance(classes, list)
            and classes
            and all(isinstance(c, str) for c in classes)
            and isinstance(info, dict)
            and math.isfinite(mean)
            and math.isfinite(std)
            and std > 0
        ):
            raise ValueError
        return classes, mean, std, info
    except (KeyError, ValueError, TypeError, OverflowError, RecursionError):
        raise MlplabError(
            f"{path}: {kind} has no mlplab metadata (classes, normalization)"
        ) from None


class OnnxModel:
    """An exported model run by onnxruntime: logits for normalised (B, 1, 28, 28) float32."""

    def __init__(self, path: str | Path):
        try:
            import onnxruntime
        except ImportError:
            raise MlplabError(
                "running ONNX models needs onnxruntime: pip install 'mlplab[export]'"
            ) from None
        self.path = Path(path)
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), providers=["CPUExecutionProvider"]
            )
        except Exception as e:
            raise MlplabError(f"{self.path}: not a loadable ONNX model: {_first_line(e)}") from None
        try:
            meta = self.session.get_modelmeta().custom_metadata_map
        except Exception as e:  # bytes that are not UTF-8, say
            raise MlplabError(f"{self.path}: unreadable ONNX metadata: {_first_line(e)}") from None
        self.classes, self.mean, self.std, self.info = _read_metadata(meta, self.path, "ONNX model")
        import numpy as np

        # a file that loads may still not be a classifier of these classes: run it once
        try:
            shape = tuple(self(np.zeros((2, 1, 28, 28), np.float32)).shape)
        except Exception as e:
            raise MlplabError(f"{self.path}: not a runnable ONNX model: {_first_line(e)}") from None
        if shape != (2, len(self.classes)):
            raise MlplabError(
                f"{self.path}: the ONNX model gives logits of shape {shape} for 2 images of "
                f"{len(self.classes)} classes"
            )

    def __call__(self, x):
        """x: array-like (B, 1, 28, 28) or (B, 784), normalised -> logits as a numpy array."""
        import numpy as np

        x = np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28)
        return self.session.run([OUTPUT], {INPUT: x})[0]


class Pt2Model:
    """An exported torch.export program: logits for normalised (B, 1, 28, 28) float32.

    The file is checked first (mlplab.use.pt2): torch.export.load runs code that a file
    brings, so only a .pt2 holding what mlplab's export writes is loaded.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise MlplabError(f"{self.path}: cannot read: {e.strerror or e}") from None
        files = pt2.check(data, str(self.path))
        try:
            meta = json.loads(files.get(f"extra/{METADATA_FILE}", b"{}"))
        except ValueError:
            meta = {}
        kind = "torch.export program"
        self.classes, self.mean, self.std, self.info = _read_metadata(meta, self.path, kind)
        import numpy as np
        import torch

        try:
            with _torch_log_kept() as records:
                self.module = torch.export.load(io.BytesIO(data)).module()
            shape = tuple(self(np.zeros((2, 1, 28, 28), np.float32)).shape)
        except Exception as e:
            # torch logs the cause (a traceback) and raises a generic error: name the cause
            causes = [r.exc_info[1] for r in records if r.exc_info and r.exc_info[1]]
            raise MlplabError(
                f"{self.path}: not a loadable {kind}: {_first_line(causes[-1] if causes else e)}"
            ) from None
        if shape != (2, len(self.classes)):
            raise MlplabError(
                f"{self.path}: {kind} gives logits of shape {shape} for 2 images, "
                f"not (2, {len(self.classes)})"
            )

    def __call__(self, x):
        """x: array-like (B, 1, 28, 28) or (B, 784), normalised -> logits as a numpy array."""
        import numpy as np
        import torch

        x = torch.from_numpy(np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28))
        with torch.inference_mode():
            return self.module(x).numpy()


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _torch_log_kept(name: str = "torch.export"):
    """The records torch.export logs inside the block, kept rather than printed (torch puts
    a handler of its own on the logger)."""
    logger, handler = logging.getLogger(name), _Records()
    saved = logger.handlers, logger.propagate
    logger.handlers, logger.propagate = [handler], False
    try:
        yield handler.records
    finally:
        logger.handlers, logger.propagate = saved


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
