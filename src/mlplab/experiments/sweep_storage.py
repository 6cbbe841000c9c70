"""Where a study lives: Optuna's RDB storage on one SQLite file, or on PostgreSQL for workers
on several machines; and the lock that lets workers start exactly the trials asked for.

Optuna counts trials only after they finish, so two workers that both see N-1 of N would
both start one. Workers therefore take a lock from "count the trials" to "the new trial
exists": a file lock beside the SQLite file (its workers share this machine), or a
PostgreSQL advisory lock, which the server drops with the connection of a worker that dies.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

from mlplab.config.targets import redact
from mlplab.errors import ConfigError
from mlplab.io.sqlite_lock import first_use_lock

CONNECT_TIMEOUT = 10  # seconds before an unreachable PostgreSQL server is an error
SQLITE_BUSY_TIMEOUT = 60  # seconds a worker waits for another's write to the SQLite file


def storage_url(url: str | None, sweep_dir: Path) -> str:
    """The SQLAlchemy URL of a study: SWEEP_DIR/study.db by default; postgresql:// URLs
    go through psycopg (version 3), not SQLAlchemy's default psycopg2."""
    if url is None:
        return f"sqlite:///{(sweep_dir / 'study.db').resolve()}"
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres", "postgresql+psycopg") and sep:
        return f"postgresql+psycopg://{rest}"
    if scheme == "sqlite" and sep:
        return url
    raise ConfigError(
        f"--storage: {redact(url)}: use sqlite:///FILE or postgresql://USER@HOST:PORT/DB"
    )


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def open_storage(url: str, heartbeat: int | None = None, grace: int | None = None):
    """Optuna's RDBStorage at `url`, with heartbeats (and one retry of a trial whose worker
    died) when `heartbeat` is given. An unreachable server is a ConfigError within
    CONNECT_TIMEOUT seconds, not a hang."""
    import optuna
    import sqlalchemy.exc

    if is_postgres(url):
        engine: dict[str, Any] = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    else:
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = {"creator": functools.partial(_sqlite_connection, str(path))}
    for attempt in range(3):
        try:
            with first_use_lock(url), warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # beats
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, **_beats(heartbeat, grace)
                )
        except sqlalchemy.exc.OperationalError as e:
            raise ConfigError(
                f"{redact(url)}: cannot open the study storage: {_reason(e)}"
            ) from None
        except sqlalchemy.exc.SQLAlchemyError as e:
            # Workers that start together race to create the tables; the loser retries.
            if attempt == 2:
                raise ConfigError(
                    f"{redact(url)}: cannot set up the storage: {_reason(e)}"
                ) from None
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _sqlite_connection(path: str) -> sqlite3.Connection:
    """A connection in WAL mode with synchronous=NORMAL: a commit no longer waits for the
    disk (measured: 11 ms each, about 20 a trial), and the file stays consistent whatever
    happens to a process; only a power cut can lose the latest commits."""
    conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _beats(heartbeat: int | None, grace: int | None) -> dict[str, Any]:
    """Heartbeats, and one retry of a trial whose worker stopped beating (it died)."""
    import optuna

    if not heartbeat:
        return {}
    beats: dict[str, Any] = {"heartbeat_interval": heartbeat, "grace_period": grace}
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    if retry is None:  # Optuna before 4.9 names it RetryFailedTrialCallback
        beats["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(max_retry=1)
    else:
        beats["heartbeat_stale_trial_callback"] = retry(max_retry=1)
    return beats


def _reason(error: Exception) -> str:
    """The driver's own first line (psycopg's says which host and port failed, and why)."""
    cause = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


class TrialLock:
    """Held from counting a study's trials until the next one exists (see module doc)."""

    def __init__(self, url: str, study: str):
        self.held = False
        key = int.from_bytes(hashlib.sha256(f"mlplab-sweep:{study}".encode()).digest()[:8], "big")
        self.key = key - 2**64 if key >= 2**63 else key  # advisory keys are signed bigints
        self.fd: int | None = None
        self.conn = None
        if is_postgres(url):
            import sqlalchemy

            engine = sqlalchemy.create_engine(
                url,
                poolclass=sqlalchemy.pool.NullPool,
                connect_args={"connect_timeout": CONNECT_TIMEOUT},
            )
            self.conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        else:
            path = Path(url.removeprefix("sqlite:///"))
            self.fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o666)

    def acquire(self) -> None:
        if self.held:
            return
        if self.conn is not None:
            from sqlalchemy import text

            self.conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
        else:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        if self.conn is not None:
            from sqlalchemy import text

            self.conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        else:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.held = False

    def close(self) -> None:
        self.release()
        if self.conn is not None:
            self.conn.close()
        if self.fd is not None:
            os.close(self.fd)
