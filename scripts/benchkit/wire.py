"""A deliberately thin HTTP/1.1 client on gevent sockets, so the load generator costs little next to
the servers it measures on the same two cores."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable


class Connection:
    """One keep-alive connection sending pre-encoded requests and reading Content-Length answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, body

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def post_json(path: str, body: dict, headers: dict[str, str] | None = None) -> bytes:
    payload = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(payload)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def get(path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class EventStream:
    """A raw SSE subscription: records (monotonic receive time, event type, data) per event."""

    def __init__(self, port: int, path: str, on_event: Callable[[float, str, str], None] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.on_event = on_event
        self.connected = False

    def run(self) -> None:
        """Read until the connection closes; blocks this greenlet only. Undoes chunked framing."""
        raw, events = b"", b""
        headers_done = False
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                now = time.monotonic()
                raw += chunk
                if not headers_done:
                    if b"\r\n\r\n" not in raw:
                        continue
                    _, _, raw = raw.partition(b"\r\n\r\n")
                    headers_done = True
                while True:
                    size_line, sep, rest = raw.partition(b"\r\n")
                    if not sep:
                        break
                    size = int(size_line.split(b";")[0], 16)
                    if size == 0:
                        return
                    if len(rest) < size + 2:
                        break
                    events += rest[:size]
                    raw = rest[size + 2:]
                while b"\n\n" in events:
                    block, _, events = events.partition(b"\n\n")
                    self._dispatch(now, block)
        except OSError:
            return

    def _dispatch(self, now: float, block: bytes) -> None:
        kind, data = "message", ""
        for line in block.decode(errors="replace").splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if kind == "connected":
            self.connected = True
        if self.on_event is not None and data:
            self.on_event(now, kind, data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]
