"""The body limit: 413 for a body over 2 MiB, declared, sent or chunked, then a lingering
close: the rest of the body is read and thrown away for a bounded time, whatever its length,
so that urllib and requests, which send the whole body before they read, hear the 413 and
not a reset, and a client that never stops sending is still cut off.

A real `mlplab serve --queue 1` on 127.0.0.1: one place in its queue, so that a refused body
which kept it while draining would turn the next prediction into a 503. Raw sockets where the
test must control the bytes and their timing. Timing bounds are generous: the machine is
shared.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest
from benchmarks.serve_soak import png, running_server
from raw_http import (
    chunked,
    exchange,
    port_of,
    post_head,
    read_reply,
    send_until_cut,
    status_of,
)

from mlplab.serve.limits import END_WAIT_SECONDS, LINGER_IDLE_SECONDS, LINGER_SECONDS

MIB = 1024 * 1024
ERROR = {"error": "body exceeds the limit of 2097152 bytes"}
SLACK = 3.0  # seconds past a time bound before a test calls it missed: the machine is shared


@pytest.fixture(scope="module")
def served(trained_run):
    with running_server(trained_run, "--queue", "1") as found:
        yield found


@pytest.fixture(scope="module")
def server(served):
    return served[0]


def too_big_json(size: int) -> bytes:
    """A pixels body of at least `size` bytes, as a user would post it."""
    row = json.dumps([0.5] * 784).encode()
    rows = size // (len(row) + 2) + 1
    return b'{"pixels": [' + b", ".join([row] * rows) + b"]}"


@pytest.fixture(scope="module")
def body_78_mb() -> bytes:
    body = too_big_json(78 * 10**6)
    assert 78 * 10**6 <= len(body) < 79 * 10**6
    return body


def test_declared_length_over_the_limit_is_refused_before_the_body_is_sent(server):
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=20) as s:
        s.sendall(post_head("image/png", f"Content-Length: {1024**3}\r\n"))  # no body follows
        reply = read_reply(s)
    assert status_of(reply) == 413 and b"limit of 2097152 bytes" in reply
    assert b"connection: close" in reply.lower()  # none of it is wanted: read, then hang up


def test_expect_100_continue_gets_the_413_and_no_go_ahead(server):
    head = post_head("image/png", f"Content-Length: {3 * MIB}\r\nExpect: 100-continue\r\n")
    reply = exchange(server, head)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:100]  # not "100 Continue" first


# just over the 2 MiB limit, 5 times it, and 10 times it
SIZES = [2 * MIB + 1, 10 * MIB, 20 * MIB]


@pytest.mark.parametrize("size", SIZES)
def test_a_sent_body_over_the_limit_reads_as_413_not_a_reset(server, size):
    reply = exchange(server, post_head("image/png", f"Content-Length: {size}\r\n"), b"\0" * size)
    assert status_of(reply) == 413 and b"limit of 2097152 bytes" in reply


def test_urllib_reads_the_413_of_a_body_ten_times_too_big(server):
    """The issue's case: 18.7 MiB of {"pixels": [[0.5] * 784] * 5000} from urllib, which
    writes the whole body before it reads a byte of the answer; 100 tries in a row."""
    import urllib.error
    import urllib.request

    body = json.dumps({"pixels": [[0.5] * 784] * 5000}).encode()
    assert len(body) > 18 * MIB
    for _ in range(100):
        request = urllib.request.Request(
            f"{server}/api/predict", data=body, headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=60)
        assert e.value.code == 413
        assert json.loads(e.value.read()) == {"error": "body exceeds the limit of 2097152 bytes"}


def test_urllib_reads_the_413_of_a_78_mb_body(server, body_78_mb):
    """Over the 32 MiB the server once read at most: such a body was refused unread, and
    urllib, still writing it, read a reset. Now it is read for a time, whatever its length."""
    import urllib.error
    import urllib.request

    for _ in range(5):
        request = urllib.request.Request(
            f"{server}/api/predict", data=body_78_mb, headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=60)
        assert e.value.code == 413 and e.value.headers["Connection"] == "close"
        line = e.value.read()
        assert b"\n" not in line and json.loads(line) == ERROR


@pytest.mark.parametrize("size", SIZES)
def test_requests_reads_the_413(server, size):
    import requests

    with requests.Session() as session:
        for _ in range(3):  # the connection is kept or closed as the server said
            reply = session.post(
                f"{server}/api/predict",
                data=too_big_json(size),
                headers={"Content-Type": "application/json"},
                timeout=60,
            )
            assert reply.status_code == 413
            assert reply.json() == {"error": "body exceeds the limit of 2097152 bytes"}


def test_requests_reads_the_413_of_a_78_mb_body(server, body_78_mb):
    requests = pytest.importorskip("requests")
    with requests.Session() as session:
        for _ in range(3):
            reply = session.post(
                f"{server}/api/predict",
                data=body_78_mb,
                headers={"Content-Type": "application/json"},
                timeout=60,
            )
            assert reply.status_code == 413 and reply.json() == ERROR


@pytest.mark.parametrize("size", SIZES)
def test_a_chunked_body_growing_past_the_limit_reads_as_413(server, size):
    """No Content-Length: urllib and requests send an iterable body chunked."""
    import urllib.error
    import urllib.request

    import requests

    def pieces():
        data = too_big_json(size)
        for i in range(0, len(data), 256 * 1024):
            yield data[i : i + 256 * 1024]

    request = urllib.request.Request(
        f"{server}/api/predict", data=pieces(), headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=60)
    assert e.value.code == 413 and b"limit of 2097152 bytes" in e.value.read()
    reply = requests.post(f"{server}/api/predict", data=pieces(), timeout=60)
    assert reply.status_code == 413 and "limit of 2097152 bytes" in reply.json()["error"]


def test_chunked_body_over_the_limit_is_413_and_the_connection_goes_on(server, mnist):
    head = post_head("image/png", "Transfer-Encoding: chunked\r\n")
    digit = png(255 - mnist.test.x[0].numpy(), 140)
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=20) as s:
        s.sendall(head + chunked(b"\0" * (3 * MIB)))
        first = read_reply(s)
        s.sendall(head + chunked(digit))  # same connection
        second = read_reply(s)
    assert status_of(first) == 413 and b"limit" in first
    assert status_of(second) == 200 and b'"class": "7"' in second


def test_a_chunked_body_that_ends_late_still_reads_as_413(server):
    """Past the limit, and not ended within END_WAIT_SECONDS: the 413 says close, the rest
    is still read, and the client that finishes sending reads its 413, then the end of the
    connection, not a reset."""
    frame = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)  # 48 of these: 3 MiB
    pause = 0.25  # the last 8 over 2 s: past END_WAIT_SECONDS, never idle for long
    assert 8 * pause > END_WAIT_SECONDS and pause < LINGER_IDLE_SECONDS
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=20) as s:
        s.sendall(post_head("image/png", "Transfer-Encoding: chunked\r\n") + frame * 40)
        for _ in range(8):
            time.sleep(pause)
            s.sendall(frame)
        s.sendall(b"0\r\n\r\n")
        reply = read_reply(s)
        assert s.recv(65536) == b""
    assert status_of(reply) == 413 and b"connection: close" in reply.lower()
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1]) == ERROR


def test_a_client_that_never_stops_sending_is_cut_off_at_the_time_bound(server):
    """A body declared at 1 TB and trickled in, never pausing long: its 413 comes at once,
    the server reads on while the client sends, and hangs up LINGER_SECONDS later."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=20) as s:
        s.sendall(post_head("image/png", f"Content-Length: {10**12}\r\n"))
        reply = read_reply(s)
        refused = time.monotonic()
        cut = send_until_cut(s, b"\0" * 16384, pause=0.1, within=LINGER_SECONDS + 30)
    assert status_of(reply) == 413 and b"connection: close" in reply.lower()
    assert cut is not None, "the server read on past its time bound"
    print(f"\ncut off {cut - refused:.2f} s after the 413 (bound: {LINGER_SECONDS} s)")
    assert LINGER_SECONDS - 0.5 < cut - refused < LINGER_SECONDS + SLACK


