"""Scenarios on the services behind the Core App: context retrieval, and failing fast while one is down."""

from __future__ import annotations

import random
import signal
import time
import uuid
from pathlib import Path

import gevent
import requests

from benchkit.results import Result
from benchkit.stack import Stack, User
from benchkit.wire import Connection, percentile, post_json

WORDS = ("harbour lantern meadow copper violin glacier orchard saffron compass ember quartz willow canyon "
         "falcon pepper marble thunder velvet cobalt juniper pebble summit tundra mosaic anchor breeze cedar "
         "dune fjord garnet hazel island jasmine kettle lagoon mango nectar opal prairie quill reef sable").split()


def context_retrieval(log_dir: Path, history: int, queries: int) -> list[Result]:
    stack = Stack(log_dir, "context").start()
    try:
        user = User(stack.core.url)
        conversations = [user.conversation() for _ in range(10)]
        rng = random.Random(7)
        texts = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(history)]

        def seed(part: list[str]) -> None:
            conn = Connection(stack.memory.port)
            for index, text in enumerate(part):
                status, _ = conn.request(post_json("/tool/store_input", {"arguments": {
                    "user_id": user.user_id, "input_data": {
                        "conversation_id": conversations[index % 10], "content": text}}},
                    {"Idempotency-Key": uuid.uuid4().hex}))
                assert status == 200
            conn.close()

        chunks = [texts[i::20] for i in range(20)]
        gevent.joinall([gevent.spawn(seed, chunk) for chunk in chunks], raise_error=True)
        conn = Connection(stack.cognition.port)
        latencies = []
        for _ in range(queries):
            query = " ".join(rng.choice(WORDS) for _ in range(3))
            started = time.monotonic()
            status, _ = conn.request(post_json("/tool/get_context", {"arguments": {
                "user_id": user.user_id, "query": query, "limit": 10}}))
            latencies.append((time.monotonic() - started) * 1000)
            assert status == 200
    finally:
        stack.stop()
    p95 = percentile(latencies, 0.95)
    return [Result("context retrieval", f"get_context p95 over {history:,} messages", p95, "ms", "≤ 50 ms",
                   p95 <= 50, samples=latencies, note=f"p50 {percentile(latencies, 0.5):.1f} ms, {queries} queries")]


def fail_fast(log_dir: Path, samples: int) -> list[Result]:
    stack = Stack(log_dir, "failfast").start()
    try:
        user = User(stack.core.url)
        conv = user.conversation()
        stack.memory.stop(signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            health = requests.get(f"{stack.core.url}/health", timeout=5).json()
            if health["dependencies"]["memory"]["circuit"] == "open":
                break
            time.sleep(0.1)
        conn = Connection(stack.core.port)
        latencies, statuses = [], set()
        for i in range(samples):
            started = time.monotonic()
            status, _ = conn.request(post_json(user.message_path(conv), {"content": f"while down {i}"},
                                               {"Authorization": f"Bearer {user.token}"}))
            latencies.append((time.monotonic() - started) * 1000)
            statuses.add(status)
    finally:
        stack.stop()
    p99 = percentile(latencies, 0.99)
    return [Result("fail fast", "POST .../messages while Memory is down, p99", p99, "ms", "≤ 20 ms",
                   p99 <= 20 and statuses == {503}, samples=latencies,
                   note=f"statuses {sorted(statuses)}, p50 {percentile(latencies, 0.5):.1f} ms")]
