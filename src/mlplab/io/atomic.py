"""Writes that a crash cannot half-finish: a temp file in the same folder, fsynced, renamed.

A reader sees the old file or the new one, never a mix, and the rename itself is made
durable by fsyncing the folder.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, data: bytes | Iterable[bytes | memoryview]) -> Path:
    """Write bytes (or pieces of them, in order) to `path` through a temp file beside it;
    returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    # os.open honours the umask (mkstemp would leave every file 0600, unreadable to others).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            for part in [data] if isinstance(data, bytes | bytearray) else data:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """Indented JSON, written atomically."""
    return atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one whole line with a single write(): a crash can cut it short, but cannot
    interleave it with another (readers ignore an unfinished last line)."""
    data = line.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        view = memoryview(data)
        while view:  # write() may take less than all of it
            view = view[os.write(fd, view) :]
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
