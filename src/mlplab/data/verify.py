"""Checking a dataset's files in a folder: checksums first; when one fails, the strict IDX
parser says why (a bad magic number, a truncated body), then the shapes and counts, and only
then the checksum itself.

A folder is judged strictly or leniently. Strictly (a folder the user named), every copy of
every file counts: NAME and NAME.gz side by side must both be good, because mlplab cannot tell
which one the user meant. Leniently (the cache and the places mlplab looks on its own), the
copy that verifies is taken and a bad twin is passed over.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlplab.data.idx import GZIP_MAGIC, gunzip, md5, parse_idx
from mlplab.data.registry import IMAGE_SIDE, REGISTRY, DatasetInfo, FileInfo
from mlplab.errors import DataError

UNVERIFIABLE = "no checksum is known for the uncompressed file; use the .gz"
# 20x the largest MNIST-family file (47 MB): a bigger file is not one of them, and is not read.
MAX_FILE_BYTES = 1 << 30


def check_bytes(raw: bytes, info: FileInfo) -> str | None:
    """None when the bytes (gzip or raw) match the file's known checksum, else the problem."""
    if info.gz_md5 and raw[:2] == GZIP_MAGIC and md5(raw) == info.gz_md5:
        return None
    if info.md5 is None:
        if info.gz_md5 is None:
            return None
        if raw[:2] != GZIP_MAGIC:
            return UNVERIFIABLE
        return f"md5 of the .gz is {md5(raw)}, expected {info.gz_md5}"
    try:
        got = md5(gunzip(raw, info.name))
    except DataError as e:
        return str(e).split(": ", 1)[-1]
    return None if got == info.md5 else f"md5 of the content is {got}, expected {info.md5}"


def check_file(path: Path, info: FileInfo) -> str | None:
    """None when the file matches its known checksum, else what is wrong with it."""
    try:
        raw = read_raw(Path(path))
    except DataError as e:
        return str(e).split(": ", 1)[-1]
    return check_bytes(raw, info)


def read_raw(path: Path) -> bytes:
    """The file's bytes as they are on disk; DataError (naming it) when unreadable or larger
    than any dataset file."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DataError(f"{path}: {size} bytes is larger than any dataset file")
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None


def copies(folder: Path, info: FileInfo) -> list[Path]:
    """The copies of one file in a folder: NAME and NAME.gz, those that exist."""
    return [p for p in (folder / info.name, folder / f"{info.name}.gz") if p.is_file()]


@dataclass(frozen=True)
class Verdict:
    """What a folder holds of a dataset."""

    folder: Path
    files: dict[str, Path]  # role -> the verified copy to read
    missing: tuple[str, ...]  # roles with no copy at all
    problem: str | None  # the first bad file, named: "PATH: what is wrong"
    present: bool  # the folder holds a copy of at least one of the dataset's files

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.missing

    def why(self, ds: DatasetInfo) -> str:
        """Why the folder cannot be used as it is, in a few words."""
        if self.problem:
            return self.problem
        if not self.folder.is_dir():
            return "no such folder"
        if not self.present:
            return "none of the files"
        return " and ".join(f"{ds.files[r].name}[.gz] missing" for r in self.missing)


def inspect_folder(folder: Path, ds: DatasetInfo, strict: bool = False) -> Verdict:
    """Verify every copy of the dataset's four files in one folder (see the module's doc)."""
    found = {role: copies(folder, info) for role, info in ds.files.items()}
    files: dict[str, Path] = {}
    bad: dict[Path, tuple[str, str]] = {}
    for role, paths in found.items():
        for path in paths:
            problem = check_file(path, ds.files[role])
            if problem is None:
                files.setdefault(role, path)
            else:
                bad[path] = (role, problem)
    # A raw KMNIST file cannot be verified; beside its verified .gz (torchvision's layout)
    # it is harmless, and leniently any bad copy beside a good one is.
    bad = {
        p: (role, why)
        for p, (role, why) in bad.items()
        if role not in files or (strict and why != UNVERIFIABLE)
    }
    missing = tuple(role for role, paths in found.items() if not paths)
    problem = explain(bad, found, ds) if bad else None
    return Verdict(folder, files, missing, problem, any(found.values()))


def explain(bad: dict[Path, tuple[str, str]], found: dict[str, list[Path]], ds) -> str:
    """The most telling problem among the failing copies: what the IDX parser says, else a
    shape or count that cannot be this dataset's, else the checksum."""
    shapes: dict[Path, tuple[int, ...]] = {}
    for path, (role, _) in bad.items():
        try:
            shapes[path] = _shape(path, role, ds)
        except DataError as e:
            return str(e)
    for path, (role, _) in bad.items():
        problem = _shape_problem(path, role, shapes[path], found, ds)
        if problem:
            return problem
    path, (role, problem) = next(iter(bad.items()))
    return f"{path}: {problem}{_whose(path, ds)}"


def _shape(path: Path, role: str, ds: DatasetInfo) -> tuple[int, ...]:
    """The file's IDX shape; a parse error, or a label out of range, raises a DataError."""
    tensor = parse_idx(gunzip(read_raw(path), str(path)), str(path))
    labels = role.endswith("labels") and tensor.dim() == 1
    if labels and len(tensor) and int(tensor.max()) >= ds.num_classes:
        raise DataError(
            f"{path}: label {int(tensor.max())} is out of range for {ds.num_classes} classes"
        )
    return tuple(tensor.shape)


def _shape_problem(path: Path, role: str, shape: tuple, found: dict, ds) -> str | None:
    dims = "x".join(map(str, shape))
    if role.endswith("images") and shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        return f"{path}: images must be N x {IMAGE_SIDE} x {IMAGE_SIDE}, got {dims}"
    if role.endswith("labels") and len(shape) != 1:
        return f"{path}: labels must have one dimension (N), got {dims}"
    split = role.split("_")[0]
    if not found[f"{split}_images"] or not found[f"{split}_labels"]:
        return None
    other_role = f"{split}_labels" if role.endswith("images") else f"{split}_images"
    other = found[other_role][0]
    try:
        count = _shape(other, other_role, ds)[0]
    except DataError:
        return None  # the other file's own problem is reported on its own
    if count == shape[0]:
        return None
    pair = [(path, shape[0]), (other, count)]
    (x, n_images), (y, n_labels) = pair if role.endswith("images") else pair[::-1]
    return f"{path}: {x.name} has {n_images} images but {y.name} has {n_labels} labels"


def _whose(path: Path, ds: DatasetInfo) -> str:
    """' (it is fashion-mnist's FILE)' when a failing file is another dataset's, else ''."""
    try:
        digest = md5(gunzip(read_raw(path), str(path)))
    except DataError:
        return ""
    for other in REGISTRY.values():
        for info in other.files.values():
            if other.name != ds.name and info.md5 == digest:
                return f" (it is {other.name}'s {info.name}, not {ds.name}'s)"
    return ""
