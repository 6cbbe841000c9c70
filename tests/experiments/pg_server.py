"""A real PostgreSQL server for the sweep tests, as a fixture that test modules import: initdb
into a temp folder, pg_ctl start on a free port on 127.0.0.1, stopped and removed at the end
even when a test fails."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _pg_tool(name: str) -> str | None:
    path = PG_BIN / name
    return str(path) if path.is_file() else shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres():
    """postgresql://postgres@127.0.0.1:PORT/postgres of a fresh server (trust auth, local
    only). PostgreSQL refuses to run as root, so as root the server runs as the system user
    `postgres` (Debian's package makes it), owning its temporary folder."""
    initdb, pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found; install Debian's postgresql")
    user = None
    root = Path(tempfile.mkdtemp(prefix="mlplab-pg-"))  # under /tmp: readable by that user
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        user = entry.pw_name
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, port = root / "data", free_port()
    run = dict(user=user, check=True, capture_output=True, text=True, timeout=120)
    try:
        subprocess.run(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            **run,
        )
        options = (
            f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off"
        )
        subprocess.run(
            [
                pg_ctl,
                "-D",
                str(data),
                "-l",
                str(root / "log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            **run,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "-t", "60", "stop"],
                user=user,
                capture_output=True,
                timeout=120,
            )
        shutil.rmtree(root, ignore_errors=True)
