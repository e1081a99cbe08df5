"""A stream client on a raw socket with a tiny receive buffer, for the slow-reader test: it sends the GET and
reads only when told to, so the Core's writes back up into the kernel buffers."""

from __future__ import annotations

import socket
import time

from tests.system.support.sse_frames import Frame, parse_frame


class RawStream:
    def __init__(self, port: int, path: str, token: str, rcvbuf: int = 4096) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Set before connect, so the window the Core sees is small from the handshake on.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                           "Accept: text/event-stream\r\nConnection: close\r\n\r\n").encode())
        self.received = b""
        self.closed_by_server = False

    def drain(self, timeout: float) -> None:
        """Read everything until the server closes the connection or `timeout` passes."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                self.closed_by_server = True
                return
            self.received += chunk

    def close(self) -> None:
        self.sock.close()

    def status_line(self) -> str:
        return self.received.split(b"\r\n", 1)[0].decode()

    def body(self) -> tuple[bytes, bool]:
        """The de-chunked body, and whether it ended with the terminating zero-size chunk."""
        _, _, rest = self.received.partition(b"\r\n\r\n")
        body = b""
        while rest:
            size_line, sep, rest = rest.partition(b"\r\n")
            if not sep:
                return body, False
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return body, True
            body, rest = body + rest[:size], rest[size + 2:]
        return body, False

    def frames(self) -> list[Frame]:
        body, _ = self.body()
        complete = body[: body.rfind(b"\n\n") + 2] if b"\n\n" in body else b""
        found = (parse_frame(raw, 0.0) for raw in complete.split(b"\n\n") if raw)
        return [frame for frame in found if frame is not None]
