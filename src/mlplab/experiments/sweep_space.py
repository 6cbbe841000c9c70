"""The space file of a sweep: fixed TrainConfig fields, a [space] of ranges and choices, and
an optional [sweep] table of study settings shared by every worker.

    dataset = "mnist"
    epochs = 6
    val_size = 5000                     # the objective; 5000 when the file omits it

    [sweep]                             # optional; every key has a default
    heartbeat = 10                      # seconds between a running trial's heartbeats
    grace = 30                          # a trial silent this long is failed (and retried once)
    startup_trials = 2                  # the median pruner prunes nothing before this many
    warmup = 0                          # ... nor at a trial's first `warmup` evaluations

    [space]
    lr = { low = 1e-4, high = 1e-2, log = true }
    hidden = { low = 32, high = 256, step = 32 }     # int fields take int bounds
    batch_size = { choices = [128, 256, 512] }

Everything here is checked before any trial starts, and a problem names the file and key.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplab.config import TrainConfig
from mlplab.errors import ConfigError

DEFAULT_VAL_SIZE = 5000
# Set by the sweep itself, or by where a worker runs rather than by what it trains.
NOT_SWEPT = ("out", "name", "data_dir", "device", "threads")
RANGE_KEYS = ("low", "high", "log", "step")
SETTINGS = {"heartbeat": 10, "grace": 30, "startup_trials": 2, "warmup": 0}
GRID_LIMIT = 10_000  # points a single parameter may enumerate for the grid sampler

_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def _base_type(name: str) -> type:
    args = [a for a in typing.get_args(_HINTS[name]) if a is not type(None)]
    return args[0] if args else _HINTS[name]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Param:
    """One swept field: an int or float range (log scale, step) or a list of choices."""

    name: str
    kind: str  # "int", "float" or "categorical"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        """The value an Optuna trial samples (or was given, for a retried trial)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, self.low, self.high, step=self.step or 1, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> list:
        """Every value of a discrete parameter, for the grid sampler."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.step is None and self.kind == "float":
            raise ConfigError(
                f"space.{self.name}: the grid sampler needs choices or a step for a float range"
            )
        step = self.step or 1
        count = int((self.high - self.low) // step) + 1
        if count > GRID_LIMIT:
            raise ConfigError(f"space.{self.name}: {count} grid points; give a larger step")
        values = [self.low + i * step for i in range(count)]
        return [int(v) for v in values] if self.kind == "int" else values


@dataclass(frozen=True)
class SweepSpace:
    """What every trial shares (fixed), what it samples (params), and the study settings."""

    path: str
    fixed: dict[str, Any]
    params: tuple[Param, ...]
    settings: dict[str, int] = field(default_factory=lambda: dict(SETTINGS))

    def config_for(self, values: dict[str, Any], **placement: Any) -> TrainConfig:
        """The TrainConfig of one trial: the fixed fields, the sampled values, and where it
        runs (out, threads, data_dir). Raises ConfigError for an invalid combination."""
        merged = {**self.fixed, **values}
        merged.update({k: v for k, v in placement.items() if k not in self.fixed})
        return TrainConfig.from_dict(merged, self.path)

    def identity(self) -> str:
        """The fixed fields and the space as JSON: a resumed study must have the same."""
        space = {p.name: dataclasses.asdict(p) for p in self.params}
        return json.dumps({"fixed": self.fixed, "space": space}, sort_keys=True, default=list)

    def grid(self) -> dict[str, list]:
        try:
            return {p.name: p.grid() for p in self.params}
        except ConfigError as e:
            raise ConfigError(f"{self.path}: {e}") from None


def read_space(path: str | Path) -> SweepSpace:
    """Parse and check a space file; ConfigError names the file and the key at fault."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    space = values.pop("space", None)
    settings = values.pop("sweep", {})
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{path}: needs a [space] table with at least one parameter")
    try:
        result = SweepSpace(
            str(path),
            _fixed(values),
            tuple(_param(k, v) for k, v in space.items()),
            _settings(settings),
        )
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    both = sorted(set(values) & set(space))
    if both:
        raise ConfigError(f"{path}: {both[0]}: both fixed and in [space]; keep one")
    _check_fixed(result)
    return result


