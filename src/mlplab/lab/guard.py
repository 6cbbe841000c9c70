"""SameOrigin: ASGI middleware that refuses what another web site's page could send the lab.

Any page a user visits can POST to 127.0.0.1 or make the browser resolve its own domain to
it (DNS rebinding). So a state-changing request (anything but GET, HEAD and OPTIONS) whose
Origin is not the lab's own gets 403, as does one the browser marks cross-site; and when the
lab listens on loopback, a request whose Host is not a loopback name for the lab's port gets
403 too, whatever its method. Clients that send no Origin (curl, Python) pass when their Host
is right.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mlplab.serve.limits import send_json

SAFE = {"GET", "HEAD", "OPTIONS"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _host_port(authority: str) -> tuple[str, int | None]:
    """'127.0.0.1:8008' -> ('127.0.0.1', 8008); '[::1]:80' -> ('[::1]', 80)."""
    parts = urlsplit(f"//{authority}")
    try:
        port = parts.port
    except ValueError:
        return authority.lower(), -1
    host = (parts.hostname or "").lower()
    return (f"[{host}]" if ":" in host else host), port


class SameOrigin:
    """403 for requests from other origins; see the module docstring."""

    def __init__(self, app, port: int, loopback: bool):
        self.app, self.port, self.loopback = app, port, loopback

    def _host_ok(self, host: str | None) -> bool:
        if not self.loopback:
            return True
        if host is None:
            return False
        name, port = _host_port(host)
        return name in LOOPBACK_NAMES and port in (self.port, None if self.port == 80 else -2)

    def _problem(self, scope) -> str | None:
        host = _header(scope, b"host")
        if not self._host_ok(host):
            return f"host {host!r} is not this lab's; open it at 127.0.0.1:{self.port}"
        if scope.get("method", "GET") in SAFE:
            return None
        origin = _header(scope, b"origin")
        if origin is not None:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or parts.netloc.lower() != (host or "").lower()
            ):
                return f"origin {origin!r} may not control this lab"
        if _header(scope, b"sec-fetch-site") == "cross-site":
            return "a cross-site request may not control this lab"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            problem = self._problem(scope)
            if problem:
                return await send_json(send, 403, {"error": problem})
        return await self.app(scope, receive, send)
