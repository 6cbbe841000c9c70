"""GET /healthz: wait until a server answers it, or time its answers every 20 ms under load.

    python -m benchmarks.healthz_probe http://127.0.0.1:8000

runs the timing probe in a process of its own, on one keep-alive connection, until its stdin
closes, then prints the latencies as JSON; `probing()` does that for a `with` block. The load
generator needs it: timed from the generator's busy event loop, each answer would also wait
for that loop to get round to it, and /healthz would look slower than it is. The lab's
benchmark probes from a thread (Prober.start), a new connection each time: its own main
thread only waits.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import select
import sys
import time
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

from benchmarks.processes import Child, Sampler, repeat, wait_for


class Prober:
    """Asks GET /healthz, once per ask(), or every `every` seconds from start() to stop().

    `latencies` holds the seconds of every answer that came back 200 {"status": "ok"}, from
    sending the request (and opening the connection, without keep_alive) to the last byte;
    `failures` says what went wrong with each of the others.
    """

    def __init__(self, url: str, keep_alive: bool = False, timeout: float = 5.0):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.keep_alive, self.timeout = keep_alive, timeout
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._conn: http.client.HTTPConnection | None = None
        self._sampler: Sampler | None = None

    def ask(self) -> None:
        """One GET /healthz: its seconds go in `latencies`, or what went wrong in `failures`."""
        start = time.perf_counter()
        conn = self._conn or http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as e:
            self.failures.append(f"healthz: {type(e).__name__}: {e}")
            conn.close()
            self._conn = None
            return
        seconds = time.perf_counter() - start
        if self.keep_alive:
            self._conn = conn
        else:
            conn.close()
        if response.status != 200:
            self.failures.append(f"healthz: status {response.status}")
        elif _json(body) != {"status": "ok"}:
            self.failures.append(f"healthz: answered {body[:80]!r}")
        else:
            self.latencies.append(seconds)

    @property
    def ms(self) -> list[float]:
        """The latencies in milliseconds."""
        return [s * 1000 for s in self.latencies]

    def start(self, every: float) -> Prober:
        """ask() every `every` seconds on a thread of its own, until stop()."""
        self._sampler = Sampler(every, self.ask, "healthz")
        self._sampler.start()
        return self

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _json(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return None


def answers(url: str) -> bool:
    """Whether url/healthz answers 200 right now."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait_until_healthy(url: str, child: Child, timeout: float) -> None:
    """Return once url/healthz answers 200; RuntimeError with the server's last words if it
    exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    wait_for("an answer from /healthz", lambda: answers(url), deadline, child, 0.2, lines=40)


@contextlib.contextmanager
def probing(url: str, every: float = 0.02) -> Iterator[Prober]:
    """`python -m benchmarks.healthz_probe URL` for the duration of a `with` block. The Prober
    it yields holds the latencies and failures once the block has ended."""
    found = Prober(url)
    command = [sys.executable, "-m", "benchmarks.healthz_probe", url, "--every", str(every)]
    with Child(command, stdin=True) as child:
        try:
            yield found
        finally:
            child.proc.stdin.close()  # the probe's signal to stop and report
            if child.wait(60) is None:
                found.failures.append("healthz probe: did not stop")
            else:
                _read_report(child.output(), found)


def _read_report(output: str, into: Prober) -> None:
    lines = output.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, ValueError):
        into.failures.append(f"healthz probe: no report: {output.strip()[-300:]}")
        return
    into.latencies += report["latencies"]
    into.failures += report["failures"]


def stdin_closed(timeout: float) -> bool:
    """Wait up to `timeout` s; True once stdin is at its end (the parent is done)."""
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    return bool(ready) and not sys.stdin.buffer.read1(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.healthz_probe")
    parser.add_argument("url")
    parser.add_argument("--every", type=float, default=0.02, help="seconds (0.02)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (30)")
    args = parser.parse_args(argv)
    prober = Prober(args.url, keep_alive=True, timeout=args.timeout)
    repeat(args.every, prober.ask, stdin_closed)
    prober.stop()
    print(json.dumps({"latencies": prober.latencies, "failures": prober.failures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
