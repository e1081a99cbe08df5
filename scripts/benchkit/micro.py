"""Scenarios on one process at a time: breaker concurrency and tool-call throughput."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import gevent
import pybreaker
from gevent.pywsgi import WSGIServer

from benchkit.procs import Service
from benchkit.results import Result, median
from benchkit.wire import Connection, post_json
from common.client import ServiceClient


class PlainBreaker(pybreaker.CircuitBreaker):
    """pybreaker's own breaker, with the one question our client asks before it waits for a connection."""

    def refuses_calls(self) -> bool:
        return False

def _slow_app(environ, start_response):  # type: ignore[no-untyped-def]
    gevent.sleep(0.1)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"result": {"ok": true}}']


def breaker_concurrency(rounds: int) -> list[Result]:
    server = WSGIServer(("127.0.0.1", 0), _slow_app, log=None)
    server.start()
    url = f"http://127.0.0.1:{server.server_port}"
    ours = ServiceClient("slow", url)
    plain = ServiceClient("slow", url, breaker=PlainBreaker(fail_max=5, reset_timeout=10))

    def burst(client: ServiceClient) -> float:
        started = time.monotonic()
        gevent.joinall([gevent.spawn(client.call_tool, "slow", {}) for _ in range(20)], raise_error=True)
        return time.monotonic() - started

    burst(ours)
    ours_runs = [burst(ours) for _ in range(rounds)]
    plain_runs = [burst(plain) for _ in range(max(1, rounds // 2))]
    server.stop()
    value = median(ours_runs)
    return [Result("breaker concurrency", "20 × 100 ms calls, one breaker", value, "s", "≤ 0.2 s", value <= 0.2,
                   ours_runs, note=f"plain pybreaker: {median(plain_runs):.2f} s")]


def rate(ports: list[int], build, callers: int, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """Requests per second that `callers` keep-alive connections, spread over `ports`, sustain for `seconds`;
    `build(index)` makes caller `index`'s next request."""
    done = [0]
    deadline = time.monotonic() + seconds

    def caller(index: int) -> None:
        conn = Connection(ports[index % len(ports)])
        try:
            while time.monotonic() < deadline:
                status, body = conn.request(build(index))
                if status != 200:
                    raise RuntimeError(f"status {status}: {body[:200]!r}")
                done[0] += 1
        finally:
            conn.close()

    started = time.monotonic()
    gevent.joinall([gevent.spawn(caller, index) for index in range(callers)], raise_error=True)
    return done[0] / (time.monotonic() - started)


def tool_throughput(log_dir: Path, rounds: int, seconds: float) -> list[Result]:
    memory = Service("memory_service.app:create_app()", {"DATABASE_URL": f"sqlite:///{log_dir}/throughput.db"},
                     log_dir, "memory-throughput").start()
    bare = Service("benchkit.bare_app:create_app()", {"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                   log_dir, "bare").start()
    try:
        seed = ServiceClient("memory", memory.url)
        user = seed.call_tool("create_user", {"email": f"t{uuid.uuid4().hex[:6]}@bench.local", "name": "T",
                                              "password": "bench-password"})["user"]["id"]
        ws = seed.call_tool("create_workspace", {"user_id": user, "name": "bench"})["workspace"]["id"]
        conv = seed.call_tool("create_conversation", {"user_id": user, "workspace_id": ws, "topic": "t"})
        conv_id = conv["conversation"]["id"]
        message = seed.call_tool("store_input", {"user_id": user, "input_data": {
            "conversation_id": conv_id, "content": "a message to read back"}})["item_id"]
        read = post_json("/tool/get_message", {"arguments": {"user_id": user, "message_id": message}})
        echo = post_json("/echo", {"arguments": {"user_id": user, "message_id": message}})

        def write() -> bytes:
            return post_json("/tool/store_input", {"arguments": {"user_id": user, "input_data": {
                "conversation_id": conv_id, "content": "benchmark write"}}},
                {"Idempotency-Key": uuid.uuid4().hex})

        reads, writes, bares = [], [], []
        for _ in range(rounds):
            bares.append(rate([bare.port], lambda _: echo, 50, seconds))
            reads.append(rate([memory.port], lambda _: read, 50, seconds))
            writes.append(rate([memory.port], lambda _: write(), 50, seconds))
    finally:
        memory.stop()
        bare.stop()
    read_ratio = [r / b for r, b in zip(reads, bares, strict=True)]
    write_ratio = [w / b for w, b in zip(writes, bares, strict=True)]
    note = f"bare {median(bares):.0f} req/s, get_message {median(reads):.0f} req/s, store_input {median(writes):.0f}"
    return [
        Result("tool-call throughput", "get_message vs bare Flask", median(read_ratio) * 100, "%", "≥ 60 %",
               median(read_ratio) >= 0.6, [r * 100 for r in read_ratio], note=note),
        Result("tool-call throughput", "store_input vs bare Flask", median(write_ratio) * 100, "%", "≥ 40 %",
               median(write_ratio) >= 0.4, [w * 100 for w in write_ratio], note=note),
    ]
