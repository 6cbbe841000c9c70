"""One process at a time on a new SQLite database: Optuna and MLflow create (and migrate) their
tables on the first use of a file, and a second process doing that at once fails ("table
studies already exists"; SQLite reports it as an OperationalError, like a real failure)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


@contextlib.contextmanager
def first_use_lock(url: str):
    """Holds an flock on FILE.lock beside the database of a sqlite:///FILE URL (making its
    folder); other URLs take no lock."""
    if not url.startswith("sqlite:///"):
        yield
        return
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the file drops the lock
