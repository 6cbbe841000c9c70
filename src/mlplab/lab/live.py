"""What the lab's pages see of the run: numbered events, and the history a new page starts from.

The training thread publishes; any number of Server-Sent-Event streams read. Publishing never
waits for a reader, so a slow or vanished browser cannot stall training, and memory stays
bounded whatever the run's length:

- `metrics`, `eval`, `status` and `confusion` events go into a ring of the newest `keep`;
- a `snapshot` (weight tiles, histograms, norms) is only ever the newest one: a page that
  falls behind skips to it;
- the loss curve keeps at most `points` points, halving its resolution when full.

Every event has an id, one counter for all kinds. A page opens the stream after the id its
history ended at (or the browser's Last-Event-ID, on a reconnect) and misses nothing the ring
still holds; one that fell further behind gets a `reset` event and reloads the history.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import Any


def finite(value: Any) -> Any:
    """The value with every NaN or infinity as None: JSON has neither, and a diverging run
    makes both."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


class LiveRun:
    """Events from one thread to many async readers; see the module docstring."""

    def __init__(self, keep: int = 2000, points: int = 2000):
        self._lock = threading.Lock()
        self._events: deque[tuple[int, str, str]] = deque(maxlen=keep)
        self._snapshot: tuple[int, str, str] | None = None
        self._next = 1
        self._dropped = 0  # the id of the newest event the ring has let go of
        self._points = points
        self._curve: list[list[float]] = []  # [iteration, train loss]
        self._stride = 1  # keep every stride-th metrics point
        self._seen = 0
        self._evals: list[dict[str, Any]] = []
        self._latest: dict[str, Any] = {}  # kind -> the newest payload of status/confusion
        self._readers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def publish(self, kind: str, data: dict[str, Any]) -> int:
        """Add an event (from any thread); returns its id."""
        data = finite(data)  # the history keeps what the stream sends
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
        with self._lock:
            event_id, self._next = self._next, self._next + 1
            if kind == "snapshot":
                self._snapshot = (event_id, kind, text)
            else:
                if len(self._events) == self._events.maxlen:
                    self._dropped = self._events[0][0]
                self._events.append((event_id, kind, text))
            self._remember(kind, data)
            readers = list(self._readers)
        for loop, wake in readers:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # that reader's loop has closed
                pass
        return event_id

    def _remember(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "metrics":
            self._seen += 1
            if (self._seen - 1) % self._stride == 0:
                self._curve.append([data["iteration"], data["train_loss"]])
            if len(self._curve) > self._points:
                self._curve, self._stride = self._curve[::2], self._stride * 2
        elif kind == "eval":
            self._evals.append(data)
        elif kind == "begin":  # a new run: the history starts again (the lab's status goes on)
            self._curve, self._evals = [], []
            self._latest = {k: v for k, v in self._latest.items() if k == "status"}
            self._stride, self._seen, self._snapshot = 1, 0, None
        if kind in ("status", "confusion", "begin", "metrics"):
            self._latest[kind] = data

    def history(self) -> dict[str, Any]:
        """Everything a new page needs, and the id of the last event it covers."""
        with self._lock:
            snapshot = json.loads(self._snapshot[2]) if self._snapshot else None
            return {
                "last_event_id": self._next - 1,
                "curve": list(self._curve),
                "evals": list(self._evals),
                "snapshot": snapshot,
                **{k: v for k, v in self._latest.items()},
            }

    def since(self, last_id: int) -> list[tuple[int, str, str]]:
        """The events after `last_id`, oldest first; a `reset` when some are gone already."""
        with self._lock:
            if last_id >= self._next or last_id < self._dropped:
                return [(self._next - 1, "reset", "{}")]
            found = [e for e in self._events if e[0] > last_id]
            if self._snapshot is not None and self._snapshot[0] > last_id:
                found.append(self._snapshot)
            return sorted(found)

    async def stream(self, last_id: int, heartbeat: float = 15.0) -> AsyncIterator[dict]:
        """Events after `last_id` as sse-starlette dicts, then each as it comes, forever."""
        wake = asyncio.Event()
        reader = (asyncio.get_running_loop(), wake)
        with self._lock:
            self._readers.add(reader)
        try:
            while True:
                wake.clear()
                batch = self.since(last_id)
                for event_id, kind, text in batch:
                    yield {"id": str(event_id), "event": kind, "data": text}
                    last_id = event_id
                if not batch:
                    try:
                        await asyncio.wait_for(wake.wait(), heartbeat)
                    except TimeoutError:
                        yield {"comment": "still here"}
        finally:
            with self._lock:
                self._readers.discard(reader)
