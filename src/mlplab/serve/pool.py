"""Blocking work (decoding, inference) on a few threads, with a bound on what may wait.

The event loop only reads requests and writes responses, so /healthz answers while images
decode. A request takes a ticket when it arrives; with none left it is refused at once (the
caller answers 503) instead of joining an unbounded queue. A ticket is returned when its job
ends, not when its request gives up: a job that cannot be stopped mid-way still counts.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor


class Overloaded(Exception):
    """Every ticket is taken: the pool is running or queueing as much as it may."""


class WorkPool:
    """`threads` threads; at most `limit` requests admitted (running or waiting) at a time."""

    def __init__(self, threads: int, limit: int):
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="mlplab-serve")
        self._free, self._lock = limit, threading.Lock()

    @property
    def free(self) -> int:
        """Tickets left."""
        return self._free

    def admit(self) -> Ticket:
        """A ticket for one request, or Overloaded."""
        with self._lock:
            if self._free <= 0:
                raise Overloaded
            self._free -= 1
        return Ticket(self)

    def _release(self) -> None:
        with self._lock:
            self._free += 1

    def shutdown(self) -> None:
        """Finish the jobs already queued, then stop the threads."""
        self._executor.shutdown(wait=True)


class Ticket:
    """One admitted request: at most one job, and the ticket goes back when that job ends."""

    def __init__(self, pool: WorkPool):
        self._pool, self._held = pool, True

    async def run(self, fn, *args):
        """fn(*args) on a pool thread; cancelling the await cancels the job if not yet begun."""
        assert self._held, "one job per ticket"
        future: Future = self._pool._executor.submit(fn, *args)
        self._held = False  # from here the job returns the ticket, however the request ends
        future.add_done_callback(lambda _: self._pool._release())
        return await asyncio.wrap_future(future)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc) -> None:
        if self._held:
            self._held = False
            self._pool._release()
