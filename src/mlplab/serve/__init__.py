"""The web app: load a checkpoint (or an exported .onnx or .pt2), predict, nothing else."""

from mlplab.serve.app import create_app
from mlplab.serve.server import serve
from mlplab.serve.settings import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]
