"""Entry point of each `mlplab serve --workers N` process: uvicorn imports `app` and calls it.

uvicorn hands worker processes an import string and nothing else, so what to serve comes
from the environment, set by mlplab.serve.server.serve in the parent.
"""

from __future__ import annotations

import json
import os

from mlplab.serve.app import create_app
from mlplab.serve.server import WORKER_ENV, one_intra_op_thread
from mlplab.serve.settings import ServeConfig


def app():
    """The app for this worker process (an ASGI app factory)."""
    spec = json.loads(os.environ[WORKER_ENV])
    one_intra_op_thread(spec["model"])
    return create_app(spec["model"], ServeConfig(**spec["config"]))