def test_a_client_that_stops_sending_is_let_go_after_the_idle_timeout(server):
    """Long before the time bound: a client that pauses is not going to send faster."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=20) as s:
        s.sendall(post_head("image/png", f"Content-Length: {1024**3}\r\n") + b"\0" * MIB)
        paused = time.monotonic()
        reply = read_reply(s)
        assert s.recv(65536) == b""  # the whole of what was sent was read: no reset
        waited = time.monotonic() - paused
    assert status_of(reply) == 413
    assert LINGER_IDLE_SECONDS - 0.5 < waited < LINGER_IDLE_SECONDS + 2 < LINGER_SECONDS


def test_an_endless_chunked_upload_is_cut_off_and_memory_stays(served):
    import psutil

    server, proc = served
    rss = psutil.Process(proc.pid).memory_info().rss
    piece = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=20) as s:
        s.sendall(post_head("image/png", "Transfer-Encoding: chunked\r\n"))
        start = time.monotonic()
        cut = send_until_cut(s, piece, pause=0, within=LINGER_SECONDS + 30)
    # Read for a time, however fast it comes: past the limit within a fraction of a second
    # on loopback, then read until LINGER_SECONDS after that.
    assert cut is not None, "the server read on past its time bound"
    assert LINGER_SECONDS - 0.5 < cut - start < LINGER_SECONDS + SLACK
    # what it read it threw away: the server grew by far less than it was sent
    assert psutil.Process(proc.pid).memory_info().rss - rss < 8 * MIB


def flood(url: str, seen: dict) -> None:
    """An endless chunked body as fast as the server reads it; seen["cut"]: when it hung up."""
    piece = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=20) as s:
        s.sendall(post_head("image/png", "Transfer-Encoding: chunked\r\n"))
        seen["cut"] = send_until_cut(s, piece, pause=0, within=LINGER_SECONDS + 30)


def test_other_requests_are_answered_while_a_body_drains(server, mnist):
    """The drain runs on the event loop between other requests, and the refused request has
    given back its place in the queue of 1: /healthz and a prediction are answered."""
    seen = {}
    thread = threading.Thread(target=flood, args=(server, seen), daemon=True)
    thread.start()
    time.sleep(END_WAIT_SECONDS)  # refused (2 MiB on loopback: milliseconds), and draining
    pixels = json.dumps({"pixels": (mnist.test.x[0].reshape(-1).double() / 255).tolist()})
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=10)
    times = []
    for _ in range(10):
        start = time.perf_counter()
        conn.request("GET", "/healthz")
        reply = conn.getresponse()
        assert reply.status == 200 and json.loads(reply.read()) == {"status": "ok"}
        times.append(time.perf_counter() - start)
    conn.request("POST", "/api/predict", pixels, {"Content-Type": "application/json"})
    reply = conn.getresponse()
    assert reply.status == 200 and json.loads(reply.read())["top"]["class"] == "7"
    answered = time.monotonic()
    conn.close()
    thread.join(timeout=LINGER_SECONDS + 40)
    assert seen.get("cut") is not None and answered < seen["cut"]  # all while it drained
    print(f"\n/healthz while a body drains: slowest of 10 {max(times) * 1000:.0f} ms")
    assert max(times) < 1.0
