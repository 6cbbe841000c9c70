"""Writes that a crash cannot half-finish: a temp file in the same folder, fsynced, renamed.

A reader sees the old file or the new one, never a mix, and the rename itself is made
durable by fsyncing the folder.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, data: bytes | Iterable[bytes | memoryview]) -> Path:
    """Write bytes (or pieces of them, in order) to `path` through a temp file beside it;
    returns the path.

    A failure (a full disk, a read-only folder) raises an OSError whose filename is `path`,
    not the temp name, and leaves neither a temp file nor a changed `path` behind.
    """
    path = Path(path)
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_beside(path)
        # os.open honours the umask (mkstemp would leave every file 0600, unreadable to others).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            try:
                for part in [data] if isinstance(data, bytes | bytearray | memoryview) else data:
                    write_all(fd, part)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)
    return path


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until all of it is written (write() may take less than all of it)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


@contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """An OSError inside the block names `path`, the file the user asked for, rather than a
    temp name beside it (or no name at all, as a failed write() has)."""
    try:
        yield
    except OSError as e:
        if e.errno is None or e.filename == str(path):
            raise
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """Indented JSON, written atomically."""
    return atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one whole line with a single write(): a crash can cut it short, but cannot
    interleave it with another (readers ignore an unfinished last line). A failed write
    (a full disk) is cut back off, so the next line does not start inside this one."""
    with naming(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            try:
                write_all(fd, line.encode("utf-8"))
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)


def temp_beside(path: Path) -> Path:
    """A fresh hidden name in the same folder (so that renaming it onto `path` is atomic)."""
    return path.parent / f".{path.name}.{secrets.token_hex(8)}.part"


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make the folder's entries (a rename, a new file) durable; a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise  # a full disk or an I/O error must not pass for a durable rename
        # some filesystems refuse fsync on a directory
    finally:
        os.close(fd)
