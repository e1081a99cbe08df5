"""A Cognition stand-in that is alive but slow: `/health` answers at once, every `/tool/*` call is held
`hold_s` seconds before it answers. While it holds a call it watches the caller's socket, so a test can
tell a call the caller gave up on (and closed) from one whose connection the caller still holds.
Handler threads are daemons and are released on exit: a test never waits out the hold at teardown."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _peer_closed(conn: socket.socket) -> bool:
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class SlowCognition:
    def __init__(self, hold_s: float = 30.0) -> None:
        self.hold_s = hold_s
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.tool_calls = 0
        self.held = 0  # calls being held whose caller is still connected
        self.max_held = 0
        self.abandoned_after: list[float] = []  # seconds from arrival until the caller closed the connection
        self.health_checks = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: dict) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path != "/health":
                    self._answer(404, {"error": {"code": "not_found", "message": self.path, "details": {}}})
                    return
                stand_in.health_checks += 1
                self._answer(200, {"status": "healthy", "service": "cognition", "version": "slow-stand-in",
                                   "dependencies": {}})

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrived = time.monotonic()
                with stand_in.lock:
                    stand_in.tool_calls += 1
                    stand_in.held += 1
                    stand_in.max_held = max(stand_in.max_held, stand_in.held)
                try:
                    while not stand_in.release.is_set() and time.monotonic() - arrived < stand_in.hold_s:
                        readable, _, _ = select.select([self.connection], [], [], 0.05)
                        if readable and _peer_closed(self.connection):
                            stand_in.abandoned_after.append(time.monotonic() - arrived)
                            self.close_connection = True
                            return
                finally:
                    with stand_in.lock:
                        stand_in.held -= 1
                self._answer(200, {"result": {"context": [], "count": 0, "user_id": None, "query": None}})

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # a caller that went away mid-answer: nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SlowCognition:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
