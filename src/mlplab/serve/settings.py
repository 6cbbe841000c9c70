"""The server's limits, in one frozen dataclass that `mlplab serve` maps its flags onto."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from mlplab.errors import ConfigError

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeConfig:
    """Limits of one server process (each of `--workers` processes has its own).

    Args:
        max_body: bytes a request body may have; past it, 413, and the rest of the body is
            read and thrown away for a few seconds (mlplab.serve.limits.LINGER_SECONDS),
            so that a client that sends it all before it reads hears the 413, not a reset.
        threads: pool threads that decode images and run the model.
        queue: requests admitted at once, running or waiting; one more gets 503.
        timeout: seconds a request may take, reading its body included; past it, 504.
        retry_after: seconds a 503 tells the client to wait (the Retry-After header).
    """

    max_body: int = 2 * MIB
    threads: int = 1
    queue: int = 64
    timeout: float = 30.0
    retry_after: int = 1

    def __post_init__(self):
        for name in ("max_body", "threads", "queue", "retry_after"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ConfigError(f"timeout must be a positive number of seconds, got {self.timeout}")

    def to_dict(self) -> dict:
        """The fields, for passing to worker processes as JSON."""
        return asdict(self)
