"""Every training default, in one frozen dataclass that is validated, saved and reloaded.

The CLI maps flags onto these fields (--batch-size <-> batch_size), a TOML file can too,
and each run saves the whole config in config.json.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplab.config.targets import parse_logs
from mlplab.data.registry import REGISTRY
from mlplab.errors import ConfigError, MlplabError
from mlplab.nn.init import parse_init
from mlplab.nn.presets import DEFAULT_PRESET, PRESETS
from mlplab.nn.spec import ModelSpec, parse_spec

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
NORMALIZATIONS = ("tutorial", "dataset", "none")
LOSSES = ("cross_entropy", "nll")
ENGINES = ("auto", "autograd", "fast", "scratch")
AUGMENTATIONS = ("none", "shift", "affine", "elastic", "affine-elastic")


def _field(default: Any, help: str, **kw) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    """A training run, from data to schedule. The defaults are the main job (make train)."""

    # data
    dataset: str = _field(
        "mnist",
        "dataset name: a registered one, or the name of in-memory data given to train()",
        choices=tuple(REGISTRY),
    )
    normalization: str = _field(
        "tutorial",
        "tutorial: (0.5, 0.5); dataset: the training split's mean and std; none: pixels in [0, 1]",
        choices=NORMALIZATIONS,
    )
    val_size: int = _field(
        0,
        "hold out this many training images (stratified, seeded) for "
        "validation; early stopping and best-checkpoint selection watch it",
    )
    train_size: int = _field(
        0,
        "train on this many of the training images (stratified, seeded; what val_size holds "
        "out is not among them); 0: all of them. A small set shows overfitting",
    )
    # model
    preset: str | None = _field(
        None, "a preset network (mlplab models lists them)", choices=tuple(PRESETS)
    )
    model: str | None = _field(None, "a model spec, e.g. 784-128-64-10:relu,dropout=0.2")
    init: str = _field("default", "weight init: default, normal[:STD], xavier, kaiming")
    # optimisation
    optimizer: str = _field("adam", "optimizer", choices=OPTIMIZERS)
    lr: float = _field(4e-3, "peak learning rate")
    momentum: float = _field(0.0, "SGD momentum (constant, whatever the lr schedule)")
    nesterov: bool = _field(False, "Nesterov momentum (SGD)")
    weight_decay: float = _field(0.0, "weight decay (L2 for SGD and Adam, decoupled for AdamW)")
    beta1: float = _field(0.9, "Adam's decay of its running mean of the gradients")
    beta2: float = _field(0.999, "Adam's decay of its running mean of the squared gradients")
    eps: float = _field(1e-8, "Adam's term added to the denominator, after bias correction")
    label_smoothing: float = _field(0.0, "label smoothing for the cross-entropy")
    max_norm: float | None = _field(
        None,
        "max-norm constraint (Srivastava et al. 2014): after every step, rescale each unit's "
        "incoming weight vector, in every layer, to a norm of at most this",
    )
    ema: float | None = _field(
        None,
        "decay of an exponential moving average of the weights, updated after every step "
        "and bias-corrected; evaluations and the saved model use the average (e.g. 0.999)",
    )
    mixup: float = _field(
        0.0,
        "mixup (Zhang et al. 2018): blend each training batch with itself reversed, by a "
        "weight drawn from Beta(alpha, alpha) per batch; this is alpha (0 = off)",
    )
    loss: str = _field(
        "cross_entropy",
        "cross_entropy on logits, or nll: log_softmax then NLL, as the log-softmax tutorial "
        "writes it (the same function)",
        choices=LOSSES,
    )
    engine: str = _field(
        "auto",
        "auto: fast when the model allows it, else autograd; autograd: nn.Module and "
        "autograd, for every model; fast: hand-written forward and backward passes into "
        "preallocated buffers, for MLPs with relu, tanh or sigmoid and no dropout (hidden or "
        "input) or batch norm; scratch: the tutorials' plain tensors with hand-written "
        "backprop and SGD",
        choices=ENGINES,
    )
    batch_size: int = _field(512, "training batch size")
    shuffle: bool = _field(
        True, "draw each epoch's batches in a new random order (false: in the data's order)"
    )
    augment: str = _field(
        "none",
        "random jitter of each training batch, made on the device: shift (up to 2 px each "
        "way), affine (rotation up to 10 degrees, scale 0.9-1.1, shift up to 2 px), elastic "
        "(Simard et al. 2003: sigma 4, alpha 34) or affine-elastic (both)",
        choices=AUGMENTATIONS,
    )
    epochs: int = _field(8, "training length in epochs (ignored when iterations is set)")
    iterations: int | None = _field(None, "training length in iterations (optimizer steps)")
    schedule: str = _field("onecycle", "learning-rate schedule", choices=SCHEDULES)
    step_size: int | None = _field(
        None, "step schedule: iterations between decays (default: a third of the run)"
    )
    gamma: float = _field(0.1, "step schedule: decay factor")
    # evaluation
    eval_every: int | None = _field(None, "evaluate every N iterations (default: every epoch)")
    patience: int = _field(
        0, "stop after N evaluations without validation improvement (needs val_size; 0 = off)"
    )
    checkpoint_every: int | None = _field(
        None,
        "save the whole training state to RUN/state/ every N iterations, keeping the newest "
        "two (default: after every evaluation; 0: only when the run ends or is stopped)",
    )
    # reproducibility and placement
    seed: int = _field(0, "seed for init, shuffling, dropout and the validation split")
    device: str = _field("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    threads: int | None = _field(
        None,
        "CPU threads for torch (default: torch's choice, one per core); one is often "
        "fastest for small models or on a busy machine",
    )
    # output
    data_dir: str | None = _field(None, "look here first for data files, and download here")
    out: str = _field("runs", "parent folder of run directories")
    name: str | None = _field(None, "run name (default: the preset or 'mlp')")
    log: tuple[str, ...] = _field(
        (),
        "track the run in TensorBoard (tensorboard[=DIR]; default: RUN/tb, with DIR: "
        "DIR/<run name>) or MLflow (mlflow[=TRACKING_URI]; default: MLflow's own, or "
        "$MLFLOW_TRACKING_URI); give the flag once per target",
        repeat=True,
    )

    def __post_init__(self):
        if isinstance(self.log, list):  # from TOML or JSON
            object.__setattr__(self, "log", tuple(self.log))
        _check_types(self)
        checks = (_check_choices, _check_ranges, _check_model, _check_combinations, _check_log)
        for check in checks:
            problem = check(self)
            if problem:
                raise problem

    @property
    def model_spec(self) -> str:
        """The spec text this config builds: the model, else the preset, else the default."""
        if self.model:
            return self.model
        return PRESETS[self.preset or DEFAULT_PRESET][0]

    @property
    def parsed_spec(self) -> ModelSpec:
        return parse_spec(self.model_spec)

    @property
    def run_name(self) -> str:
        return self.name or self.preset or ("mlp" if self.model else DEFAULT_PRESET)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON values (lists for tuples), as config.json holds it."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field {unknown[0]!r}")
        return cls(**values)

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(read_toml(path), str(path))


def read_toml(path: str | Path) -> dict[str, Any]:
    """The settings in a TOML file (its [train] table, or the top level), not yet validated.

    Callers that layer flags over the file merge first and validate once, so a file may
    leave a field for the flags to complete (patience there, --val-size on the command line).
    """
    path = Path(path)
    try:
        values = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deep") from None
    if "train" not in values:
        return values
    train, others = values["train"], sorted(set(values) - {"train"})
    if not isinstance(train, dict):
        raise ConfigError(f"{path}: [train] must be a table")
    if others:
        # Top-level keys beside a [train] table would be silently ignored.
        raise ConfigError(f"{path}: unknown field {others[0]!r} outside the [train] table")
    return train


def _check_types(config: TrainConfig) -> None:
    """Values from TOML or code have the field's type; a wrong one is named, not a TypeError."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if typing.get_origin(hints[f.name]) is tuple:  # tuple[str, ...]
            if not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
                raise ConfigError(
                    f"{f.name}: must be a list of strings, got {value!r}", field=f.name
                )
            continue
        allowed = typing.get_args(hints[f.name]) or (hints[f.name],)
        if value is None and type(None) in allowed:
            continue
        # bool is an int to Python, but not to a config; an int is a fine float
        ok = any(
            (isinstance(value, t) and (t is bool or not isinstance(value, bool)))
            or (t is float and type(value) is int)
            for t in allowed
            if t is not type(None)
        )
        if not ok:
            kind = " or ".join(t.__name__ for t in allowed if t is not type(None))
            raise ConfigError(f"{f.name}: must be {kind}, got {value!r}", field=f.name)


