"""What the lab's pages see of its experiment: numbered events, and the history a new page
starts from.

The lab's thread publishes; any number of Server-Sent-Event streams read. Publishing never
waits for a reader, so a slow or vanished browser cannot stall training, and memory stays
bounded whatever the runs' lengths:

- an `experiment` event starts the history again; a `runs` event says which runs it has now
  (one added, one removed); `metrics` and `eval` events name their run by its id;
- `metrics`, `eval`, `status`, `runs` and `confusion` events go into a ring of the newest
  `keep`;
- a `snapshot` (weight tiles, histograms, norms) and a `network` (the live drawing) are only
  ever the newest one of each: a page that falls behind skips to it;
- each run's loss curve keeps at most `points` points, halving its resolution when full.

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

LATEST_ONLY = ("snapshot", "network")  # kinds of which a page only ever needs the newest


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


class Curve:
    """One run's training-loss points, at most `points`: when full, every other one goes and
    only every second new point is kept, so the curve spans the whole run."""

    def __init__(self, points: int):
        self.points, self.stride, self.seen = points, 1, 0
        self.xy: list[list[float]] = []

    def add(self, iteration: int, loss: float | None) -> None:
        self.seen += 1
        if (self.seen - 1) % self.stride == 0:
            self.xy.append([iteration, loss])
        if len(self.xy) > self.points:
            self.xy, self.stride = self.xy[::2], self.stride * 2


class LiveRun:
    """Events from one thread to many async readers; see the module docstring."""

    def __init__(self, keep: int = 2000, points: int = 2000):
        self._lock = threading.Lock()
        self._events: deque[tuple[int, str, str]] = deque(maxlen=keep)
        self._newest: dict[str, tuple[int, str, str]] = {}  # LATEST_ONLY kind -> its event
        self._next = 1
        self._dropped = 0  # the id of the newest event the ring has let go of
        self._points = points
        self._curves: dict[int, Curve] = {}  # run id -> its loss curve
        self._evals: dict[int, list[dict[str, Any]]] = {}  # run id -> its evaluations
        self._latest: dict[str, Any] = {}  # kind -> the newest payload of status, runs, ...
        self._readers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def publish(self, kind: str, data: dict[str, Any]) -> int:
        """Add an event (from any thread); returns its id."""
        data = finite(data)  # the history keeps what the stream sends
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
        with self._lock:
            event_id, self._next = self._next, self._next + 1
            if kind in LATEST_ONLY:
                self._newest[kind] = (event_id, kind, text)
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
        run = data.get("run", 0)
        if kind == "metrics":
            self._curves.setdefault(run, Curve(self._points)).add(
                data["iteration"], data["train_loss"]
            )
        elif kind == "eval":
            self._evals.setdefault(run, []).append(data)
        elif kind == "experiment":  # a new experiment: its history starts again
            self._curves, self._evals, self._newest = {}, {}, {}
            self._latest = {k: v for k, v in self._latest.items() if k == "status"}
            self._latest["runs"] = {k: data[k] for k in ("runs", "focus", "link") if k in data}
        elif kind == "runs":  # a run removed: its history goes
            kept = {r["id"] for r in data["runs"]}
            self._curves = {k: v for k, v in self._curves.items() if k in kept}
            self._evals = {k: v for k, v in self._evals.items() if k in kept}
        if kind in ("status", "confusion", "experiment", "runs"):
            self._latest[kind] = data
        elif kind in LATEST_ONLY:
            self._latest[kind] = data

    def history(self) -> dict[str, Any]:
        """Everything a new page needs, and the id of the last event it covers."""
        with self._lock:
            return {
                "last_event_id": self._next - 1,
                "curves": {str(k): list(c.xy) for k, c in self._curves.items()},
                "evals": {str(k): list(v) for k, v in self._evals.items()},
                "snapshot": self._latest.get("snapshot"),
                "network": self._latest.get("network"),
                **{k: v for k, v in self._latest.items() if k not in LATEST_ONLY},
            }

    def since(self, last_id: int) -> list[tuple[int, str, str]]:
        """The events after `last_id`, oldest first; a `reset` when some are gone already."""
        with self._lock:
            if last_id >= self._next or last_id < self._dropped:
                return [(self._next - 1, "reset", "{}")]
            found = [e for e in self._events if e[0] > last_id]
            found += [e for e in self._newest.values() if e[0] > last_id]
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
