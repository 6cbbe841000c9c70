"""mlplab: build, train, inspect and use feed-forward classifiers on MNIST-family images.

The names below load on first use, so `import mlplab.predict` can run an exported ONNX model
without importing torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "TrainConfig": "config",
    "Dataset": "data",
    "Normalization": "data",
    "Split": "data",
    "load_dataset": "data",
    "MlplabError": "errors",
    "Metrics": "evaluate",
    "evaluate": "evaluate",
    "MLP": "models",
    "ModelSpec": "models",
    "PRESETS": "models",
    "build_model": "models",
    "init_weights": "models",
    "parse_spec": "models",
    "Prediction": "predict",
    "Predictor": "predict",
    "load_predictor": "predict",
    "TrainResult": "train",
    "pick_device": "train",
    "train": "train",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"mlplab.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlplab' has no attribute {name!r}")
