"""One Core process of four gevent workers (`WEB_CONCURRENCY=4`, one gunicorn) on Redis, one Memory on
PostgreSQL (issue 13): 50 clients, each with its own conversation and stream, every request on a new
connection so the kernel hands them to whichever worker accepts. Streams and posts land on several workers
(seen through `/debug/stats`' pid and subscriber count, and the access log's pid), and every client gets
every event of its conversation exactly once, in order, in whole turns — what Redis holds for it."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.system.scaleout.conversations import assert_turns, post_acknowledged, redis_events
from tests.system.support.api import Api
from tests.system.support.figures import latency_figures, report, session_cpu_seconds
from tests.system.support.sse_reader import StreamReader, close_all
from tests.system.support.stack import ScaledStack, start_scaled_stack

WORKERS, USERS, CLIENTS, TURNS = 4, 5, 50, 3
# The worker's pid on each access-log line, to see which worker answered each POST.
ACCESS_FORMAT = "--access-logformat 'served-by %(p)s %(m)s %(U)s %(s)s'"
SERVED = re.compile(r"served-by <(\d+)> (\w+) (\S+) (\d+)")


@pytest.fixture(scope="module")
def four_workers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("four-workers")
    stack = start_scaled_stack(tmp, cores=1, memories=1, core_env={
        "WEB_CONCURRENCY": str(WORKERS), "DEBUG_STATS": "true", "GUNICORN_CMD_ARGS": ACCESS_FORMAT,
        "REPLIES_PER_USER": "100", "STREAMS_PER_USER": "100"})
    yield stack
    stack.stop()


def subscribers_by_worker(base: str, samples: int = 200) -> dict[int, int]:
    """Each worker's pid and the streams it holds, from `/debug/stats` asked on new connections until all
    the workers answered or `samples` asks were made."""
    seen: dict[int, int] = {}
    for _ in range(samples):
        stats = requests.get(f"{base}/debug/stats", timeout=5).json()
        seen[stats["pid"]] = stats["subscribers"]
        if len(seen) == WORKERS:
            break
    return seen


def test_fifty_clients_over_four_workers_get_every_event_once_in_order(four_workers: ScaledStack, tmp_path) -> None:
    core = four_workers.cores[0]
    users = [Api(core.url, f"workers-{uuid.uuid4().hex[:10]}@example.com") for _ in range(USERS)]
    clients = [users[i % USERS] for i in range(CLIENTS)]
    convs = [api.conversation(f"Client {i}") for i, api in enumerate(clients)]
    services = {"core": core, "memory": four_workers.memories[0], "cognition": four_workers.cognition}
    cpu_before = {name: session_cpu_seconds(proc.pid) for name, proc in services.items()}
    started = time.monotonic()
    streams = [StreamReader(api.stream_url(conv), token=api.token) for api, conv in zip(clients, convs, strict=True)]
    posted: list[list[str]] = [[] for _ in clients]
    latencies: list[float] = []
    lock = threading.Lock()

    def converse(index: int) -> None:
        """TURNS messages, each posted (on a new connection) once the reply to the one before has ended."""
        for turn in range(TURNS):
            sent = time.monotonic()
            message, _ = post_acknowledged([clients[index]], convs[index], f"client {index} turn {turn}",
                                           uuid.uuid4().hex)
            posted[index].append(message["id"])
            streams[index].wait_for("message", timeout=30, count=2 * (turn + 1))
            with lock:
                latencies.append(time.monotonic() - sent)

    try:
        for stream in streams:
            assert stream.status == 200
            stream.wait_for("connected")
        holders = subscribers_by_worker(core.url)
        opened = time.monotonic() - started
        with ThreadPoolExecutor(CLIENTS) as pool:
            for future in [pool.submit(converse, i) for i in range(CLIENTS)]:
                future.result(timeout=60)
        talked = time.monotonic() - started
    finally:
        close_all(streams)
    seconds = time.monotonic() - started
    cpu_ms_per_turn = {name: round((session_cpu_seconds(proc.pid) - cpu_before[name]) * 1000 / (CLIENTS * TURNS), 1)
                       for name, proc in services.items()}

    for stream, conv, ids in zip(streams, convs, posted, strict=True):
        events = [e for e in stream.events if e.event != "connected"]
        assert_turns(events, ids)
        assert [(e.id, e.event) for e in events] == redis_events(four_workers, conv)
    assert sum(holders.values()) == CLIENTS, holders  # every stream held by exactly one worker, all answered
    assert len([pid for pid, held in holders.items() if held]) >= 2, f"one worker held every stream: {holders}"
    posts_by_pid = Counter(int(pid) for pid, method, path, status in SERVED.findall(core.log_text())
                           if method == "POST" and path.endswith("/messages") and status == "202")
    assert sum(posts_by_pid.values()) == CLIENTS * TURNS
    assert len(posts_by_pid) >= 2, f"one worker served every POST: {posts_by_pid}"
    report(tmp_path, "four_workers", {
        "clients": CLIENTS, "turns": CLIENTS * TURNS, "events": sum(len(s.events) for s in streams),
        "streams_by_worker": sorted(holders.values()), "posts_by_worker": sorted(posts_by_pid.values()),
        "post_to_reply_end": latency_figures(latencies), "cpu_ms_per_turn": cpu_ms_per_turn,
        "streams_open_s": round(opened, 1), "turns_done_s": round(talked, 1), "seconds": round(seconds, 1)})
