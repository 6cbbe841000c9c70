"""A bounded load test of /api/predict on a server you run: N requests, C at a time.

    python -m mlplab.serve.loadtest http://127.0.0.1:8000 --requests 2000 --concurrency 16

Each worker thread keeps one HTTP/1.1 connection open. It stops after the request count or
the time limit, whichever comes first, and reports latency percentiles and requests/s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from urllib.parse import urlsplit


def digit_pixels() -> bytes:
    """A JSON body: a '1' drawn as a vertical bar, 784 pixels in [0, 1]."""
    pixels = [1.0 if 6 <= i // 28 <= 21 and 13 <= i % 28 <= 15 else 0.0 for i in range(784)]
    return json.dumps({"pixels": pixels}).encode()


def load_test(
    url: str,
    requests: int = 2000,
    concurrency: int = 16,
    body: bytes | None = None,
    content_type: str = "application/json",
    max_seconds: float = 300.0,
) -> dict:
    """Send `requests` POSTs to url/api/predict from `concurrency` threads; returns stats."""
    parts = urlsplit(url)
    body = body if body is not None else digit_pixels()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.perf_counter() + max_seconds

    def worker():
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        while time.perf_counter() < deadline:
            with lock:
                if next(counter, None) is None:
                    break
            start = time.perf_counter()
            try:
                conn.request("POST", "/api/predict", body, {"Content-Type": content_type})
                response = conn.getresponse()
                response.read()
                status = str(response.status)
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
                status = None
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
            elapsed = time.perf_counter() - start
            with lock:
                if status is not None:
                    statuses[status] = statuses.get(status, 0) + 1
                    latencies.append(elapsed)
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    ms = sorted(x * 1000 for x in latencies)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))] if ms else float("nan")  # noqa: E731
    return {
        "requests": len(latencies) + len(errors),
        "concurrency": concurrency,
        "statuses": statuses,
        "errors": len(errors),
        "first_error": errors[:1],
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "requests_per_s": len(latencies) / seconds if seconds else 0.0,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlplab.serve.loadtest", description=__doc__.splitlines()[0]
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
