"""Training states on disk: one folder per state, tensors to safetensors, the rest to JSON.

    state.json          the tree, each tensor replaced by {"tensor": NAME}, its own sha256,
                        and the size and sha256 of tensors.safetensors
    tensors.safetensors every tensor under its NAME

A state folder is written under a temp name, its files fsynced, then renamed into place and
its parent fsynced: a crash at any instant leaves the old state or the new one. A state
that was damaged afterwards (a truncated file, a bad header, a changed byte in either file)
fails to load with an error that names the file, so it is never taken for a valid one. A run keeps
its states in RUN/state/<iteration>/, the newest few; `newest_state` falls back past damaged
ones. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from mlplab.errors import CheckpointError, MlplabWarning
from mlplab.io.atomic import atomic_write, fsync_dir, naming, temp_beside
from mlplab.io.safetensors import decode_safetensors, safetensors_parts

STATE_FORMAT = "mlplab-train-state"
STATE_VERSION = 2  # 2: state.json carries the sha256 of its tree; 1 (no such sum) still loads
READABLE_VERSIONS = (1, 2)
TREE = "state.json"
TENSORS = "tensors.safetensors"
DIGITS = 9  # RUN/state/000001200/: names sort as numbers


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
                raise CheckpointError(f"{where}: refers to a missing tensor {tree['tensor']!r}")
            return tensors[tree["tensor"]]
        return {k: join_tensors(v, tensors, where) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_tensors(v, tensors, where) for v in tree]
    return tree


def _document(state: dict[str, Any]) -> tuple[dict[str, Any], list]:
    """state.json's document and the safetensors pieces of a state tree."""
    tensors: dict[str, torch.Tensor] = {}
    tree = split_tensors(state, tensors)
    parts = safetensors_parts(tensors, {})
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    doc = {
        "format": STATE_FORMAT,
        "format_version": STATE_VERSION,
        "tensors": {"bytes": sum(len(part) for part in parts), "sha256": digest.hexdigest()},
        "state": tree,
    }
    doc["state_sha256"] = tree_digest(doc)
    return doc, parts


