"""mlplab: build, train, inspect and use feed-forward classifiers on MNIST-family images."""

__version__ = "0.1.0"

from mlplab.checkpoint import Checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from mlplab.config import TrainConfig  # noqa: E402
from mlplab.data import Dataset, Normalization, Split, load_dataset  # noqa: E402
from mlplab.errors import MlplabError  # noqa: E402
from mlplab.evaluate import Metrics, evaluate  # noqa: E402
from mlplab.models import MLP, PRESETS, ModelSpec, build_model, init_weights, parse_spec  # noqa: E402
from mlplab.train import TrainResult, pick_device, train  # noqa: E402

__all__ = [
    "Checkpoint",
    "Dataset",
    "MLP",
    "Metrics",
    "MlplabError",
    "ModelSpec",
    "Normalization",
    "PRESETS",
    "Split",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "evaluate",
    "init_weights",
    "load_checkpoint",
    "load_dataset",
    "parse_spec",
    "pick_device",
    "save_checkpoint",
    "train",
]
