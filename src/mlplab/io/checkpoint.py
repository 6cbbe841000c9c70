"""Checkpoints: a model's weights plus what it says of itself, in one safetensors file.

The header's metadata carries model.json (spec, dataset, classes, normalisation, metrics,
versions), so model.safetensors alone is enough to rebuild the model and predict. Nothing
here unpickles.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mlplab.errors import CheckpointError, MlplabError
from mlplab.io.atomic import atomic_write
from mlplab.io.safetensors import decode_safetensors, encode_safetensors
from mlplab.nn.model import MLP, build_model
from mlplab.nn.normalization import Normalization
from mlplab.nn.spec import parse_spec

FORMAT = "mlplab-mlp"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
_SLACK = 1 << 20  # parameters a spec may claim beyond the file's values before building


def versions() -> dict[str, str]:
    from mlplab.version import __version__

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


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file's tensors and metadata; CheckpointError naming it if unreadable."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror or e}") from None
    return decode_safetensors(data, str(path))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Load a checkpoint (a run directory or its model.safetensors) into an eval-mode model."""
    path = weights_path(path)
    tensors, metadata = read_safetensors(path)
    try:
        info = json.loads(metadata["mlplab"])
        if not isinstance(info, dict):
            raise ValueError("the mlplab metadata is not a JSON object")
        if info.get("format") != FORMAT:
            raise ValueError(f"format is {info.get('format')!r}, expected {FORMAT!r}")
        if not isinstance(info["spec"], str):
            raise ValueError(f"spec is {info['spec']!r}, expected text")
        spec, held = parse_spec(info["spec"]), sum(t.numel() for t in tensors.values())
        # A spec can claim gigabytes that a small file does not hold: refused before building
        # (a small mismatch is left to load_state_dict, which names the layer).
        if spec.num_parameters > held + _SLACK:
            raise ValueError(
                f"spec {info['spec']!r} has {spec.num_parameters} parameters, "
                f"the file holds {held} values"
            )
        model = build_model(spec)
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
