"""Scenarios on the output stream: input-to-stream latency and stream capacity."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import gevent

from benchkit.results import Result, median
from benchkit.stack import Stack, User, content_of
from benchkit.wire import Connection, EventStream, percentile, post_json


def open_streams(port: int, path: str, count: int, on_event=None, factory=None) -> list[EventStream]:  # type: ignore[no-untyped-def]
    streams = []
    make = factory or (lambda: EventStream(port, path, on_event))
    for start in range(0, count, 500):  # in batches, so the listen backlog never overflows
        batch = [make() for _ in range(min(500, count - start))]
        for stream in batch:
            gevent.spawn(stream.run)
        streams += batch
        deadline = time.monotonic() + 60
        while not all(s.connected for s in batch) and time.monotonic() < deadline:
            gevent.sleep(0.05)
    return streams


def input_to_stream(log_dir: Path, idle: int, samples: int) -> list[Result]:
    stack = Stack(log_dir, "latency").start()
    try:
        user = User(stack.core.url)
        idle_streams = open_streams(stack.core.port, user.stream_path(user.conversation()), idle)
        conv = user.conversation()
        seen: dict[str, float] = {}
        own = open_streams(stack.core.port, user.stream_path(conv), 1,
                            lambda now, kind, data: kind == "message" and seen.setdefault(content_of(data), now))
        poster = Connection(stack.core.port)
        latencies = []
        for i in range(samples):
            marker = f"latency probe {i} {uuid.uuid4().hex[:6]}"
            started = time.monotonic()
            status, _ = poster.request(post_json(user.message_path(conv), {"content": marker},
                                                 {"Authorization": f"Bearer {user.token}"}))
            deadline = time.monotonic() + 5
            while marker not in seen and time.monotonic() < deadline:
                gevent.sleep(0.0005)
            if status == 202 and marker in seen:
                latencies.append((seen[marker] - started) * 1000)
            gevent.sleep(0.05)
        for stream in idle_streams + own:
            stream.close()
    finally:
        stack.stop()
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    note = f"{len(latencies)}/{samples} samples, {idle} idle streams"
    return [Result("input → stream latency", "p50", p50, "ms", "≤ 15 ms", p50 <= 15, samples=latencies, note=note),
            Result("input → stream latency", "p99", p99, "ms", "≤ 50 ms", p99 <= 50, samples=latencies, note=note)]


class MarkerStream(EventStream):
    """A subscriber that only notes when a broadcast marker's bytes arrive: with ten thousand streams in
    one load-generator process, parsing every event would make the client, not the server, the limit."""

    def __init__(self, port: int, path: str, received: dict[str, list[float]]) -> None:
        super().__init__(port, path)
        self.received = received

    def run(self) -> None:
        tail = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                now = time.monotonic()
                if not self.connected and b"event: connected" in chunk:
                    self.connected = True
                window = tail + chunk
                for marker in _MARKER.findall(window):
                    # A marker split across two reads is seen in the overlap; count it once per stream.
                    key = marker.decode()
                    seen = self.received.setdefault(key, [])
                    if id(self) not in _seen_by.setdefault(key, set()):
                        _seen_by[key].add(id(self))
                        seen.append(now)
                tail = window[-64:]
        except OSError:
            return


_MARKER = re.compile(rb"broadcast-\d+-[0-9a-f]{6}")
_seen_by: dict[str, set[int]] = {}


def stream_capacity(log_dir: Path, count: int, broadcasts: int) -> list[Result]:
    stack = Stack(log_dir, "capacity").start()
    try:
        user = User(stack.core.url)
        conv = user.conversation()
        before = stack.core.rss_kib()
        received: dict[str, list[float]] = {}
        streams = open_streams(stack.core.port, user.stream_path(conv), count,
                                factory=lambda: MarkerStream(stack.core.port, user.stream_path(conv), received))
        held = sum(1 for s in streams if s.connected)
        gevent.sleep(1)
        per_stream = (stack.core.rss_kib() - before) / max(1, held)
        p99s, all_latencies = [], []
        poster = Connection(stack.core.port)
        for i in range(broadcasts):
            marker = f"broadcast-{i}-{uuid.uuid4().hex[:6]}"
            started = time.monotonic()
            poster.request(post_json(user.message_path(conv), {"content": marker},
                                     {"Authorization": f"Bearer {user.token}"}))
            deadline = time.monotonic() + 20
            while len(received.get(marker, [])) < held and time.monotonic() < deadline:
                gevent.sleep(0.01)
            latencies = [(t - started) * 1000 for t in received.get(marker, [])]
            all_latencies += latencies
            p99s.append(percentile(latencies, 0.99) if len(latencies) == held else float("inf"))
            gevent.sleep(2)  # let the reply's events drain before the next broadcast
        for stream in streams:
            stream.close()
    finally:
        stack.stop()
    p99 = median(p99s)
    return [
        Result("stream capacity", "streams held by one Core process", held, "streams", f"{count:,} held",
               held >= count),
        Result("stream capacity", "memory per idle stream", per_stream, "KiB", "≤ 30 KiB", per_stream <= 30),
        Result("stream capacity", "one event to every stream, p99", p99, "ms", "≤ 500 ms", p99 <= 500, p99s,
               samples=all_latencies, note=f"{broadcasts} broadcasts to {held} streams"),
    ]
