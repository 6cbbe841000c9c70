"""Time GET /healthz every 20 ms until stdin closes, then print the latencies as JSON.

    python -m benchmarks.healthz_probe http://127.0.0.1:8000

The load generator runs this in a process of its own: timed from the generator's event loop,
each answer would also wait for that busy loop to get round to it, and /healthz would look
slower than it is.
"""

from __future__ import annotations

import http.client
import json
import select
import sys
import time
from urllib.parse import urlsplit


def probe(url: str, stop, interval: float = 0.02) -> tuple[list[float], list[str]]:
    """(seconds per answer, failures), asking until stop(interval) returns True."""
    parts = urlsplit(url)
    latencies, failures = [], []
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
    while not stop(interval):
        start = time.perf_counter()
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as e:
            failures.append(f"healthz: {type(e).__name__}: {e}")
            conn.close()
            continue
        latencies.append(time.perf_counter() - start)
        if response.status != 200:
            failures.append(f"healthz: status {response.status}")
    conn.close()
    return latencies, failures


def stdin_closed(timeout: float) -> bool:
    """Wait up to `timeout` s; True once stdin is at its end (the parent is done)."""
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    return bool(ready) and not sys.stdin.buffer.read1(1)


def main(argv: list[str] | None = None) -> int:
    url = (argv if argv is not None else sys.argv[1:])[0]
    latencies, failures = probe(url, stdin_closed)
    print(json.dumps({"latencies": latencies, "failures": failures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
