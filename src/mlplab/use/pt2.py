"""What a .pt2 file must hold before torch.export.load may read it.

torch.export.load (torch 2.13) runs code that the file brings, and not only through pickle:

- each symbolic size in the graph's JSON (`expr_str`) goes through sympy.sympify, which is
  eval: `__import__('os')...` there runs while the file loads;
- the example inputs (`data/sample_inputs/model.pt`) are unpickled with weights_only=False
  when the weights_only load fails;
- weights and constants marked `use_pickle` go through torch.load(weights_only=False), opaque
  constants through pickle.loads, torchbind objects through torch's own unpickler;
- an AOTInductor package (`data/aotinductor/`) holds a shared library that it loads;
- ExportedProgram.module() execs the file's `guards_code`.

So mlplab reads a .pt2 only when it holds what mlplab's own export writes, checked here
before torch sees it: the archive's usual files, raw (unpickled) weights, no constants,
example inputs that a weights_only load reads, aten operators only, sizes that are plain
symbols, and no guards code. The JSON graph itself is then torch's to read.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

from mlplab.errors import MlplabError

FILES = {
    "archive_format",
    "archive_version",
    "byteorder",
    ".data/version",
    ".data/serialization_id",
    "models/model.json",
    "data/weights/model_weights_config.json",
    "data/constants/model_constants_config.json",
    "data/sample_inputs/model.pt",
}
WEIGHT = re.compile(r"data/weights/weight_\d+")
EXTRA = re.compile(r"extra/[\w.-]+")  # torch reads these as text, nothing more
OPERATOR = re.compile(r"torch\.ops\.aten\.\w+\.\w+")
# How torch writes a dynamic size; sympify evaluates it, so nothing else may pass.
SYMBOL = re.compile(r"Symbol\('[a-z]+\d+'(, [a-z_]+=(True|False))*\)")


class Refused(MlplabError):
    """A .pt2 file that holds something torch.export.load would run or unpickle."""


def check(data: bytes, name: str) -> dict[str, bytes]:
    """Refuse a .pt2 that is not a whole zip archive of mlplab's kind; returns its files
    (by name, without the archive's top folder)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            # torch stores every file uncompressed: reading one costs no more than its size
            if any(i.compress_type != zipfile.ZIP_STORED for i in infos):
                raise Refused(f"{name}: refused: holds compressed files, which torch never writes")
            files = {i.filename: archive.read(i) for i in infos}  # checks each CRC
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as e:
        why = "not a zip archive (cut short, or not a .pt2 file)"
        raise _not_pt2(name, why if str(e) == "File is not a zip file" else str(e)) from None
    tops = {n.split("/", 1)[0] for n in files}
    if len(tops) != 1 or any("/" not in n for n in files):
        raise _not_pt2(name, "its files are not in one archive folder")
    if len(files) != len(infos):  # which copy torch would read is not ours to guess
        raise Refused(f"{name}: refused: holds two files of the same name")
    files = {n.split("/", 1)[1]: v for n, v in files.items()}
    odd = sorted(n for n in files if not _expected(n))
    if odd:
        raise Refused(f"{name}: refused: holds {odd[0]!r}, which mlplab's export never writes")
    missing = sorted(FILES - set(files))
    if missing:
        raise _not_pt2(name, f"it has no {missing[0]}")
    _check_payloads(files, name)
    _check_graph(_json(files, "models/model.json", name), name)
    _check_example_inputs(files["data/sample_inputs/model.pt"], name)
    return files


def _not_pt2(name: str, why: str) -> MlplabError:
    return MlplabError(f"{name}: not a loadable torch.export program: {why}")


def _expected(name: str) -> bool:
    return name in FILES or bool(WEIGHT.fullmatch(name) or EXTRA.fullmatch(name))


def _json(files: dict[str, bytes], key: str, name: str) -> dict:
    try:
        value = json.loads(files[key])
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise _not_pt2(name, f"{key} is not a JSON object")
    return value


def _check_payloads(files: dict[str, bytes], name: str) -> None:
    """Weights are raw bytes, never pickled; there are no constants."""
    weights = _json(files, "data/weights/model_weights_config.json", name).get("config")
    if not isinstance(weights, dict):
        raise _not_pt2(name, "its weights have no config")
    for fqn, meta in weights.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise Refused(f"{name}: refused: weight {fqn!r} is pickled")
    constants = _json(files, "data/constants/model_constants_config.json", name)
    if constants.get("config"):
        raise Refused(f"{name}: refused: holds constants, which torch may unpickle")


def _check_graph(model, name: str) -> None:
    """aten operators, plain symbolic sizes, no custom objects and no guards code."""
    if model.get("guards_code"):
        raise Refused(f"{name}: refused: holds guards code, which torch would exec")
    for key, value in _items(model):
        if key in ("target", "as_operator") and not (
            isinstance(value, str) and OPERATOR.fullmatch(value)
        ):
            raise Refused(f"{name}: refused: operator {str(value)[:60]!r} is not an aten op")
        if key == "expr_str" and not (isinstance(value, str) and SYMBOL.fullmatch(value)):
            raise Refused(f"{name}: refused: size {str(value)[:60]!r}, which torch would eval")
        if key in ("as_custom_obj", "custom_obj_values", "as_graph") and value:
            raise Refused(f"{name}: refused: holds {key}, which mlplab's export never writes")


def _items(node):
    """Every (key, value) pair in a JSON document, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _items(value)
    elif isinstance(node, list):
        for value in node:
            yield from _items(value)


def _check_example_inputs(blob: bytes, name: str) -> None:
    """torch falls back to weights_only=False when this fails: refuse the file instead."""
    if not blob:
        return
    import torch

    try:
        torch.load(io.BytesIO(blob), weights_only=True)
    except Exception:
        raise Refused(
            f"{name}: refused: its example inputs are not plain tensors "
            "(torch would unpickle them with weights_only=False)"
        ) from None
