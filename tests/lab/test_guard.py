"""SameOrigin, called as ASGI with hand-made scopes: what another web site's page may not do."""

from __future__ import annotations

import json

import pytest

from conftest import run_async
from mlplab.lab.guard import SameOrigin

PORT = 8765
LAB = f"127.0.0.1:{PORT}"


class Inner:
    """The lab app behind the guard: answers 200 and remembers that it was reached."""

    def __init__(self):
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(method: str, host: str | None = LAB, loopback: bool = True, **headers: str):
    """One request through SameOrigin(port=PORT); (status, JSON body or None, inner reached)."""
    pairs = [] if host is None else [(b"host", host.encode("latin-1"))]
    pairs += [(k.replace("_", "-").encode(), v.encode("latin-1")) for k, v in headers.items()]
    scope = {"type": "http", "method": method, "path": "/api/control", "headers": pairs}
    inner, sent = Inner(), []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    run_async(SameOrigin(inner, PORT, loopback)(scope, receive, send))
    start, body = sent[0], sent[1]["body"]
    assert start["type"] == "http.response.start"
    if start["status"] == 403:
        assert inner.calls == 0
        assert (b"content-type", b"application/json") in start["headers"]
        assert (b"content-length", str(len(body)).encode()) in start["headers"]
        return 403, json.loads(body), False
    assert inner.calls == 1
    return start["status"], None, True


def test_a_post_from_another_origin_is_refused():
    status, body, reached = call("POST", origin="http://evil.example")
    assert (status, reached) == (403, False)
    assert body == {"error": "origin 'http://evil.example' may not control this lab"}


@pytest.mark.parametrize(
    "origin",
    [
        f"http://evil.example:{PORT}",
        f"http://127.0.0.1:{PORT + 1}",
        "http://127.0.0.1",
        f"http://localhost:{PORT}",  # a loopback name, but not the one the page was opened at
        "null",  # a sandboxed iframe or a file:// page
        f"file://{LAB}",
        f"ftp://{LAB}",
    ],
)
def test_a_post_from_any_origin_but_the_labs_own_is_refused(origin):
    status, body, _ = call("POST", origin=origin)
    assert status == 403
    assert body["error"].startswith(f"origin {origin!r}")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_same_origin_request_passes(method):
    assert call(method, origin=f"http://{LAB}") == (200, None, True)
    assert call(method, origin=f"https://{LAB}") == (200, None, True)


def test_a_post_without_origin_passes_when_the_host_is_right():
    assert call("POST") == (200, None, True)  # curl, urllib
    assert call("POST", sec_fetch_site="same-origin") == (200, None, True)
    assert call("POST", sec_fetch_site="none") == (200, None, True)


def test_a_post_the_browser_marks_cross_site_is_refused():
    status, body, _ = call("POST", sec_fetch_site="cross-site")
    assert status == 403
    assert body == {"error": "a cross-site request may not control this lab"}
    status, _, _ = call("POST", origin=f"http://{LAB}", sec_fetch_site="cross-site")
    assert status == 403


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_reads_from_another_origin_pass_on_the_right_host(method):
    assert call(method, origin="http://evil.example") == (200, None, True)
    assert call(method, sec_fetch_site="cross-site") == (200, None, True)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_foreign_host_is_refused_on_loopback_dns_rebinding(method):
    host = f"evil.example:{PORT}"
    status, body, _ = call(method, host=host, origin=f"http://{host}")
    assert status == 403
    assert body == {"error": f"host {host!r} is not this lab's; open it at {LAB}"}


def test_a_foreign_host_passes_when_the_lab_is_not_on_loopback():
    host = f"lab.example:{PORT}"
    assert call("GET", host=host, loopback=False) == (200, None, True)
    assert call("POST", host=host, loopback=False, origin=f"http://{host}") == (200, None, True)
    # but the origin check still holds
    status, _, _ = call("POST", host=host, loopback=False, origin="http://evil.example")
    assert status == 403


@pytest.mark.parametrize(
    "host", [LAB, f"localhost:{PORT}", f"[::1]:{PORT}", f"LocalHost:{PORT}", f"127.0.0.1:{PORT}"]
)
def test_every_loopback_name_with_the_right_port_passes(host):
    assert call("GET", host=host) == (200, None, True)
    assert call("POST", host=host, origin=f"http://{host}") == (200, None, True)


@pytest.mark.parametrize(
    "host",
    [
        f"127.0.0.1:{PORT + 1}",
        f"localhost:{PORT - 1}",
        f"[::1]:{PORT + 1}",
        "127.0.0.1",  # no port means 80
        "localhost",
        "127.0.0.1:notaport",
        f"127.0.0.1:{PORT}@evil.example",
        f"127.0.0.1.evil.example:{PORT}",
        f"10.0.0.1:{PORT}",
        "",
    ],
)
def test_a_wrong_port_or_name_is_refused(host):
    status, body, _ = call("GET", host=host)
    assert status == 403
    assert body["error"].startswith(f"host {host!r} is not this lab's")


def test_a_request_without_host_is_refused_on_loopback():
    status, body, _ = call("GET", host=None)
    assert status == 403
    assert body["error"] == f"host None is not this lab's; open it at {LAB}"
    assert call("GET", host=None, loopback=False) == (200, None, True)


def test_port_80_may_be_left_out():
    async def reach(host: str) -> int:
        inner, sent = Inner(), []
        scope = {"type": "http", "method": "GET", "headers": [(b"host", host.encode())]}

        async def send(message):
            sent.append(message)

        await SameOrigin(inner, 80, True)(scope, None, send)
        return sent[0]["status"]

    assert run_async(reach("127.0.0.1")) == 200
    assert run_async(reach("localhost:80")) == 200
    assert run_async(reach("127.0.0.1:8080")) == 403


def test_other_scopes_pass_through():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    run_async(SameOrigin(app, PORT, True)({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]