def tree_digest(doc: dict[str, Any]) -> str:
    """The sha256 of the canonical JSON (sorted keys, no spaces) of a state document's tree
    and tensor record: what state.json says must still be what it holds, whatever the
    file's layout."""
    content = {"state": doc.get("state"), "tensors": doc.get("tensors")}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a state tree to the folder `path`, replacing what was there, atomically.

    A failure (a full disk, a read-only folder) raises an OSError naming `path` and leaves
    the old state, if any, where it was, and no temp folder.
    """
    path = Path(path)
    doc, parts = _document(state)
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_beside(path)
        tmp.mkdir()
        try:
            atomic_write(tmp / TENSORS, parts)
            atomic_write(tmp / TREE, (json.dumps(doc) + "\n").encode())
            old = _swap_in(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _swap_in(tmp: Path, path: Path) -> Path | None:
    """Rename the folder tmp onto path (a folder cannot replace a non-empty one in one
    rename, so the old one steps aside first, and back should the second rename fail);
    returns where the old one went."""
    old = None
    if path.exists():
        old = temp_beside(path)
        os.replace(path, old)
    try:
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        if old is not None and not path.exists():
            os.replace(old, path)
        raise
    return old


def encode_state(state: dict[str, Any]) -> bytes:
    """A state tree as one blob (the JSON's length, the JSON, the safetensors bytes), to send
    to other processes; decode_state checks it as load_state checks a folder."""
    doc, parts = _document(state)
    head = json.dumps(doc).encode()
    return b"".join([len(head).to_bytes(8, "little"), head, *parts])


def decode_state(blob: bytes, name: str = "<state>") -> dict[str, Any]:
    size = int.from_bytes(blob[:8], "little")
    try:
        doc = json.loads(blob[8 : 8 + size])
    except ValueError as e:
        raise CheckpointError(f"{name}: corrupt training state: {e}") from None
    except RecursionError:
        raise CheckpointError(f"{name}: corrupt training state: nested too deeply") from None
    return _check_and_join(_checked(doc, name), blob[8 + size :], name, name)


def load_state(path: str | Path) -> dict[str, Any]:
    """The state tree saved in the folder `path`; a missing or damaged state is named."""
    path = Path(path)
    doc = _read_tree(path / TREE)
    try:
        data = (path / TENSORS).read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path / TENSORS}: cannot read: {e.strerror or e}") from None
    return _check_and_join(doc, data, str(path / TREE), str(path / TENSORS))


def _check_and_join(doc: dict, data: bytes, tree_name: str, tensors_name: str) -> dict:
    """The tree of a state document, its tensors checked against the size and checksum."""
    expected = doc.get("tensors")
    if not isinstance(expected, dict):
        raise CheckpointError(f"{tree_name}: corrupt training state: no tensor checksum")
    if len(data) != expected.get("bytes"):
        raise CheckpointError(
            f"{tensors_name}: truncated or padded: {len(data)} bytes, "
            f"the state says {expected.get('bytes')}"
        )
    if hashlib.sha256(data).hexdigest() != expected.get("sha256"):
        raise CheckpointError(f"{tensors_name}: checksum mismatch: the file is damaged")
    tensors, _ = decode_safetensors(data, tensors_name)
    return join_tensors(doc["state"], tensors, tree_name)


def _read_tree(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CheckpointError(
            f"{path}: cannot read the training state: {e.strerror or e}"
        ) from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise CheckpointError(f"{path}: corrupt training state: {e}") from None
    except RecursionError:  # [[[[...]]]] nested deeper than the interpreter's stack
        raise CheckpointError(f"{path}: corrupt training state: nested too deeply") from None
    return _checked(doc, str(path))


def _checked(doc: Any, name: str) -> dict[str, Any]:
    """The document of a state, checked to be one this mlplab reads."""
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{name}: not an mlplab training state")
    version = doc.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{name}: state format version {version!r}; "
            f"this mlplab reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    if not isinstance(doc.get("state"), dict):
        raise CheckpointError(f"{name}: corrupt training state: no state")
    if version >= 2 and doc.get("state_sha256") != tree_digest(doc):
        raise CheckpointError(f"{name}: checksum mismatch: the training state was changed")
    return doc


def state_summary(path: str | Path) -> dict[str, Any]:
    """The iteration and training seconds of a saved state, from its JSON alone (fast; the
    tensors are not read or checked)."""
    loop = _read_tree(Path(path) / TREE)["state"].get("loop", {})
    return {"iteration": loop.get("iteration"), "seconds": loop.get("seconds")}


def state_path(folder: str | Path, iteration: int) -> Path:
    """Where the state at `iteration` lives in a run's state folder."""
    return Path(folder) / f"{iteration:0{DIGITS}d}"


def list_states(folder: str | Path) -> list[Path]:
    """The state folders in `folder`, oldest first (temp folders of interrupted writes are
    not states)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(found, key=lambda p: int(p.name))


def prune_states(folder: str | Path, keep: int) -> None:
    """Delete all but the newest `keep` states, and what interrupted writes left behind."""
    folder = Path(folder)
    for old in list_states(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in folder.glob(".*.part"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def newest_state(folder: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest state in `folder` that loads, or None when there is none at all.

    A damaged state is skipped with a warning (MlplabWarning) that names its file; when
    every state is damaged, the newest one's error is raised.
    """
    states = list_states(folder)
    problems = []
    for path in reversed(states):
        try:
            return path, load_state(path)
        except CheckpointError as e:
            problems.append(e)
            warnings.warn(f"{e}; trying the state before it", MlplabWarning, stacklevel=2)
    if problems:
        raise CheckpointError(f"no valid training state in {folder}: {problems[0]}")
    return None
