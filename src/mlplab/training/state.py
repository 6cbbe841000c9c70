"""A run's state, saved and loaded: tensors to safetensors, everything else to JSON.

TrainState is the loop's own bookkeeping: the iteration, the running totals, the last
evaluation and the records so far. The Trainer's state_dict() nests it with the engine's
weights and optimizer buffers, the sampler's position, every random stream and each
callback's state, and save_state writes that tree to a folder:

    state.json          the tree, with each tensor replaced by {"tensor": NAME}
    tensors.safetensors every tensor under its NAME

The folder is written under a temp name, fsynced and renamed, so a crash leaves the old
state or the new one. Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mlplab.errors import CheckpointError
from mlplab.io.atomic import atomic_write, fsync_dir, temp_beside
from mlplab.io.safetensors import decode_safetensors, encode_safetensors

STATE_FORMAT = "mlplab-train-state"
STATE_VERSION = 1
TREE = "state.json"
TENSORS = "tensors.safetensors"


@dataclass
class TrainState:
    """What the loop itself must remember to continue a run exactly.

    The running totals live on the training device as tensors, so that accounting for a
    step never waits for the device; records read them (a sync) and take differences.
    """

    loss_total: torch.Tensor  # sum over steps of batch loss * batch size
    correct_total: torch.Tensor  # training predictions that were right
    iteration: int = 0  # optimizer steps taken
    seen: int = 0  # training samples stepped on
    lr: float = 0.0  # the lr of the last step
    window: tuple[float, int] = (0.0, 0)  # (loss total, seen) at the last evaluation
    epoch_start: tuple[float, int, int] = (0.0, 0, 0)  # (loss, correct, seen) at epoch start
    last_eval: int = 0  # iteration of the last evaluation
    latest: dict[str, Any] = field(default_factory=dict)  # its val and test metrics, as dicts
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # training time before this process took over
    stop_reason: str | None = None
    stopped_early: bool = False

    @classmethod
    def start(cls, device: torch.device) -> TrainState:
        wide = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
        return cls(
            loss_total=torch.zeros((), dtype=wide, device=device),
            correct_total=torch.zeros((), dtype=torch.int64, device=device),
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "loss_total": self.loss_total.clone(),
            "correct_total": self.correct_total.clone(),
            "iteration": self.iteration,
            "seen": self.seen,
            "lr": self.lr,
            "window": list(self.window),
            "epoch_start": list(self.epoch_start),
            "last_eval": self.last_eval,
            "latest": self.latest,
            "records": self.records,
            "seconds": self.seconds,
            "stop_reason": self.stop_reason,
            "stopped_early": self.stopped_early,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss_total.copy_(state["loss_total"])
        self.correct_total.copy_(state["correct_total"])
        self.iteration, self.seen = int(state["iteration"]), int(state["seen"])
        self.lr = float(state["lr"])
        loss, seen = state["window"]
        self.window = (float(loss), int(seen))
        loss, correct, seen = state["epoch_start"]
        self.epoch_start = (float(loss), int(correct), int(seen))
        self.last_eval = int(state["last_eval"])
        self.latest = dict(state["latest"])
        self.records = [dict(r) for r in state["records"]]
        self.seconds = float(state["seconds"])
        self.stop_reason = state["stop_reason"]
        self.stopped_early = bool(state["stopped_early"])


def split_tensors(tree: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """The tree with each tensor moved into `tensors` (keyed by its path) and referenced."""
    if isinstance(tree, torch.Tensor):
        tensors[path] = tree.detach().cpu()
        return {"tensor": path}
    if isinstance(tree, dict):
        for key in tree:
            if not isinstance(key, str) or "/" in key:
                raise TypeError(f"state keys must be strings without '/', got {key!r}")
        return {k: split_tensors(v, tensors, f"{path}/{k}" if path else k) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [split_tensors(v, tensors, f"{path}/{i}") for i, v in enumerate(tree)]
    return tree


def join_tensors(tree: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """The inverse of split_tensors."""
    if isinstance(tree, dict):
        if tree.keys() == {"tensor"} and isinstance(tree["tensor"], str):
            if tree["tensor"] not in tensors:
                raise CheckpointError(
                    f"{where}: state refers to a missing tensor {tree['tensor']!r}"
                )
            return tensors[tree["tensor"]]
        return {k: join_tensors(v, tensors, where) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_tensors(v, tensors, where) for v in tree]
    return tree


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a state tree to the folder `path`, replacing what was there, atomically."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    tree = split_tensors(state, tensors)
    doc = {"format": STATE_FORMAT, "format_version": STATE_VERSION, "state": tree}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    tmp.mkdir()
    try:
        atomic_write(tmp / TENSORS, encode_safetensors(tensors, {}))
        atomic_write(tmp / TREE, (json.dumps(doc) + "\n").encode())
        old = None
        if path.exists():
            old = temp_beside(path)
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def load_state(path: str | Path) -> dict[str, Any]:
    """The state tree saved in the folder `path`; a missing or damaged state is named."""
    path = Path(path)
    try:
        doc = json.loads((path / TREE).read_text(encoding="utf-8"))
        data = (path / TENSORS).read_bytes()
    except OSError as e:
        raise CheckpointError(
            f"{path}: cannot read the training state: {e.strerror or e}"
        ) from None
    except ValueError as e:
        raise CheckpointError(f"{path / TREE}: corrupt training state: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path / TREE}: not an mlplab training state")
    if doc.get("format_version") != STATE_VERSION:
        raise CheckpointError(
            f"{path / TREE}: state format version {doc.get('format_version')!r}; "
            f"this mlplab reads version {STATE_VERSION}"
        )
    tensors, _ = decode_safetensors(data, str(path / TENSORS))
    return join_tensors(doc["state"], tensors, str(path))
