"""LiveRun: numbered events from the training thread, a bounded history, and async readers."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time

import pytest

from conftest import run_async
from mlplab.lab.live import LiveRun, finite

# Every wait in these tests has a timeout: a broken stream fails them, it never hangs them.
WAIT = 5.0


def metrics(i: int, loss: float | None = None, run: int = 1) -> dict:
    return {"run": run, "iteration": i, "train_loss": 2.3 / (1 + i) if loss is None else loss}


def ids(events) -> list[int]:
    return [e[0] for e in events]


def test_ids_count_up_by_one_across_kinds():
    live = LiveRun()
    kinds = ["experiment", "metrics", "snapshot", "eval", "status", "network", "metrics"]
    data = {"experiment": {"runs": [{"id": 1}]}, "metrics": metrics(1)}
    got = [live.publish(k, data.get(k, {"n": i})) for i, k in enumerate(kinds)]
    assert got == list(range(1, len(kinds) + 1))
    assert live.history()["last_event_id"] == len(kinds)


def test_since_returns_exactly_the_later_events_in_order():
    live = LiveRun()
    for i in range(6):
        live.publish("metrics" if i % 2 else "eval", {"iteration": i, "train_loss": 1.0})
    every = live.since(0)
    assert ids(every) == [1, 2, 3, 4, 5, 6]
    assert [e[1] for e in every] == ["eval", "metrics"] * 3
    assert [json.loads(e[2])["iteration"] for e in every] == list(range(6))
    for last in range(7):
        assert live.since(last) == every[last:]
    assert live.since(6) == []


def test_a_snapshot_is_only_ever_the_newest():
    live = LiveRun()
    live.publish("snapshot", {"n": 1})
    live.publish("metrics", metrics(1))
    live.publish("snapshot", {"n": 2})
    live.publish("metrics", metrics(2))
    events = live.since(0)
    assert [(e[0], e[1]) for e in events] == [(2, "metrics"), (3, "snapshot"), (4, "metrics")]
    assert json.loads(events[1][2]) == {"n": 2}
    assert live.since(3) == [events[2]]  # a page past the snapshot gets no old one again
    assert live.history()["snapshot"] == {"n": 2}


def test_the_ring_drops_the_oldest_and_a_page_behind_it_gets_a_reset():
    live = LiveRun(keep=5)
    for i in range(1, 9):
        live.publish("metrics", metrics(i))
    # 1, 2, 3 are gone; 4..8 are kept
    assert ids(live.since(3)) == [4, 5, 6, 7, 8]
    for gone in (0, 1, 2):
        assert live.since(gone) == [(8, "reset", "{}")]
    # an id from the future (a page from an earlier lab process) also reloads
    assert live.since(9) == [(8, "reset", "{}")]
    assert live.since(8) == []
    # the curve is history, not ring: it still starts at the first step
    assert live.history()["curves"]["1"][0] == [1, metrics(1)["train_loss"]]


def test_snapshots_do_not_count_against_the_ring():
    live = LiveRun(keep=3)
    live.publish("metrics", metrics(1))
    live.publish("snapshot", {"n": 1})
    for i in range(3, 6):
        live.publish("metrics", metrics(i))
    assert ids(live.since(1)) == [2, 3, 4, 5]
    assert live.since(0) == [(5, "reset", "{}")]


@pytest.mark.parametrize("points", [10, 11, 64])
def test_the_curve_is_bounded_and_keeps_first_and_recent_points(points):
    live = LiveRun(points=points)
    n = 1000
    for i in range(1, n + 1):
        live.publish("metrics", metrics(i))
        curve = live.history()["curves"]["1"]
        assert len(curve) <= points
    iterations = [p[0] for p in curve]
    assert iterations[0] == 1
    stride = iterations[1] - iterations[0]
    assert stride > 1 and stride & (stride - 1) == 0  # halved resolution: a power of two
    assert iterations == list(range(1, n + 1, stride))[: len(iterations)]  # evenly spaced
    assert iterations[-1] > n - stride  # the newest points are never more than a stride old
    assert len(curve) >= points // 2  # halving loses no more than half
    assert all(p[1] == metrics(p[0])["train_loss"] for p in curve)


def test_history_has_each_runs_curve_and_evals_and_the_latest_of_the_rest():
    live = LiveRun()
    live.publish("experiment", {"runs": [{"id": 1}, {"id": 2}], "link": "experiment=x"})
    live.publish("status", {"status": "ready"})
    live.publish("eval", {"run": 1, "iteration": 20, "test_accuracy": 80.0})
    live.publish("eval", {"run": 2, "iteration": 20, "test_accuracy": 70.0})
    live.publish("confusion", {"run": 1, "iteration": 20, "matrix": [[1]]})
    live.publish("metrics", metrics(21, run=1))
    live.publish("metrics", metrics(21, run=2))
    live.publish("eval", {"run": 1, "iteration": 40, "test_accuracy": 90.0})
    live.publish("network", {"run": 1, "layers": []})
    last = live.publish("status", {"status": "playing"})
    history = live.history()
    assert history["last_event_id"] == last == 10
    assert history["experiment"]["link"] == "experiment=x"
    assert history["status"] == {"status": "playing"}
    assert history["confusion"] == {"run": 1, "iteration": 20, "matrix": [[1]]}
    assert [e["iteration"] for e in history["evals"]["1"]] == [20, 40]
    assert [e["test_accuracy"] for e in history["evals"]["2"]] == [70.0]
    assert history["curves"] == {
        "1": [[21, metrics(21)["train_loss"]]],
        "2": [[21, metrics(21)["train_loss"]]],
    }
    assert history["network"] == {"run": 1, "layers": []}
    assert history["snapshot"] is None
    assert live.since(history["last_event_id"]) == []  # the stream starts where history ends


def test_a_new_experiment_starts_the_history_again_and_a_removed_run_goes():
    live = LiveRun(points=4)
    live.publish("experiment", {"runs": [{"id": 1}, {"id": 2}]})
    for i in range(1, 20):
        live.publish("metrics", metrics(i, run=1))
        live.publish("metrics", metrics(i, run=2))
    live.publish("eval", {"run": 2, "iteration": 19})
    live.publish("runs", {"runs": [{"id": 1}]})  # run 2 removed
    history = live.history()
    assert set(history["curves"]) == {"1"} and history["evals"] == {}
    live.publish("status", {"status": "finished"})
    live.publish("confusion", {"matrix": [[1]]})
    live.publish("snapshot", {"n": 1})
    live.publish("network", {"n": 1})
    begin = live.publish("experiment", {"runs": [{"id": 3}]})
    history = live.history()
    # the runs' curves, evals, confusion, snapshot and drawing go; the lab's status goes on
    assert history == {
        "last_event_id": begin,
        "curves": {},
        "evals": {},
        "snapshot": None,
        "network": None,
        "experiment": {"runs": [{"id": 3}]},
        "runs": {"runs": [{"id": 3}]},  # what a runs event would say
        "status": {"status": "finished"},
    }
    assert live.since(begin - 1) == [(begin, "experiment", '{"runs":[{"id":3}]}')]
    # the new run's curve starts at full resolution again
    for i in range(1, 4):
        live.publish("metrics", metrics(i, run=3))
    assert [p[0] for p in live.history()["curves"]["3"]] == [1, 2, 3]


def test_finite_turns_nan_and_infinity_into_none():
    nan, inf = math.nan, math.inf
    value = {"a": nan, "b": [inf, 1.5, {"c": -inf}], "d": (2, nan), "e": "nan", "f": 0}
    assert finite(value) == {
        "a": None,
        "b": [None, 1.5, {"c": None}],
        "d": [2, None],
        "e": "nan",
        "f": 0,
    }


def test_events_carry_nan_and_infinity_as_null():
    live = LiveRun()
    live.publish("metrics", {"iteration": 1, "train_loss": math.nan})
    live.publish("eval", {"iteration": 1, "test_loss": math.inf, "per_class": [1.0, -math.inf]})
    texts = [e[2] for e in live.since(0)]
    assert json.loads(texts[0]) == {"iteration": 1, "train_loss": None}
    assert json.loads(texts[1]) == {"iteration": 1, "test_loss": None, "per_class": [1.0, None]}
    assert all("NaN" not in t and "Infinity" not in t for t in texts)


async def next_of(stream):
    return await asyncio.wait_for(stream.__anext__(), WAIT)


def test_a_reader_gets_the_backlog_then_events_from_another_thread():
    live = LiveRun()
    for i in range(1, 4):
        live.publish("metrics", metrics(i))

    def train():
        for i in range(4, 7):
            time.sleep(0.02)
            live.publish("eval" if i == 5 else "metrics", metrics(i))

    async def read():
        stream = live.stream(1, heartbeat=WAIT)
        got = [await next_of(stream) for _ in range(2)]  # the backlog after id 1
        thread = threading.Thread(target=train)
        thread.start()
        try:
            got += [await next_of(stream) for _ in range(3)]
        finally:
            await asyncio.to_thread(thread.join, WAIT)
            await stream.aclose()
        return got

    got = run_async(read())
    assert [e["id"] for e in got] == ["2", "3", "4", "5", "6"]
    assert [e["event"] for e in got] == ["metrics", "metrics", "metrics", "eval", "metrics"]
    assert [json.loads(e["data"])["iteration"] for e in got] == [2, 3, 4, 5, 6]
    assert live._readers == set()  # a closed stream is no longer woken


def test_an_idle_stream_sends_a_heartbeat():
    live = LiveRun()

    async def read():
        stream = live.stream(0, heartbeat=0.05)
        try:
            return await next_of(stream)
        finally:
            await stream.aclose()

    assert run_async(read()) == {"comment": "still here"}


def test_publishing_never_waits_for_a_reader_that_does_not_read():
    keep, n = 100, 100_000
    live = LiveRun(keep=keep, points=50)
    live.publish("metrics", metrics(0))

    def train() -> float:
        start = time.perf_counter()
        for i in range(1, n + 1):
            live.publish("metrics", metrics(i))
        return time.perf_counter() - start

    async def stall():
        stream = live.stream(0, heartbeat=WAIT)
        try:
            first = await next_of(stream)  # now it is a registered reader, and it stops reading
            assert len(live._readers) == 1
            seconds = await asyncio.wait_for(asyncio.to_thread(train), 60)
            behind = await next_of(stream)  # it fell behind the ring: it must reload
            return first, seconds, behind
        finally:
            await stream.aclose()

    first, seconds, behind = run_async(stall(), 120)
    assert first["id"] == "1"
    # about 2 s here; a publish that waited for the reader would never end
    assert seconds < 30
    last = n + 1
    assert behind == {"id": str(last), "event": "reset", "data": "{}"}
    assert ids(live.since(last - keep)) == list(range(last - keep + 1, last + 1))
    assert live.since(last - keep - 1) == [(last, "reset", "{}")]
    assert len(live._events) == keep
    assert len(live.history()["curves"]["1"]) <= 50
