"""A small OpenAI-compatible streaming server for tests: real HTTP/1.1 with kept-alive connections and
chunked bodies, as api.openai.com serves them, and real SSE framing."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLLM:
    """Streams `tokens` as chat-completion chunks; `fail_after` cuts the connection after that many.

    It counts the TCP connections it accepted (`connections`) and the requests being answered at once
    (`active`, its peak `most_active`); while `hold` is cleared, every answer waits (at most 60 s) after
    its first chunk, so a test can keep replies running.
    """

    def __init__(self, tokens: list[str], fail_after: int | None = None, delay: float = 0.0) -> None:
        self.tokens = tokens
        self.fail_after = fail_after
        self.delay = delay
        self.requests: list[dict] = []
        self.connections = 0
        self.active = 0
        self.most_active = 0
        self.hold = threading.Event()
        self.hold.set()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as real model servers do

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake.connections += 1

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with fake._lock:
                    fake.requests.append({"path": self.path, "body": body,
                                          "authorization": self.headers.get("Authorization")})
                    fake.active += 1
                    fake.most_active = max(fake.most_active, fake.active)
                try:
                    self.answer()
                finally:
                    with fake._lock:
                        fake.active -= 1

            def write_chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def answer(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for index, token in enumerate(fake.tokens):
                    if fake.fail_after is not None and index >= fake.fail_after:
                        self.wfile.flush()
                        self.connection.shutdown(2)
                        self.close_connection = True
                        return
                    chunk = {"choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]}
                    self.write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                    if index == 0:
                        fake.hold.wait(60)
                    if fake.delay:
                        time.sleep(fake.delay)
                self.write_chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()