def _fixed(values: dict[str, Any]) -> dict[str, Any]:
    for name in values:
        if name not in _FIELDS:
            raise ConfigError(f"{name}: not a TrainConfig field", field=name)
        if name == "out":
            raise ConfigError(
                "out: trials go under SWEEP_DIR/trials; give --out to the command", field="out"
            )
    fixed = {"val_size": DEFAULT_VAL_SIZE, **values}
    if not fixed["val_size"]:
        raise ConfigError(
            "val_size: a sweep chooses by validation accuracy; must be positive", field="val_size"
        )
    return fixed


def _settings(values: Any) -> dict[str, int]:
    if not isinstance(values, dict):
        raise ConfigError("[sweep] must be a table")
    for key, value in values.items():
        if key not in SETTINGS:
            raise ConfigError(f"sweep.{key}: unknown setting; use {', '.join(SETTINGS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"sweep.{key}: must be a whole number >= 0, got {value!r}")
    settings = {**SETTINGS, **values}
    if settings["heartbeat"] < 1 or settings["grace"] <= settings["heartbeat"]:
        raise ConfigError("sweep.grace: must exceed sweep.heartbeat, which must be >= 1")
    return settings


def _param(name: str, spec: Any) -> Param:
    key = f"space.{name}"
    if name not in _FIELDS:
        raise ConfigError(f"{key}: not a TrainConfig field", field=key)
    if name in NOT_SWEPT:
        raise ConfigError(
            f"{key}: cannot be swept (it says where a trial runs, not what)", field=key
        )
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{key}: must be a table, e.g. {{ low = 1e-4, high = 1e-2 }} or {{ choices = [...] }}",
            field=key,
        )
    unknown = sorted(set(spec) - {*RANGE_KEYS, "choices"})
    if unknown:
        raise ConfigError(
            f"{key}: unknown key {unknown[0]!r}; use low, high, log, step or choices", field=key
        )
    if "choices" in spec:
        return _choices(key, name, spec)
    return _range(key, name, spec)


def _choices(key: str, name: str, spec: dict) -> Param:
    choices = spec["choices"]
    if set(spec) != {"choices"}:
        raise ConfigError(f"{key}: give choices or a range (low, high), not both", field=key)
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{key}: choices must be a non-empty list", field=key)
    if any(isinstance(c, dict | list) for c in choices):
        raise ConfigError(f"{key}: choices must be numbers, strings or booleans", field=key)
    if len(set(map(repr, choices))) != len(choices):
        raise ConfigError(f"{key}: choices repeat a value", field=key)
    return Param(name, "categorical", choices=tuple(choices))


def _range(key: str, name: str, spec: dict) -> Param:
    kind = _base_type(name)
    if kind not in (int, float):
        raise ConfigError(f"{key}: a {kind.__name__} field takes choices, not a range", field=key)
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{key}: a range needs both low and high", field=key)
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    for what, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and not _is_number(value):
            raise ConfigError(f"{key}: {what} must be a number, got {value!r}", field=key)
        if kind is int and value is not None and not isinstance(value, int):
            raise ConfigError(
                f"{key}: {name} is an int field; {what} must be a whole number", field=key
            )
    if not isinstance(log, bool):
        raise ConfigError(f"{key}: log must be true or false, got {log!r}", field=key)
    if not low < high:
        raise ConfigError(f"{key}: low must be below high, got low={low}, high={high}", field=key)
    if log and low <= 0:
        raise ConfigError(f"{key}: a log range needs low > 0, got {low}", field=key)
    if step is not None and (log or step <= 0):
        raise ConfigError(f"{key}: step must be positive, and not with log", field=key)
    return Param(name, kind.__name__, low, high, log, step)


def _check_fixed(space: SweepSpace) -> None:
    """A fixed field that is wrong on its own would fail every trial: say so now. Sampled
    values are not judged here; a bad sampled combination fails only its own trial."""
    point = {p.name: p.choices[0] if p.choices else p.low for p in space.params}
    try:
        space.config_for(point)
    except ConfigError as e:
        message = str(e).removeprefix(f"{space.path}: ")
        if message.split(":", 1)[0] in space.fixed:
            raise ConfigError(f"{space.path}: {message}") from None
