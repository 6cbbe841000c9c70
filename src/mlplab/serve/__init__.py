"""The web app: load a checkpoint (or an exported .onnx), predict, nothing else."""

from mlplab.serve.app import create_app, serve

__all__ = ["create_app", "serve"]
