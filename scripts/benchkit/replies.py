"""Scenarios on replies: time to first token against the upstream's own, and many conversations at once.

The upstream is a stand-in OpenAI-compatible endpoint served from this (load generator) process. Its own
first-token time is measured directly in the same run, so the figures say what Cortex Core adds."""

from __future__ import annotations

import json
import os
import resource
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import gevent
import gevent.pool
from gevent.event import Event
from gevent.pywsgi import WSGIHandler, WSGIServer

from benchkit.procs import Service
from benchkit.results import Result
from benchkit.stack import Stack, User
from benchkit.streams import open_streams
from benchkit.wire import Connection, percentile, post_json

TOKENS, GAP = 20, 0.02
# The scenarios sign up hundreds of users from one address and post as fast as they can: lift the
# per-address sign-up limits for the benchmark (the defaults protect a public deployment, not this).
LOAD_ENV = {"AUTH_RATE_LIMIT_PER_ADDRESS": "100000/minute", "AUTH_RATE_LIMIT_PER_ACCOUNT": "100000/minute"}


class _NoDelayHandler(WSGIHandler):
    """TCP_NODELAY, as real model servers set it (asyncio/uvicorn, Go, nginx): without it, on a kept-alive
    connection the first chunk waits for the client's delayed ACK, 40 ms that no real endpoint adds."""

    def handle(self):  # type: ignore[no-untyped-def]
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().handle()