def _check_choices(config: TrainConfig) -> ConfigError | None:
    """Every field with a fixed set of values holds one of them."""
    if config.preset is not None and config.model is not None:
        return ConfigError("preset: give preset or model, not both", field="preset")
    if config.preset is not None and config.preset not in PRESETS:
        return ConfigError(
            f"preset: unknown {config.preset!r}; choose one of: {', '.join(PRESETS)}",
            field="preset",
        )
    if not config.dataset:
        return ConfigError("dataset: must be a name", field="dataset")
    for f in dataclasses.fields(config):
        choices, value = f.metadata.get("choices"), getattr(config, f.name)
        if choices and f.name not in ("dataset", "preset") and value not in choices:
            return ConfigError(
                f"{f.name}: must be one of {', '.join(choices)}, got {value!r}", field=f.name
            )
    return None


# field: (holds, what it must be); None always passes for the optional fields
_RANGES = {
    "lr": (lambda v: v > 0, "must be positive"),
    "momentum": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, "must be >= 0"),
    "beta1": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "eps": (lambda v: v > 0, "must be positive"),
    "label_smoothing": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "max_norm": (lambda v: v > 0, "must be positive"),
    "ema": (lambda v: 0 < v < 1, "must be in (0, 1)"),
    "mixup": (lambda v: v >= 0, "must be >= 0"),
    "batch_size": (lambda v: v > 0, "must be positive"),
    "epochs": (lambda v: v > 0, "must be positive"),
    "iterations": (lambda v: v > 0, "must be positive"),
    "step_size": (lambda v: v > 0, "must be positive"),
    "gamma": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "eval_every": (lambda v: v > 0, "must be positive"),
    "val_size": (lambda v: v >= 0, "must be >= 0"),
    "train_size": (lambda v: v >= 0, "must be >= 0"),
    "patience": (lambda v: v >= 0, "must be >= 0"),
    "checkpoint_every": (lambda v: v >= 0, "must be >= 0"),
    "threads": (lambda v: v > 0, "must be positive"),
}


