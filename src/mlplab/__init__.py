"""mlplab: build, train, inspect and use feed-forward classifiers on MNIST-family images.

The names below load on first use, so `from mlplab.use.predict import predict` can run an
exported ONNX model without importing torch.

The package in layers, highest first. A module imports only from its own layer (without
cycles) and the layers below it; tests/test_layout.py reads this list and checks every import.
    mlplab                          this file: names the public API, loading it lazily
    cli, __main__                   the mlplab command
    serve, lab                      the web apps: the model server, the live lab
    use, viz, experiments, sklearn  predict and export; plots and the report; the tutorials
                                    reproduced and the sweeps; the scikit-learn estimator
    runner                          one run: its directory, trackers, DDP, resume from disk
    tracking                        TensorBoard and MLflow, as Trainer callbacks
    training                        the Trainer, its state, callbacks, engines, optimizers,
                                    evaluation, resume's rules
    config                          the frozen training config; where `--log` writes
    data                            IDX files, the registry and sources, datasets, the
                                    sampler, augmentation
    io                              atomic writes, safetensors, checkpoints, run directories
    nn                              model specs, presets, init, input normalisation; the
                                    tensors-only scratch network
    errors, version                 the one exception family; the version
"""

from __future__ import annotations

import importlib

from mlplab.version import __version__ as __version__

_EXPORTS = {
    "Checkpoint": "io.checkpoint",
    "load_checkpoint": "io.checkpoint",
    "save_checkpoint": "io.checkpoint",
    "TrainConfig": "config",
    "Dataset": "data.dataset",
    "Split": "data.dataset",
    "load_dataset": "data.dataset",
    "Normalization": "nn.normalization",
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
    "run": "runner",
    "MLPClassifier": "sklearn",  # imports scikit-learn, so only when asked for
    "TabularMLPClassifier": "sklearn.tabular",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"mlplab.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlplab' has no attribute {name!r}")