def _stand_in(tokens: int, gap: float):  # type: ignore[no-untyped-def]
    def app(environ, start_response):  # type: ignore[no-untyped-def]
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/event-stream")])

        def body():  # type: ignore[no-untyped-def]
            for i in range(tokens):
                chunk = {"choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                gevent.sleep(gap)
            yield b"data: [DONE]\n\n"
        return body()
    return app


def _upstream_first_token(port: int) -> float:
    """Milliseconds from sending a chat request straight to the stand-in until its first token arrives."""
    body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        received = b""
        while b"tok0" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        first = time.monotonic()
        while sock.recv(65536):  # read the rest, so the stand-in is not cut mid-reply
            pass
    return (first - started) * 1000


def _cpu_ms(services: list[Service]) -> dict[str, float]:
    """User + system CPU of each service's gunicorn master and workers so far, in milliseconds, by service."""
    tick = os.sysconf("SC_CLK_TCK")
    spent = {}
    for service in services:
        assert service.proc is not None
        total = 0
        for pid in (service.proc.pid, *service.worker_pids()):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        spent[service.name] = total * 1000 / tick
    return spent


def _own_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


def _llm_stack(log_dir: Path, name: str, llm: WSGIServer, core_env: dict[str, str] | None = None) -> Stack:
    return Stack(log_dir, name, {"LLM_PROVIDER": "openai", "LLM_API_KEY": "bench",
                                 "LLM_BASE_URL": f"http://127.0.0.1:{llm.server_port}/v1", **LOAD_ENV,
                                 **(core_env or {})}).start()


def time_to_first_token(log_dir: Path, samples: int) -> list[Result]:
    """One conversation, one reply at a time: POST until the first `response.delta`, next to the stand-in's
    own first-token time measured directly, alternating so both see the same machine."""
    llm = WSGIServer(("127.0.0.1", 0), _stand_in(TOKENS, GAP), log=None, handler_class=_NoDelayHandler)
    llm.start()
    stack = _llm_stack(log_dir, "ttft", llm)
    try:
        user = User(stack.core.url)
        conv = user.conversation()
        first: dict[str, float] = {}
        done: set[str] = set()

        def on_event(now: float, kind: str, data: str) -> None:
            payload = json.loads(data)
            if kind == "response.delta":
                first.setdefault(payload["response_id"], now)
            elif kind in ("response.completed", "error"):
                done.add(payload.get("response_id", ""))

        open_streams(stack.core.port, user.stream_path(conv), 1, on_event)
        poster = Connection(stack.core.port)
        system, upstream = [], []
        for i in range(samples):
            upstream.append(_upstream_first_token(llm.server_port))
            known = set(first)
            started = time.monotonic()
            poster.request(post_json(user.message_path(conv), {"content": f"question {i}"},
                                     {"Authorization": f"Bearer {user.token}"}))
            deadline = time.monotonic() + 10
            while not (set(first) - known) and time.monotonic() < deadline:
                gevent.sleep(0.0005)
            new = set(first) - known
            if new:
                response_id = new.pop()
                system.append((first[response_id] - started) * 1000)
                while response_id not in done and time.monotonic() < deadline:
                    gevent.sleep(0.01)
    finally:
        stack.stop()
        llm.stop()
    p50, own = percentile(system, 0.5), percentile(upstream, 0.5)
    overhead = p50 - own
    note = (f"POST → first response.delta median {p50:.1f} ms (p99 {percentile(system, 0.99):.1f}); the stand-in's "
            f"own first token, asked directly: median {own:.1f} ms; {len(system)}/{samples} replies")
    return [Result("time to first token", "overhead beyond the upstream's own first token, median", overhead, "ms",
                   "≤ 50 ms", overhead <= 50, samples=system, note=note)]


@dataclass
class ManyRun:
    """What one burst of simultaneous conversations measured."""

    conversations: int
    ttft: list[float]
    reference: list[float]
    by_service: dict[str, float]
    everything_cpu: float
    accepted: int
    done: int


def run_many(log_dir: Path, conversations: int, name: str = "many",
             core_env: dict[str, str] | None = None) -> ManyRun:
    """`conversations` users each post into their own conversation at the same moment, against a stand-in
    streaming 20 tokens 20 ms apart: time to first token per reply, the stand-in's own under the same
    concurrency, and the CPU each service spent (ms, all its processes) on the burst."""
    llm = WSGIServer(("127.0.0.1", 0), _stand_in(TOKENS, GAP), log=None, spawn=10_000,
                     handler_class=_NoDelayHandler)
    llm.start()
    stack = _llm_stack(log_dir, name, llm, core_env)
    try:
        users = [User(stack.core.url) for _ in range(conversations)]
        convs = [user.conversation() for user in users]
        first: dict[int, float] = {}
        done: set[int] = set()

        def watcher(index: int):  # type: ignore[no-untyped-def]
            def on_event(now: float, kind: str, data: str) -> None:
                if kind == "response.delta":
                    first.setdefault(index, now)
                elif kind in ("response.completed", "error"):
                    done.add(index)
            return on_event

        streams = []
        for index, (user, conv) in enumerate(zip(users, convs, strict=True)):
            streams += open_streams(stack.core.port, user.stream_path(conv), 1, watcher(index))
        posters = [Connection(stack.core.port) for _ in users]
        go, sent = Event(), {}
        statuses: list[int] = []

        def post(index: int) -> None:
            request = post_json(users[index].message_path(convs[index]), {"content": f"turn of {index}"},
                                {"Authorization": f"Bearer {users[index].token}"})
            go.wait()
            sent[index] = time.monotonic()
            statuses.append(posters[index].request(request)[0])

        # The stand-in's own first-token time under the same concurrency, asked directly, as the reference.
        reference = gevent.pool.Group().map(lambda _: _upstream_first_token(llm.server_port), range(conversations))
        services = [stack.core, stack.memory, stack.cognition]
        cpu_before, own_before = _cpu_ms(services), _own_cpu_ms()
        greenlets = [gevent.spawn(post, index) for index in range(conversations)]
        gevent.sleep(0.2)
        go.set()
        gevent.joinall(greenlets, timeout=30)
        deadline = time.monotonic() + 60
        while len(done) < conversations and time.monotonic() < deadline:
            gevent.sleep(0.05)
        gevent.sleep(0.5)  # let the services finish storing the replies before reading their CPU
        by_service = {name: spent - cpu_before[name] for name, spent in _cpu_ms(services).items()}
        servers_cpu = sum(by_service.values())
        everything_cpu = servers_cpu + _own_cpu_ms() - own_before
        for stream in streams:
            stream.close()
        for poster in posters:
            poster.close()
    finally:
        stack.stop()
        llm.stop()
    ttft = [(first[i] - sent[i]) * 1000 for i in first if i in sent]
    accepted = sum(1 for status in statuses if status == 202)
    return ManyRun(conversations, ttft, list(reference), by_service, everything_cpu, accepted, len(done))


def many_conversations(log_dir: Path, conversations: int) -> list[Result]:
    """The `many` scenario: one Core worker on the in-process log (the default deployment)."""
    run = run_many(log_dir, conversations)
    ttft, reference, by_service = run.ttft, run.reference, run.by_service
    p50, p99 = percentile(ttft, 0.5), percentile(ttft, 0.99)
    note = (f"{conversations} conversations posting together, {run.accepted} × 202, {len(ttft)} first tokens, "
            f"{run.done} replies ended; the stand-in asked directly by {conversations} clients at once: "
            f"p50 {percentile(reference, 0.5):.1f} ms, p99 {percentile(reference, 0.99):.1f} ms")
    per_turn = sum(by_service.values()) / conversations
    everything_cpu = run.everything_cpu
    return [
        # The reference is the system this one replaces, measured the same way: p50 12.7 s, p99 15.9 s.
        Result("many conversations", "time to first token, p50", p50, "ms", "< 12,700 ms (replaced system)",
               p50 < 12_700, samples=ttft, note=note),
        Result("many conversations", "time to first token, p99", p99, "ms", "< 15,900 ms (replaced system)",
               p99 < 15_900, samples=ttft, note=note),
        Result("many conversations", "services' CPU per turn", per_turn, "ms", "≤ 12 ms", per_turn <= 12,
               note=", ".join(f"{name.split('-', 1)[1]} {ms / conversations:.1f}" for name, ms in by_service.items())
               + f" ms; servers, stand-in and client together: {everything_cpu / conversations:.1f} ms per turn"),
    ]
