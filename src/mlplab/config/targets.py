"""Where a run is tracked: `tensorboard[=DIR]` and `mlflow[=TRACKING_URI]`, parsed and checked.

This module imports neither tool: a config names its targets whether or not their extras are
installed, and the error for a missing extra comes when a run starts (mlplab.tracking).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlplab.errors import ConfigError

KINDS = ("tensorboard", "mlflow")
EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


@dataclass(frozen=True)
class LogTarget:
    """One tracking target: its kind, and its folder (tensorboard) or tracking URI (mlflow);
    `where` None means the default (the run's tb/ folder; MLflow's own default URI)."""

    kind: str
    where: str | None = None

    def __str__(self) -> str:
        return self.kind if self.where is None else f"{self.kind}={self.where}"


def parse_log(text: str) -> LogTarget:
    """`tensorboard`, `tensorboard=DIR`, `mlflow` or `mlflow=URI` -> a LogTarget."""
    kind, sep, where = text.partition("=")
    kind = kind.strip()
    if kind not in KINDS:
        raise ConfigError(
            f"log: unknown target {kind!r}; use tensorboard[=DIR] or mlflow[=TRACKING_URI]",
            field="log",
        )
    if sep and not where.strip():
        raise ConfigError(
            f"log: {kind}= needs a {'folder' if kind == 'tensorboard' else 'URI'}", field="log"
        )
    return LogTarget(kind, where.strip() or None)


def parse_logs(values: tuple[str, ...] | list[str]) -> tuple[LogTarget, ...]:
    """Every target of a config's `log`, each kind at most once."""
    targets = tuple(parse_log(v) for v in values)
    kinds = [t.kind for t in targets]
    for kind in KINDS:
        if kinds.count(kind) > 1:
            raise ConfigError(
                f"log: {kind} is given {kinds.count(kind)} times; give it once", field="log"
            )
    return targets


def redact(url: str) -> str:
    """The URL with its password hidden, fit to print or to log."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
