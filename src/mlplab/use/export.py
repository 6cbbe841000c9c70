"""Export a checkpoint to ONNX or TorchScript, and run an exported ONNX model without torch.

Both formats take float32 images (batch, 1, 28, 28), already normalised, with a dynamic batch
axis, and return `logits` (batch, classes). The class names and the normalisation travel in
the file's metadata (ONNX metadata_props; TorchScript extra file `mlplab.json`). Both are
built in memory and written with atomic_write, like every file mlplab writes: permissions
follow the umask, and a full disk leaves no half-written model.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from mlplab.errors import MlplabError
from mlplab.io.atomic import atomic_write

if TYPE_CHECKING:
    from mlplab.io.checkpoint import Checkpoint

FORMATS = ("onnx", "torchscript")
EXTENSIONS = {"onnx": ".onnx", "torchscript": ".pt"}
INPUT, OUTPUT = "image", "logits"


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
    for key, value in _metadata(ckpt).items():
        proto.metadata_props.add(key=key, value=value)
    return atomic_write(path, proto.SerializeToString())


def export_torchscript(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write a TorchScript module with mlplab.json as an extra file; atomic."""
    import torch

    model = ckpt.model.cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(model, torch.zeros(2, 1, 28, 28))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer, _extra_files={"mlplab.json": json.dumps(_metadata(ckpt))})
    return atomic_write(path, buffer.getbuffer())


def export(ckpt: Checkpoint, fmt: str, path: str | Path | None = None) -> Path:
    """Export to `fmt` (onnx or torchscript); the default path sits beside the checkpoint."""
    if fmt not in FORMATS:
        raise MlplabError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    path = Path(path) if path else ckpt.path.with_suffix(EXTENSIONS[fmt])
    return (export_onnx if fmt == "onnx" else export_torchscript)(ckpt, path)


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
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MlplabError(f"{self.path}: not a loadable ONNX model: {first}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.classes = json.loads(meta["classes"])
            norm = json.loads(meta["normalization"])
            self.mean, self.std = float(norm["mean"]), float(norm["std"])
            self.info = json.loads(meta.get("mlplab", "{}"))
        except (KeyError, ValueError, TypeError):
            raise MlplabError(
                f"{self.path}: ONNX model has no mlplab metadata (classes, normalization)"
            ) from None

    def __call__(self, x):
        """x: array-like (B, 1, 28, 28) or (B, 784), normalised -> logits as a numpy array."""
        import numpy as np

        x = np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28)
        return self.session.run([OUTPUT], {INPUT: x})[0]