MAX_THREADS = 1024  # torch accepts 100000 and then starts that many threads
_INT64 = 1 << 63  # TOML integers are unbounded in Python; torch's are int64


def _check_ranges(config: TrainConfig) -> ConfigError | None:
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            return ConfigError(f"{f.name}: must be finite, got {value}", field=f.name)
        if isinstance(value, int) and not -_INT64 < value < _INT64:
            return ConfigError(f"{f.name}: must fit in 64 bits, got {value}", field=f.name)
    for name, (holds, must) in _RANGES.items():
        value = getattr(config, name)
        if value is not None and not holds(value):
            return ConfigError(f"{name}: {must}, got {value}", field=name)
    if config.threads is not None and config.threads > MAX_THREADS:
        return ConfigError(
            f"threads: must be at most {MAX_THREADS}, got {config.threads}", field="threads"
        )
    return None


def _check_model(config: TrainConfig) -> ConfigError | None:
    """The spec and init parse; a registered dataset's shapes fit the spec."""
    try:
        spec = parse_spec(config.model_spec)
    except MlplabError as e:
        return ConfigError(f"model: {e}", field="model")
    try:
        parse_init(config.init)
    except MlplabError as e:
        return ConfigError(f"init: {e}", field="init")
    info = REGISTRY.get(config.dataset)
    if info is None:  # in-memory data: the trainer checks the spec against it
        return None
    if spec.sizes[0] != info.num_features:
        return ConfigError(
            f"model: the input size must be {info.num_features} (28x28), got {spec.sizes[0]}",
            field="model",
        )
    if spec.sizes[-1] != info.num_classes:
        return ConfigError(
            f"model: the output size must be {info.num_classes} for {config.dataset}, "
            f"got {spec.sizes[-1]}",
            field="model",
        )
    return None


def _check_log(config: TrainConfig) -> ConfigError | None:
    try:
        parse_logs(config.log)
    except ConfigError as e:
        return e
    return None


def _check_combinations(config: TrainConfig) -> ConfigError | None:
    """Fields that only make sense together."""
    if config.nesterov and not (config.optimizer == "sgd" and config.momentum > 0):
        return ConfigError("nesterov: needs optimizer sgd with momentum > 0", field="nesterov")
    if config.patience and not config.val_size:
        return ConfigError(
            "patience: early stopping watches the validation split; set val_size too",
            field="patience",
        )
    if config.label_smoothing and config.loss != "cross_entropy":
        return ConfigError("label_smoothing: needs loss cross_entropy", field="label_smoothing")
    return None
