"""A bounded load test of /api/predict on a server you run: N requests, C at a time.

    python -m benchmarks.loadtest http://127.0.0.1:8000 --requests 2000 --concurrency 16

Each of C clients keeps one HTTP/1.1 connection open (h11 over asyncio streams, so that the
load generator costs the server's cores little). It stops after the request count or the
time limit, whichever comes first, and reports latency percentiles and requests/s. While it
runs, a separate process (benchmarks.healthz_probe) asks /healthz every 20 ms and times the answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11

from benchmarks.healthz_probe import probing
from benchmarks.stats import percentile

CHUNK = 64 * 1024
DROPS = (OSError, EOFError, asyncio.TimeoutError, h11.ProtocolError)


@dataclass(frozen=True)
class Case:
    """One kind of request in a mix, and the status the server should answer it with."""

    name: str
    body: bytes
    content_type: str | None
    expect: int = 200
    chunked: bool = False  # Transfer-Encoding: chunked, no Content-Length
    weight: int = 1


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closed the last one."""

    def __init__(self, host: str, port: int, timeout: float = 60.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._reader = self._writer = self._conn = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._conn = h11.Connection(h11.CLIENT)

    def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = self._conn = None

    async def request(self, method: str, path: str, case: Case | None = None):
        """(status, headers, body) of one request; a dropped connection raises."""
        try:
            return await asyncio.wait_for(self._exchange(method, path, case), self.timeout)
        except BaseException:
            self.close()
            raise

    async def _exchange(self, method: str, path: str, case: Case | None):
        if self._conn is None or self._conn.our_state is not h11.IDLE:
            self.close()
            await self._connect()
        headers = [("Host", f"{self.host}:{self.port}")]
        body = case.body if case else b""
        if case and case.content_type:
            headers.append(("Content-Type", case.content_type))
        if case and case.chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        elif method == "POST":
            headers.append(("Content-Length", str(len(body))))
        self._send(h11.Request(method=method, target=path, headers=headers))
        for i in range(0, len(body), CHUNK):
            self._send(h11.Data(data=body[i : i + CHUNK]))
            await self._writer.drain()
        self._send(h11.EndOfMessage())
        await self._writer.drain()
        status, reply_headers, reply = await self._response()
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            self._conn.start_next_cycle()
        else:  # the server said Connection: close
            self.close()
        return status, reply_headers, reply

    def _send(self, event) -> None:
        self._writer.write(self._conn.send(event))

    async def _response(self):
        status, headers, chunks = None, {}, []
        while True:
            event = self._conn.next_event()
            if event is h11.NEED_DATA:
                data = await self._reader.read(CHUNK)
                if not data:
                    raise EOFError("server closed the connection before answering")
                self._conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return status, headers, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("server closed the connection mid-answer")


@dataclass
class Tally:
    """What came back, kept as it arrives."""

    statuses: dict = field(default_factory=dict)  # case name -> {status: count}
    unexpected: list = field(default_factory=list)  # (case, status, body) for the first few
    latencies: list = field(default_factory=list)  # seconds, every answered request
    healthz: list = field(default_factory=list)  # seconds, every /healthz probe
    drops: list = field(default_factory=list)  # "Error: message"
    retry_after: set = field(default_factory=set)  # Retry-After values seen on 503s
    done: int = 0

    def record(self, case: Case, status: int, headers: dict, body: bytes, seconds: float):
        by_status = self.statuses.setdefault(case.name, {})
        by_status[status] = by_status.get(status, 0) + 1
        self.latencies.append(seconds)
        if status == 503:
            self.retry_after.add(headers.get("retry-after"))
        elif status != case.expect and len(self.unexpected) < 10:
            self.unexpected.append((case.name, status, body[:200].decode(errors="replace")))


def schedule(cases: list[Case], seed: int = 0) -> list[Case]:
    """One round of the mix, each case `weight` times, in a fixed shuffled order."""
    rounds = [c for c in cases for _ in range(c.weight)]
    random.Random(seed).shuffle(rounds)
    return rounds


async def run_load(
    url: str,
    cases: list[Case],
    requests: int,
    concurrency: int,
    max_seconds: float = 300.0,
    on_progress=None,
    progress_every: int = 1000,
) -> dict:
    """Send `requests` POSTs to url/api/predict, cycling through `cases`; returns stats.

    `on_progress(done)` is called after every `progress_every` answered requests (the soak
    samples the server's memory there).
    """
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    order, tally, counter = schedule(cases), Tally(), iter(range(requests))
    deadline = time.perf_counter() + max_seconds

    async def worker():
        client = Client(host, port)
        while time.perf_counter() < deadline and (i := next(counter, None)) is not None:
            case = order[i % len(order)]
            start = time.perf_counter()
            try:
                status, headers, body = await client.request("POST", "/api/predict", case)
            except DROPS as e:
                tally.drops.append(f"{case.name}: {type(e).__name__}: {e}")
                continue
            tally.record(case, status, headers, body, time.perf_counter() - start)
            tally.done += 1
            if on_progress and tally.done % progress_every == 0:
                on_progress(tally.done)
        client.close()

    with probing(url) as health:
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    tally.healthz.extend(health.latencies)
    tally.drops.extend(health.failures)
    return summarize(tally, concurrency, seconds)


def summarize(tally: Tally, concurrency: int, seconds: float) -> dict:
    """The numbers a load test reports."""
    totals: dict[str, int] = {}
    for by_status in tally.statuses.values():
        for status, n in by_status.items():
            totals[str(status)] = totals.get(str(status), 0) + n
    return {
        "requests": tally.done + len(tally.drops),
        "concurrency": concurrency,
        "statuses": totals,
        "by_case": {name: dict(s) for name, s in tally.statuses.items()},
        "unexpected": tally.unexpected,
        "errors": len(tally.drops),
        "first_error": tally.drops[:1],
        "overloaded_503": totals.get("503", 0),
        "server_errors_5xx": sum(n for s, n in totals.items() if s[0] == "5" and s != "503"),
        "retry_after": sorted(str(v) for v in tally.retry_after),
        "p50_ms": 1000 * percentile(tally.latencies, 50),
        "p99_ms": 1000 * percentile(tally.latencies, 99),
        "mean_ms": statistics.fmean(tally.latencies) * 1000 if tally.latencies else float("nan"),
        "healthz_probes": len(tally.healthz),
        "healthz_p50_ms": 1000 * percentile(tally.healthz, 50),
        "healthz_p99_ms": 1000 * percentile(tally.healthz, 99),
        "requests_per_s": tally.done / seconds if seconds else 0.0,
        "seconds": seconds,
    }


def digit_pixels() -> bytes:
    """A JSON body: a '1' drawn as a vertical bar, 784 pixels in [0, 1]."""
    pixels = [1.0 if 6 <= i // 28 <= 21 and 13 <= i % 28 <= 15 else 0.0 for i in range(784)]
    return json.dumps({"pixels": pixels}).encode()


def run_coroutine(make, *args):
    """asyncio.run(make(*args)) on a thread of its own, and its result.

    The calling thread may be running an event loop already (Playwright's sync API leaves
    one running), and asyncio.run refuses to start a second there."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(lambda: asyncio.run(make(*args))).result()


def load_test(
    url: str,
    requests: int = 2000,
    concurrency: int = 16,
    body: bytes | None = None,
    content_type: str = "application/json",
    max_seconds: float = 300.0,
) -> dict:
    """Send `requests` identical POSTs to url/api/predict, `concurrency` at a time."""
    case = Case("request", body if body is not None else digit_pixels(), content_type)
    return run_coroutine(run_load, url, [case], requests, concurrency, max_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.loadtest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("url", help="the server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args(argv)
    stats = load_test(args.url, args.requests, args.concurrency, max_seconds=args.max_seconds)
    print(json.dumps(stats, indent=2))
    ok = stats["errors"] == 0 and set(stats["statuses"]) == {"200"}
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
