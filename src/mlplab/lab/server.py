"""Run the lab: its session on the main thread, its app under uvicorn on another.

The socket is bound first, so port 0 picks a free port that the caller learns before the page
opens (`on_ready`) and the Host check knows the real port. Training runs on the calling (main)
thread (see mlplab.lab.session); uvicorn serves from a thread of its own and so leaves the
signals alone. The first SIGINT (Ctrl-C) or SIGTERM closes the lab: training pauses, the run's
state is saved as in `mlplab train`, the server stops; a second one stops at once.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from mlplab.config import TrainConfig
from mlplab.errors import MlplabError
from mlplab.io.rundir import is_running, read_config
from mlplab.lab.app import create_app
from mlplab.lab.experiments import Experiment
from mlplab.lab.session import LabSession
from mlplab.serve.server import NoDelay


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or a one-line error naming them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise MlplabError(
            f"--host {host} --port {port}: cannot listen: {e.strerror or e}"
        ) from None
    sock.listen(128)
    return sock


def check_run_dir(run_dir: str | Path) -> None:
    """A run the lab can open: its config reads, and no other process trains it."""
    read_config(run_dir)
    if is_running(run_dir):
        raise MlplabError(f"{run_dir}: another mlplab process is training this run")


def lab(
    run_dir: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8008,
    out: str | Path = "runs",
    data_dir: str | None = None,
    threads: int | None = None,
    config: TrainConfig | None = None,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "warning",
    experiment: Experiment | None = None,
) -> dict[str, Any]:
    """Serve the lab until a signal closes it; returns where its run stands (the session's
    summary, and `signal`: the signal that closed it).

    Args:
        run_dir: a run to open and continue; default: a new run of `config`.
        config: what a new run trains; default: the default job.
        experiment: runs to train side by side instead (mlplab.lab.experiments).
        on_ready: called with the page's address once the socket listens.
    """
    if run_dir is not None:
        check_run_dir(run_dir)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    session = LabSession(out=out, data_dir=data_dir, threads=threads)
    app = create_app(session, port, loopback=is_loopback(host))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=3, http=NoDelay)
    )

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            session.request_close("the server stopped")

    thread = threading.Thread(target=serve, name="mlplab-lab-server", daemon=True)
    with CloseOnSignal(session) as signals:
        thread.start()
        if on_ready is not None:
            shown = f"[{host.strip('[]')}]" if ":" in host else host
            on_ready(f"http://{shown}:{port}/")
        try:
            left = session.run(run_dir, config, experiment)
        finally:
            server.should_exit = True
            thread.join(10)
            sock.close()
    return {**left, "signal": signals.received}


class CloseOnSignal:
    """Inside the block, the first SIGINT or SIGTERM closes the session; a second stops at
    once (KeyboardInterrupt, or SystemExit(143) for SIGTERM). The handlers before come back
    after."""

    def __init__(self, session: LabSession):
        self.session = session
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> CloseOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame) -> None:
        if self.received is None:
            self.received = signum
            self.session.request_close(f"{signal.Signals(signum).name} received")
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)
