"""ASGI middleware that bounds every request: its body's size, and its time.

The body limit is enforced as bytes arrive, so no request is ever buffered past it. A body
over the limit is thrown away as it arrives, up to a drain limit in bytes and in seconds (a
lingering close, as nginx does), and then refused with 413: a client still sending when the
server answers and closes (urllib and requests write the whole body before they read) would
see a reset instead of the answer. A declared Content-Length over the drain limit, or one whose
client waits for "100 Continue", is refused before a byte of the body is read. A body without
a length (chunked) is counted, and refused the same way once past the limit.
"""

from __future__ import annotations

import asyncio
import json

JSON = (b"content-type", b"application/json")
CLOSE = (b"connection", b"close")


async def send_json(send, status: int, payload: dict, headers: tuple = ()) -> None:
    """A whole JSON response through an ASGI `send`."""
    body = json.dumps(payload).encode()
    length = (b"content-length", str(len(body)).encode())
    await send(
        {"type": "http.response.start", "status": status, "headers": [JSON, length, *headers]}
    )
    await send({"type": "http.response.body", "body": body})


def declared_length(scope) -> int | None:
    """The request's Content-Length, or None when it has none (or one h11 would refuse)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def expects_continue(scope) -> bool:
    """Whether the client waits for "100 Continue" before sending its body."""
    return (b"expect", b"100-continue") in [(k, v.lower()) for k, v in scope.get("headers", ())]


class BodyLimit:
    """413 for a body past `limit` bytes, without ever holding more than `limit` of it."""

    def __init__(self, app, limit: int, drain_limit: int, drain_seconds: float = 10.0):
        self.app, self.limit, self.drain_limit = app, limit, drain_limit
        self.drain_seconds = drain_seconds

    def _error(self) -> dict:
        return {"error": f"body exceeds the limit of {self.limit} bytes"}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = declared_length(scope)
        if declared is not None and declared > self.limit:
            if declared > self.drain_limit:  # not worth reading: answer, and hang up
                return await send_json(send, 413, self._error(), (CLOSE,))
            more = False
            if not expects_continue(scope):  # a client waiting for "100 Continue" sends nothing
                more = await self._drain(receive, 0)
            return await send_json(send, 413, self._error(), (CLOSE,) if more else ())
        seen, refused = 0, False

        async def counted_receive():
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    more = message.get("more_body", False) and await self._drain(receive, seen)
                    await send_json(send, 413, self._error(), (CLOSE,) if more else ())
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:  # the app's answer to a body it never saw whole
                await send(message)

        await self.app(scope, counted_receive, guarded_send)

    async def _drain(self, receive, seen: int) -> bool:
        """Read and drop the rest of a body up to the drain limit, for at most drain_seconds;
        True if more is coming (the connection then closes)."""
        try:
            async with asyncio.timeout(self.drain_seconds):
                while seen <= self.drain_limit:
                    message = await receive()
                    if message["type"] != "http.request":
                        return False
                    seen += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return False
        except TimeoutError:
            pass
        return True


class TimeLimit:
    """504 for a request not answered within `seconds`, reading its body included."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked_send(message):
            nonlocal started
            started |= message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, tracked_send)
        except TimeoutError:
            if started:  # half a response went out; all that is left is to drop the connection
                raise
            error = {"error": f"request took longer than the limit of {self.seconds:g} s"}
            # The body may still be trickling in: close rather than wait for the rest of it.
            await send_json(send, 504, error, (CLOSE,))
