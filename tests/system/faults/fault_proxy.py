"""A loopback HTTP proxy in front of a real service that loses answers on purpose, for fault tests.

Every request is forwarded to the upstream and its whole answer is read, so a write is committed
before the proxy decides what the caller gets: the answer, nothing (the connection closed or reset),
or a 502 as a broken gateway would send.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
              "host", "content-length"}
MODES = ("drop", "reset", "502", "gateway-502", "gateway-503")


@dataclass
class Forwarded:
    """One request the proxy saw, what the upstream answered, and what the caller got instead."""

    method: str
    path: str
    idempotency_key: str | None
    body: bytes
    upstream_status: int | None
    upstream_body: bytes
    fault: str | None


@dataclass
class Rule:
    path: str
    marker: bytes
    mode: str
    remaining: int


class FaultProxy:
    """Forwards to `127.0.0.1:upstream_port`; `fail_next` arms a fault for the next matching requests."""

    def __init__(self, upstream_port: int | None = None, upstream_timeout: float = 30) -> None:
        self.upstream_port = upstream_port
        self.upstream_timeout = upstream_timeout
        self.seen: list[Forwarded] = []
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True, name="fault-proxy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail_next(self, path: str, mode: str, times: int = 1, marker: str = "") -> None:
        """Answer the next `times` POSTs to `path` whose body contains `marker` with fault `mode`:
        `drop` (close without answering), `reset` (TCP RST) or `502`, each after the upstream answered; or
        `gateway-502` / `gateway-503`: a gateway's HTML error page without forwarding at all."""
        assert mode in MODES, mode
        with self._lock:
            self._rules.append(Rule(path, marker.encode(), mode, times))

    def requests_with(self, marker: str) -> list[Forwarded]:
        with self._lock:
            return [seen for seen in self.seen if marker.encode() in seen.body]

    def _fault_for(self, method: str, path: str, body: bytes) -> str | None:
        with self._lock:
            for rule in self._rules:
                if method == "POST" and rule.remaining > 0 and path == rule.path and rule.marker in body:
                    rule.remaining -= 1
                    return rule.mode
        return None

    def _record(self, seen: Forwarded) -> None:
        with self._lock:
            self.seen.append(seen)


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 15  # an idle keep-alive connection ends its thread after this long

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault = self._fault_for(body)
            key = self.headers.get("Idempotency-Key")
            if fault and fault.startswith("gateway-"):
                proxy._record(Forwarded(self.command, self.path, key, body, None, b"", fault))
                status = int(fault.removeprefix("gateway-"))
                self._answer(status, {"Content-Type": "text/html"}, f"<html><body>{status}</body></html>".encode())
                return
            if proxy.upstream_port is None:
                proxy._record(Forwarded(self.command, self.path, key, body, None, b"", "no upstream"))
                self._answer(502, {"Content-Type": "text/plain"}, b"no upstream yet")
                return
            upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=proxy.upstream_timeout)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body if length else None, headers=headers)
                response = upstream.getresponse()
                if "text/event-stream" in (response.getheader("Content-Type") or ""):
                    proxy._record(Forwarded(self.command, self.path, key, body, response.status, b"", None))
                    self._relay_stream(response)
                    return
                answer = response.read()
            except OSError as exc:
                proxy._record(Forwarded(self.command, self.path, key, body, None, b"", f"upstream: {exc}"))
                self._answer(502, {"Content-Type": "text/plain"}, b"upstream unreachable")
                return
            finally:
                upstream.close()
            proxy._record(Forwarded(self.command, self.path, key, body, response.status, answer, fault))
            if fault == "drop":
                self.close_connection = True  # the server closes the socket; the caller reads EOF
            elif fault == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
            elif fault == "502":
                self._answer(502, {"Content-Type": "text/html"}, b"<html><body>502 Bad Gateway</body></html>")
            else:
                kept = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
                self._answer(response.status, kept, answer)

        def _fault_for(self, body: bytes) -> str | None:
            return proxy._fault_for(self.command, self.path.split("?")[0], body)

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _relay_stream(self, response: http.client.HTTPResponse) -> None:
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for _ in range(100_000):
                chunk = response.read1(65536)
                if not chunk:
                    return
                self.wfile.write(chunk)
                self.wfile.flush()

        do_GET = do_POST = do_PUT = do_DELETE = _forward

    return Handler
