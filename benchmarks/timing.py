"""Timing calls into code a benchmark does not own, from inside the process that runs it: the
method or function is swapped for a wrapper that hands each call's seconds to a recorder."""

from __future__ import annotations

import time
from collections.abc import Callable


class Timed:
    """owner.name (a method of a class, or a function of a module) wrapped so that each call's
    seconds, exceptions included, go to record(seconds); restore() puts the original back."""

    def __init__(self, owner, name: str, record: Callable[[float], None]):
        self.owner, self.name = owner, name
        self.inner = inner = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                record(time.perf_counter() - start)

        setattr(owner, name, timed)

    def restore(self) -> None:
        setattr(self.owner, self.name, self.inner)
