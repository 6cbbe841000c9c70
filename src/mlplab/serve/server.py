"""Run the app with uvicorn: one process, or `workers` processes sharing the socket."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from mlplab.errors import MlplabError
from mlplab.serve.app import create_app
from mlplab.serve.settings import ServeConfig
from mlplab.use.predict import load_predictor

# uvicorn starts worker processes from an import string, so what they serve travels in
# their environment; mlplab.serve.worker, their entry point, reads it.
WORKER_ENV = "MLPLAB_SERVE_WORKER"


def one_intra_op_thread(model: str | Path) -> None:
    """Each request is one small forward pass: more intra-op threads only contend with the
    event loop, the other workers and the clients (measured: 2.1x the requests/s with 1
    thread than with 2)."""
    if not str(model).endswith(".onnx"):
        import torch

        torch.set_num_threads(1)


class NoDelay(AutoHTTPProtocol):
    """uvicorn's HTTP protocol, with Nagle's algorithm off on every connection.

    With --workers, uvicorn binds the socket itself with protocol number 0, so asyncio does
    not set TCP_NODELAY on the connections it accepts; headers and body then go out as two
    segments and the second waits for the client's delayed ACK (measured: /healthz 48 ms with
    2 workers, idle, against 1.4 ms with 1).
    """

    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def serve(
    model: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    config: ServeConfig | None = None,
    log_level: str = "warning",
) -> None:
    """Run the app with uvicorn until interrupted; SIGTERM lets requests in flight finish.

    Args:
        model: a run directory, its model.safetensors, or an exported .onnx or .pt2.
        workers: server processes, each with its own pool, queue and one intra-op thread.
        config: the limits of each process (body size, pool, queue, time).
    """
    if not isinstance(workers, int) or workers < 1:
        raise MlplabError(f"workers must be a positive integer, got {workers!r}")
    config = config or ServeConfig()
    one_intra_op_thread(model)
    predictor = load_predictor(model)  # here too with workers, so a bad model fails at once
    # In-flight requests finish within their own time limit, so shutdown waits for no more.
    options = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "timeout_graceful_shutdown": math.ceil(config.timeout) + 1,
        "http": NoDelay,
    }
    if workers == 1:
        uvicorn.run(create_app(predictor, config), **options)
        return
    del predictor
    os.environ[WORKER_ENV] = json.dumps(
        {"model": str(Path(model).resolve()), "config": config.to_dict()}
    )
    uvicorn.run("mlplab.serve.worker:app", factory=True, workers=workers, **options)
