"""HTTP/1.1 by hand on a socket, for the serve tests that must control the bytes and their
timing (urllib and requests would hide both)."""

from __future__ import annotations

import select
import socket
import time


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def post_head(content_type: str, extra: str) -> bytes:
    return (
        f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"{extra}\r\n"
    ).encode()


def chunked(data: bytes, piece: int = 65536) -> bytes:
    """`data` in Transfer-Encoding: chunked, ended."""
    out = b"".join(
        b"%x\r\n%s\r\n" % (len(data[i : i + piece]), data[i : i + piece])
        for i in range(0, len(data), piece)
    )
    return out + b"0\r\n\r\n"


def exchange(url: str, head: bytes, body: bytes = b"", timeout: float = 20) -> bytes:
    """Send raw bytes on a new connection; everything the server says until it closes or
    has sent the whole response."""
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=timeout) as s:
        s.sendall(head + body)
        return read_reply(s)


def read_reply(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + body_length(data):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def body_length(data: bytes) -> int:
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def send_until_cut(s: socket.socket, piece: bytes, pause: float, within: float) -> float | None:
    """Send `piece` every `pause` seconds until the server closes the connection (a reset, or
    the end of what it sends); the time.monotonic() when that was seen, None if not within
    `within` seconds. Whatever the server says meanwhile is read and dropped."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            s.sendall(piece)
            readable, _, _ = select.select([s], [], [], pause)
            if readable and not s.recv(65536):
                return time.monotonic()
        except ConnectionError:  # reset, or a broken pipe
            return time.monotonic()
    return None
