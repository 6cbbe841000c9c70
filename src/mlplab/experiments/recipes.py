"""Named recipes: TOML configs shipped inside the package, with what each measured.

A recipe file holds a [train] table (TrainConfig fields, read like `--config`) and a
[recipe] table: a one-line description, the target it aims at, and `measured`, a list of
the runs made of it, each with its seeds, their test accuracies, training seconds, the
machine and the date. Nothing in a recipe was chosen on the test split: the runs that chose
it watched validation, and the test split was evaluated for the report.
"""

from __future__ import annotations

import math
import statistics
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from mlplab.errors import ConfigError

FOLDER = ("mlplab.experiments", "recipe_files")  # package data, shipped in the wheel


@dataclass(frozen=True)
class Measurement:
    """One set of runs of a recipe: the same config over several seeds, on one machine."""

    seeds: tuple[int, ...]
    test_accuracy: tuple[float, ...]
    train_seconds: tuple[float, ...]
    machine: str
    date: str
    command: str

    @property
    def mean(self) -> float:
        return statistics.fmean(self.test_accuracy)

    @property
    def std(self) -> float | None:
        """Sample standard deviation over the seeds; None for a single seed."""
        return statistics.stdev(self.test_accuracy) if len(self.test_accuracy) > 1 else None

    def summary(self) -> str:
        spread = f" ± {self.std:.2f}" if self.std is not None else ""
        seconds = max(self.train_seconds)
        return (
            f"{self.mean:.2f}%{spread} over {len(self.seeds)} seed(s), "
            f"up to {seconds / 60:.1f} min of training, {self.machine}, {self.date}"
        )


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    target: str
    train: dict[str, Any]
    measured: tuple[Measurement, ...] = field(default_factory=tuple)

    @property
    def command(self) -> str:
        return f"mlplab train --recipe {self.name}"


def names() -> list[str]:
    """The shipped recipes' names, sorted."""
    files = _folder().iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def _folder():
    package, folder = FOLDER
    return resources.files(package).joinpath(folder)


def load_recipe(name: str) -> Recipe:
    """The shipped recipe called `name`; ConfigError listing the known ones if none is."""
    known = names()
    if name not in known:
        raise ConfigError(
            f"recipe: unknown {name!r}; choose one of: {', '.join(known)}", field="recipe"
        )
    text = _folder().joinpath(f"{name}.toml").read_text("utf-8")
    values = tomllib.loads(text)
    meta = values.get("recipe", {})
    return Recipe(
        name=name,
        description=meta.get("description", ""),
        target=meta.get("target", ""),
        train=dict(values["train"]),
        measured=tuple(_measurement(m) for m in meta.get("measured", [])),
    )


def _measurement(m: dict[str, Any]) -> Measurement:
    accuracies = tuple(float(a) for a in m["test_accuracy"])
    if len(accuracies) != len(m["seeds"]) or not all(map(math.isfinite, accuracies)):
        raise ConfigError(
            "recipe: each measured seed needs one finite test accuracy", field="recipe"
        )
    return Measurement(
        seeds=tuple(m["seeds"]),
        test_accuracy=accuracies,
        train_seconds=tuple(float(s) for s in m["train_seconds"]),
        machine=m["machine"],
        date=m["date"],
        command=m["command"],
    )
