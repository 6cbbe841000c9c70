"""mlplab: build, train, inspect and use feed-forward classifiers on MNIST-family images.

The names below load on first use, so `from mlplab.use.predict import predict` can run an
exported ONNX model without importing torch.

The package, by subsystem (arrows point down only):
    config, errors   the training config; the one exception family
    data/            IDX files, the registry and sources, datasets, the sampler, augmentation
    nn/              model specs, presets, init; the tensors-only scratch network
    io/              atomic writes, safetensors, checkpoints, run directories
    training/        the Trainer, its state and callbacks, engines, optimizers, evaluation
    use/             predict, export
    viz/             plots, the HTML report
    experiments/     reproduce the tutorials
    sklearn/         MLPClassifier, the scikit-learn estimator
    serve/           the web app
    cli/             the mlplab command
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Checkpoint": "io.checkpoint",
    "load_checkpoint": "io.checkpoint",
    "save_checkpoint": "io.checkpoint",
    "TrainConfig": "config",
    "Dataset": "data.dataset",
    "Split": "data.dataset",
    "load_dataset": "data.dataset",
    "Normalization": "data.normalization",
    "BatchSampler": "data.sampler",
    "MlplabError": "errors",
    "Metrics": "training.evaluate",
    "evaluate": "training.evaluate",
    "MLP": "nn.model",
    "build_model": "nn.model",
    "init_weights": "nn.init",
    "ModelSpec": "nn.spec",
    "parse_spec": "nn.spec",
    "PRESETS": "nn.presets",
    "Prediction": "use.predict",
    "Predictor": "use.predict",
    "load_predictor": "use.predict",
    "predict": "use.predict",
    "Callback": "training.callbacks",
    "Trainer": "training.trainer",
    "TrainResult": "training.trainer",
    "train": "training.trainer",
    "pick_device": "training.device",
    "run": "training.runner",
    "MLPClassifier": "sklearn",  # imports scikit-learn, so only when asked for
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"mlplab.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlplab' has no attribute {name!r}")
