"""ASGI middleware that bounds every request: its body's size, and its time.

The body limit is enforced as bytes arrive, so no request is ever buffered past it. A body
over the limit gets 413, and then the rest of it is read and thrown away for a bounded time
before the connection closes, as nginx's lingering close does: urllib and requests write the
whole body before they read a byte of the answer, and a server that closes while a client
still sends makes the kernel answer with a reset, which loses the 413 in flight.

A declared Content-Length over the limit, or a client waiting for "100 Continue", gets its 413
at once, before a byte of the body is read, with Connection: close. A body without a length
(chunked) is counted; once past the limit it is read on for END_WAIT_SECONDS in case it ends
there, and then the 413 keeps the connection; if not, the 413 says Connection: close. Either
way the body is read for at most LINGER_SECONDS from the refusal, whatever its length, and no
longer than LINGER_IDLE_SECONDS after the client's last byte; then the connection is closed.
"""

from __future__ import annotations

import asyncio
import json

JSON = (b"content-type", b"application/json")
CLOSE = (b"connection", b"close")

# How long a refused body is read and thrown away, at most, counted from the refusal. Long
# enough for urllib to write a 78 MB body on loopback (0.1 s, measured with client and server
# on one busy 2-core machine) or several hundred MB over a gigabit link; short enough
# that a client that never stops sending ties up one socket, no thread and no pool place,
# for a few seconds. (nginx's lingering_time is 30 s, for clients on slow links.)
LINGER_SECONDS = 5.0
# ... and no longer than this after the client's last byte. A client still uploading sends
# far more often, even one starved of CPU on a busy machine; one that paused this long (it
# waits for a "100 Continue" that will not come) is not helped by waiting longer. (nginx's
# lingering_timeout is 5 s.)
LINGER_IDLE_SECONDS = 2.0
# How long a chunked body past the limit is read before the 413, in case it ends: a body sent
# all at once, a few times the limit, ends within milliseconds on loopback or a LAN, and then
# the connection is kept for the client's next request, which starts where the body ends.
# Short, because a client that reads while it sends (curl, a browser) waits this long.
END_WAIT_SECONDS = 1.0


async def send_json(
    send, status: int, payload: dict, headers: tuple = (), more_body: bool = False
) -> None:
    """A whole JSON response through an ASGI `send`; with `more_body`, the response stays
    open (the client has all of it) until an empty body message ends it."""
    body = json.dumps(payload).encode()
    length = (b"content-length", str(len(body)).encode())
    await send(
        {"type": "http.response.start", "status": status, "headers": [JSON, length, *headers]}
    )
    await send({"type": "http.response.body", "body": body, "more_body": more_body})


def declared_length(scope) -> int | None:
    """The request's Content-Length, or None when it has none (or one h11 would refuse)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def discard_body(receive, until: float) -> bool:
    """Read the request's body and drop it: True once it has ended (or the client has gone),
    False when the loop's clock reaches `until` or the client pauses LINGER_IDLE_SECONDS."""
    loop = asyncio.get_running_loop()
    while (left := until - loop.time()) > 0:
        try:
            async with asyncio.timeout(min(left, LINGER_IDLE_SECONDS)):
                message = await receive()
        except TimeoutError:
            return False
        if message["type"] != "http.request" or not message.get("more_body", False):
            return True
    return False


class BodyLimit:
    """413 for a body past `limit` bytes, without ever holding more than `limit` of it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    def _error(self) -> dict:
        return {"error": f"body exceeds the limit of {self.limit} bytes"}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = declared_length(scope)
        if declared is not None and declared > self.limit:  # none of it is wanted
            return await self._refuse(receive, send, end_wait=0.0)
        seen, refused, ended = 0, False, False

        async def counted_receive():
            nonlocal seen, refused, ended
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused, ended = True, not message.get("more_body", False)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:  # the app's answer to a body it never saw whole
                await send(message)

        await self.app(scope, counted_receive, guarded_send)
        if refused:  # once the app has returned, so that it holds no pool place meanwhile
            await self._refuse(receive, send, end_wait=END_WAIT_SECONDS, ended=ended)

    async def _refuse(self, receive, send, end_wait: float, ended: bool = False) -> None:
        """The 413, and the rest of the body read and dropped (see the module docstring)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_SECONDS
        if ended or (end_wait > 0 and await discard_body(receive, loop.time() + end_wait)):
            return await send_json(send, 413, self._error())  # the connection goes on
        await send_json(send, 413, self._error(), (CLOSE,), more_body=True)
        await discard_body(receive, deadline)
        # Ending the response closes the connection (CLOSE); past the deadline, with the
        # client still sending, the kernel resets it: that is the cut-off.
        await send({"type": "http.response.body", "body": b""})


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
