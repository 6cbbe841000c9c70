"""Every training default, in one frozen dataclass that is validated, saved and reloaded.

The CLI maps flags onto these fields (--batch-size <-> batch_size), a TOML file can too,
and each run saves the whole config in config.json.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplab.datasets import REGISTRY
from mlplab.errors import ConfigError, MlplabError
from mlplab.models import PRESETS, ModelSpec, parse_init, parse_spec

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
NORMALIZATIONS = ("tutorial", "dataset", "none")
LOSSES = ("cross_entropy", "nll")
ENGINES = ("auto", "autograd", "fast", "scratch")
SCRATCH_ACTIVATIONS = ("sigmoid", "tanh", "relu")
FAST_ACTIVATIONS = ("relu", "tanh", "sigmoid")
AUGMENTATIONS = ("none", "shift", "affine")


def _field(default: Any, help: str, **kw) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    """A training run, from data to schedule. The defaults are the main job (make train)."""

    # data
    dataset: str = _field("mnist", "dataset name", choices=tuple(REGISTRY))
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
    label_smoothing: float = _field(0.0, "label smoothing for the cross-entropy")
    loss: str = _field(
        "cross_entropy",
        "cross_entropy on logits, or nll: log_softmax then NLL as the nn.Sequential tutorial "
        "writes it (the same function)",
        choices=LOSSES,
    )
    engine: str = _field(
        "auto",
        "auto: fast when the model allows it, else autograd; autograd: nn.Module and "
        "autograd, for every model; fast: hand-written forward and backward passes into "
        "preallocated buffers, for MLPs with relu, tanh or sigmoid and no dropout or batch "
        "norm; scratch: the tutorials' plain tensors with hand-written backprop and SGD",
        choices=ENGINES,
    )
    batch_size: int = _field(512, "training batch size")
    augment: str = _field(
        "none",
        "random jitter of each training batch, made on the device: shift (up to 2 px each "
        "way) or affine (rotation up to 10 degrees, scale 0.9-1.1, shift up to 2 px)",
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

    def __post_init__(self):
        def need(ok: bool, message: str):
            if not ok:
                raise ConfigError(message)

        _check_types(self)
        need(
            self.dataset in REGISTRY,
            f"dataset: unknown {self.dataset!r}; choose one of: {', '.join(REGISTRY)}",
        )
        need(
            self.normalization in NORMALIZATIONS,
            f"normalization: must be one of {', '.join(NORMALIZATIONS)}, "
            f"got {self.normalization!r}",
        )
        need(
            self.preset is None or self.model is None,
            "preset: give preset or model, not both",
        )
        need(
            self.preset is None or self.preset in PRESETS,
            f"preset: unknown {self.preset!r}; choose one of: {', '.join(PRESETS)}",
        )
        try:
            spec = parse_spec(self.model_spec)
        except MlplabError as e:
            raise ConfigError(f"model: {e}") from None
        try:
            parse_init(self.init)
        except MlplabError as e:
            raise ConfigError(f"init: {e}") from None
        need(
            self.optimizer in OPTIMIZERS,
            f"optimizer: must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}",
        )
        need(
            self.schedule in SCHEDULES,
            f"schedule: must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}",
        )
        need(self.lr > 0, f"lr: must be positive, got {self.lr}")
        need(0 <= self.momentum < 1, f"momentum: must be in [0, 1), got {self.momentum}")
        need(
            not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0),
            "nesterov: needs optimizer sgd with momentum > 0",
        )
        need(self.weight_decay >= 0, f"weight_decay: must be >= 0, got {self.weight_decay}")
        need(
            0 <= self.label_smoothing < 1,
            f"label_smoothing: must be in [0, 1), got {self.label_smoothing}",
        )
        need(self.batch_size > 0, f"batch_size: must be positive, got {self.batch_size}")
        need(self.epochs > 0, f"epochs: must be positive, got {self.epochs}")
        need(
            self.iterations is None or self.iterations > 0,
            f"iterations: must be positive, got {self.iterations}",
        )
        need(
            self.step_size is None or self.step_size > 0,
            f"step_size: must be positive, got {self.step_size}",
        )
        need(0 < self.gamma <= 1, f"gamma: must be in (0, 1], got {self.gamma}")
        need(
            self.eval_every is None or self.eval_every > 0,
            f"eval_every: must be positive, got {self.eval_every}",
        )
        need(self.val_size >= 0, f"val_size: must be >= 0, got {self.val_size}")
        need(self.patience >= 0, f"patience: must be >= 0, got {self.patience}")
        need(
            self.patience == 0 or self.val_size > 0,
            "patience: early stopping watches the validation split; set val_size too",
        )
        need(
            spec.sizes[0] == 784, f"model: the input size must be 784 (28x28), got {spec.sizes[0]}"
        )
        need(self.loss in LOSSES, f"loss: must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        need(
            self.loss == "cross_entropy" or not self.label_smoothing,
            "label_smoothing: needs loss cross_entropy",
        )
        need(
            self.engine in ENGINES,
            f"engine: must be one of {', '.join(ENGINES)}, got {self.engine!r}",
        )
        need(
            self.augment in AUGMENTATIONS,
            f"augment: must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}",
        )
        need(
            self.threads is None or self.threads > 0,
            f"threads: must be positive, got {self.threads}",
        )
        if self.engine == "fast":
            problem = fast_engine_problem(spec)
            need(problem is None, f"engine: {problem}; use engine autograd")
        if self.engine == "scratch":
            need(
                self.optimizer == "sgd" and not self.momentum and not self.weight_decay,
                "engine: scratch trains with plain SGD: set optimizer sgd, no momentum or "
                "weight decay",
            )
            need(
                spec.activation in SCRATCH_ACTIVATIONS or not spec.hidden,
                f"engine: scratch supports {', '.join(SCRATCH_ACTIVATIONS)}, got {spec.activation}",
            )
            need(
                not spec.dropout and not spec.batch_norm,
                "engine: scratch supports neither dropout nor batch norm",
            )
            need(not self.label_smoothing, "engine: scratch has no label smoothing")
        classes = REGISTRY[self.dataset].num_classes
        need(
            spec.sizes[-1] == classes,
            f"model: the output size must be {classes} for {self.dataset}, got {spec.sizes[-1]}",
        )

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
        return dataclasses.asdict(self)

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
        values = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    values = values.get("train", values)
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: [train] must be a table")
    return values


def _check_types(config: TrainConfig) -> None:
    """Values from TOML or code have the field's type; a wrong one is named, not a TypeError."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
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
            raise ConfigError(f"{f.name}: must be {kind}, got {value!r}")


def fast_engine_problem(spec: ModelSpec) -> str | None:
    """Why the fast engine cannot train this model, or None when it can."""
    if spec.hidden and spec.activation not in FAST_ACTIVATIONS:
        return f"fast supports {', '.join(FAST_ACTIVATIONS)}, got {spec.activation}"
    if spec.dropout or spec.batch_norm:
        return "fast supports neither dropout nor batch norm"
    return None


DEFAULT_PRESET = "quickstart-512"
