"""A soak test of `mlplab serve`: a long mix of good and bad requests, and what must hold.

Used by tests/serve/test_soak.py (bounded) and benchmarks/soak.py (20,000 requests); it
lives here, beside the benchmarks, because nothing in the product runs it. It holds
when: no 5xx but the deliberate 503s of overload (counted), no dropped connection, every case
answered with its own status, server memory (children included) grown by at most 10% from
the first to the last thousand requests, and /healthz answering fast under the load.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

from benchmarks.healthz_probe import wait_until_healthy
from benchmarks.loadtest import Case, run_coroutine, run_load
from benchmarks.processes import Child, free_port, tree_rss

MIB = 1024 * 1024


def png(image: np.ndarray, size: int | None = None) -> bytes:
    """A uint8 array as PNG bytes, optionally resized to size x size."""
    from PIL import Image

    picture = Image.fromarray(image)
    if size:
        picture = picture.resize((size, size))
    buf = io.BytesIO()
    picture.save(buf, "PNG")
    return buf.getvalue()


def multipart(field: str, data: bytes, boundary: str = "mlplabsoak") -> tuple[bytes, str]:
    """A multipart/form-data body with one file part, and its Content-Type."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="d.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + data + tail, f"multipart/form-data; boundary={boundary}"


def mixed_cases(digit: np.ndarray) -> list[Case]:
    """Good images and JSON, and one case of every kind of bad input, from one 28x28 digit."""
    drawn = png(255 - digit, 140)  # dark ink on white, as a user would draw it
    pixels = (digit.astype(np.float64) / 255).reshape(-1).tolist()
    one = json.dumps({"pixels": pixels}).encode()
    form, form_type = multipart("file", drawn)
    other, other_type = multipart("other", drawn)
    wide = png(np.zeros((10, 4100), np.uint8))
    js = "application/json"
    return [
        Case("png", drawn, "image/png", 200, weight=4),
        Case("png, chunked", drawn, "image/png", 200, chunked=True),
        Case("multipart", form, form_type, 200, weight=3),
        Case("octet-stream", drawn, "application/octet-stream", 200),
        Case("json", one, js, 200, weight=4),
        Case("json batch of 4", json.dumps({"pixels": [pixels] * 4}).encode(), js, 200, weight=2),
        Case("not an image", b"hello, not an image", "image/png", 415),
        Case("truncated png", drawn[: len(drawn) // 2], "image/png", 415),
        Case("empty body", b"", "image/png", 400),
        Case("over 2 MB, Content-Length", b"\0" * (2 * MIB + 1), "image/png", 413),
        Case("over 2 MB, chunked", b"\0" * (3 * MIB), "image/png", 413, chunked=True),
        Case("4100x10 px", wide, "image/png", 413),
        Case("wrong pixel count", b'{"pixels": [0.5, 0.5]}', js, 422),
        Case("NaN", b'{"pixels": [' + b",".join([b"NaN"] * 784) + b"]}", js, 422),
        Case("out of range", b'{"pixels": [' + b",".join([b"2"] * 784) + b"]}", js, 422),
        Case("malformed JSON", b'{"pixels": [1,', js, 400),
        Case("no pixels key", b'{"image": 1}', js, 422),
        Case("unknown type", b"abc", "text/plain", 415),
        Case("no content type", b"abc", None, 415),
        Case("multipart without 'file'", other, other_type, 422),
        Case("multipart without boundary", form, "multipart/form-data", 400),
    ]


@contextlib.contextmanager
def running_server(model: str | Path, *args: str, start_timeout: float = 120.0):
    """`python -m mlplab serve MODEL ARGS` on a free port, once /healthz answers: yields
    (url, process); afterwards SIGTERM to it and its workers, SIGKILL if they linger.

    Its output goes to a temporary file, not a pipe: a pipe nobody reads fills up, and then
    the server blocks on its next log line."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "mlplab", "serve", str(model), "--port", str(port), *args]
    url = f"http://127.0.0.1:{port}"
    with Child(command, env) as server:
        wait_until_healthy(url, server, start_timeout)
        yield url, server.proc


def soak(
    url: str,
    pid: int,
    cases: list[Case],
    requests: int,
    concurrency: int = 32,
    healthz_p99_ms: float = 100.0,
    max_seconds: float = 1800.0,
) -> dict:
    """Run the mix against a server whose process is `pid`; the stats, with "failures"."""
    rss: list[tuple[int, int]] = []  # (requests answered, bytes)
    stats = run_coroutine(
        functools.partial(run_load, on_progress=lambda done: rss.append((done, tree_rss(pid)))),
        url,
        cases,
        requests,
        concurrency,
        max_seconds,
    )
    stats["rss_mib"] = [(n, round(b / MIB, 1)) for n, b in rss]
    stats["rss_growth"] = rss[-1][1] / rss[0][1] - 1 if len(rss) >= 2 else float("nan")
    stats["failures"] = failures(stats, requests, healthz_p99_ms)
    return stats


def failures(stats: dict, requests: int, healthz_p99_ms: float) -> list[str]:
    """What the soak asserts, as the list of what did not hold."""
    found = []
    if stats["requests"] != requests:
        found.append(f"{stats['requests']} of {requests} requests were sent in the time limit")
    if stats["server_errors_5xx"]:
        found.append(f"{stats['server_errors_5xx']} responses were 5xx (other than 503)")
    if stats["errors"]:
        found.append(f"{stats['errors']} connections dropped, first: {stats['first_error']}")
    if stats["unexpected"]:
        found.append(f"unexpected statuses (case, status, body): {stats['unexpected']}")
    if stats["overloaded_503"] and stats["retry_after"] != ["1"]:
        found.append(f"503s without Retry-After: 1: {stats['retry_after']}")
    if not stats["rss_growth"] <= 0.10:
        found.append(f"server memory grew {stats['rss_growth']:.1%}: {stats['rss_mib']}")
    if not stats["healthz_p99_ms"] <= healthz_p99_ms:
        found.append(f"/healthz p99 {stats['healthz_p99_ms']:.0f} ms > {healthz_p99_ms:g} ms")
    return found
