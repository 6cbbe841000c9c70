"""Resuming a run, in one place: what a resume may change, where its state is, whether that
state fits the trainer, and what resuming a finished run does.

A stopped run continues from its newest valid state and ends exactly as it would have ended
uninterrupted. So a resume may change only what cannot change a step the run takes: its
length, to extend it, and how it is watched (RESUMABLE). The state must come from the same
model, engine, data and number of processes (check_fits).

The finished rule: a run whose state is finished (at its planned length, or stopped by a
callback such as early stopping) trains no step when resumed. Its trainer finishes again
from that state, which writes what a kill may have left missing (the closing evaluation,
the final line of metrics.jsonl, the model, the pictures), and the resume succeeds.
A longer --iterations or --epochs extends it instead.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from mlplab.config import TrainConfig
from mlplab.errors import ConfigError, MlplabWarning
from mlplab.io.rundir import CONFIG, STATES, read_config
from mlplab.io.states import encode_state, load_state, newest_state

# The trainer calls this module, so it is named here only by what is read of it.
Trainer = Any
TrainResult = Any

# What a resumed run may change, and what for: its length, and how it is watched. data_dir
# says only where the data is; it is checked against its checksums wherever it is.
RESUMABLE = (
    "epochs",
    "iterations",
    "eval_every",
    "checkpoint_every",
    "threads",
    "device",
    "log",
    "data_dir",
)


def flags() -> str:
    """The command-line flags of what a resume may change: '--epochs, --iterations, ...'."""
    return ", ".join(f"--{name.replace('_', '-')}" for name in RESUMABLE)


def help_text(also: str) -> str:
    """`mlplab train --resume`'s help, made from RESUMABLE; `also` names the other flags
    that a resume takes (the command's own, not the config's)."""
    return (
        "continue a stopped run from its newest valid state, with its own config (a finished "
        f"run writes what it lacks and exits 0); only {flags()} and {also} may be given "
        "(--epochs or --iterations to extend it)"
    )


# --- the config ------------------------------------------------------------------------------


def resume_with(saved: TrainConfig, changes: dict[str, Any]) -> TrainConfig:
    """The saved config with `changes`, each checked: a resumed run must take the same steps
    as the run it continues, so only what RESUMABLE names may change."""
    for name in changes:
        if name not in RESUMABLE:
            raise ConfigError(
                f"{name}: cannot change when resuming (it would change the run); "
                f"a resumed run may change only {flags()}",
                field=name,
            )
    if "eval_every" in changes and saved.val_size:
        raise ConfigError(
            "eval_every: the best model and early stopping are chosen at evaluations, so "
            "changing when they happen would change the result",
            field="eval_every",
        )
    if "epochs" in changes and "iterations" not in changes:
        changes = {**changes, "iterations": None}  # --epochs replaces a length in iterations
    return saved.replace(**changes)


def changes_between(saved: TrainConfig, config: TrainConfig) -> dict[str, Any]:
    """The fields in which `config` differs from the saved one."""
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(config, f.name) != getattr(saved, f.name)
    }


def resumed_config(
    saved: dict[str, Any], source: str, config: TrainConfig | None, changes: dict[str, Any]
) -> TrainConfig:
    """The config a resume trains with: the saved one (config.json's values, read from
    `source`), with `changes`, or with where `config` differs from it, checked."""
    original = TrainConfig.from_dict(saved, source)
    if config is not None:
        changes = {**changes_between(original, config), **changes}
    wanted = {k: v for k, v in changes.items() if getattr(original, k) != v}
    return resume_with(original, wanted)


def saved_config(run_dir: str | Path) -> tuple[dict[str, Any], str]:
    """A run directory's config.json values, and the file's name for messages."""
    return read_config(run_dir), str(Path(run_dir) / CONFIG)


# --- the state -------------------------------------------------------------------------------


def newest(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """(the newest valid state's folder, its tree), or None, with a warning, when the run
    saved none yet (it then starts from the beginning)."""
    found = newest_state(Path(run_dir) / STATES)
    if found is None:
        warnings.warn(
            f"{Path(run_dir) / STATES}: no saved state yet; starting the run from the beginning",
            MlplabWarning,
            stacklevel=3,
        )
    return found


def newest_bytes(run_dir: Path) -> bytes:
    """The newest valid state, encoded (b"" when there is none): what rank 0 sends the other
    ranks of a data-parallel job."""
    found = newest(run_dir)
    return encode_state(found[1]) if found is not None else b""


def load(trainer: Trainer, path: str | Path) -> Path | None:
    """Continue `trainer` from a state folder, or from the newest valid state of a run
    directory; returns the folder loaded, None when the run saved no state yet."""
    path = Path(path)
    if (path / "state.json").is_file():
        found = (path, load_state(path))
    else:
        found = newest(path)
        if found is None:
            return None
    trainer.load_state_dict(found[1], str(found[0] / "state.json"))
    return found[0]


def already_finished(result: TrainResult) -> bool:
    """The finished rule, seen from the result: the run was resumed from a finished state
    (it took no step)."""
    return result.resumed_from is not None and result.resumed_from == result.iterations


# --- whether a state fits --------------------------------------------------------------------


def identity(trainer: Trainer) -> dict[str, Any]:
    """What a saved state must share with the trainer for loading it to make sense."""
    config = trainer.config
    return {
        "model": str(config.parsed_spec),
        "engine": trainer.engine_name,
        "dataset": trainer.data.name,
        "val_size": config.val_size,
        "world_size": trainer.dist.world_size if trainer.dist else 1,
    }


def check_fits(trainer: Trainer, state: dict[str, Any]) -> None:
    """Raise ConfigError, naming the field, when `state` comes from another run than the
    trainer's (its identity), a length it cannot be extended to, or other techniques; a
    TypeError or KeyError when it is no state at all."""
    _check_identity(identity(trainer), state["identity"])
    _check_length(trainer, state["loop"])
    _check_techniques(trainer, state)


def _check_identity(mine: dict[str, Any], saved: dict[str, Any]) -> None:
    for key, value in mine.items():
        theirs = saved.get(key)
        if theirs is not None and type(theirs) is not type(value):  # not a state at all
            raise TypeError(
                f"identity.{key}: a {type(theirs).__name__}, not a {type(value).__name__}"
            )
        if key == "world_size" and theirs != value:
            raise ConfigError(
                f"world_size: the saved state was trained by {theirs} process(es); "
                f"resume it with {theirs}, not {value}",
                field="world_size",
            )
        if theirs != value:
            shown = repr(theirs) if len(repr(theirs)) <= 80 else repr(theirs)[:77] + "..."
            raise ConfigError(
                f"{key}: the saved state has {shown}, the config {value!r}", field=key
            )


def _check_length(trainer: Trainer, loop: dict[str, Any]) -> None:
    """A run may be extended (or shortened) only where that changes no step it takes."""
    config = trainer.config
    field = "iterations" if config.iterations else "epochs"
    done, planned = int(loop["iteration"]), int(loop["total"])
    if trainer.total < done:
        raise ConfigError(
            f"{field}: the saved run is already at iteration {done}, past the "
            f"{trainer.total} this config asks for",
            field=field,
        )
    kind = config.schedule
    if planned != trainer.total and (
        kind in ("onecycle", "cosine") or (kind == "step" and not config.step_size)
    ):
        raise ConfigError(
            f"{field}: the {kind} schedule spreads its learning rates over the run's "
            f"{planned} iterations; a run of {trainer.total} would differ at every step, "
            f"so start a new run instead",
            field=field,
        )


def _check_techniques(trainer: Trainer, state: dict[str, Any]) -> None:
    """A weight average and a mixup stream are in the state exactly when the config asks
    for them (a resumed run must take the same steps)."""
    if (trainer.average is None) != ("average" not in state):
        had = "has a weight average" if "average" in state else "has no weight average"
        raise ConfigError(f"ema: the saved state {had}; resume with the run's own ema", field="ema")
    if ("mixup" in trainer.generators) != ("mixup" in state["generators"]):
        had = "mixes" if "mixup" in state["generators"] else "does not mix"
        raise ConfigError(
            f"mixup: the saved run {had} its batches; resume with its mixup", field="mixup"
        )
