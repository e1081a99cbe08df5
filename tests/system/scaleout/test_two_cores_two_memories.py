"""Two Core processes and two Memory processes on one PostgreSQL schema and one Redis (issue 13): Core A
calls Memory 1, Core B calls Memory 2, one Cognition reads through Memory 2. One stack for the module;
a test that kills a process starts it again on its port before it ends.

- a stream on Core A gets the message and the whole reply of a POST made through Core B, in order; a
  client resuming on Core B with the last id seen on Core A gets what was posted meanwhile, exactly once;
- Core A killed (SIGKILL) while clients stream from it and messages keep coming: every client reconnects
  to Core B with its Last-Event-ID and ends up with exactly the events Redis holds, in order;
- Memory 1 killed (SIGKILL) under a 300-message load posted through both Cores with Idempotency-Keys and
  retried through the other Core: every acknowledged message stored once, nothing twice, sequences gap-free.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.system.scaleout.conversations import (
    assert_turns,
    event_key,
    history,
    post_acknowledged,
    redis_events,
    replies_published,
)
from tests.system.support.api import Api
from tests.system.support.figures import report
from tests.system.support.polling import wait_until
from tests.system.support.sse_reader import ResumingReader, StreamReader, close_all
from tests.system.support.stack import ScaledStack, start_scaled_stack

# Loads below are bounded so the module stays within a few tens of seconds on two shared cores.
KILLED_CORE_CONVERSATIONS, KILLED_CORE_MESSAGES, KILL_CORE_AFTER = 8, 10, 24
LOAD_CLIENTS, LOAD_MESSAGES, KILL_MEMORY_AFTER = 10, 30, 100


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two-by-two")
    stack = start_scaled_stack(tmp, cores=2, memories=2,
                               core_env={"REPLIES_PER_USER": "100", "STREAMS_PER_USER": "50"})
    yield stack
    stack.stop()


def user(stack: ScaledStack, core: int = 0) -> Api:
    return Api(stack.cores[core].url, f"scale-{uuid.uuid4().hex[:10]}@example.com")


def replies_on(reader: StreamReader) -> int:
    return sum(e.event == "message" and e.data.get("role") == "assistant" for e in reader.events)


def test_a_post_through_core_b_streams_whole_on_core_a_and_resumes_on_core_b(scaled: ScaledStack) -> None:
    core_a, core_b = scaled.cores
    alice = user(scaled)
    conv = alice.conversation()
    on_b = alice.on(core_b.url)
    posted: list[str] = []

    on_a = StreamReader(alice.stream_url(conv), token=alice.token)
    try:
        on_a.wait_for("connected")
        posted.append(post_acknowledged([on_b], conv, "Tell me about Porto", uuid.uuid4().hex)[0]["id"])
        wait_until(lambda: replies_on(on_a) == 1, 20, message=f"the reply on Core A; got {on_a.types()}")
    finally:
        on_a.close()
    seen_on_a = [e for e in on_a.events if e.event != "connected"]
    assert_turns(seen_on_a, posted)

    # Disconnected: two more turns through Core B, each stored and published before the next.
    for text in ("And Lisbon?", "And Coimbra?"):
        posted.append(post_acknowledged([on_b], conv, text, uuid.uuid4().hex)[0]["id"])
        wait_until(lambda: replies_published(scaled, conv) == len(posted), 20, message="the reply in Redis")

    resumed = StreamReader(on_b.stream_url(conv), token=alice.token, last_event_id=seen_on_a[-1].id)
    try:
        wait_until(lambda: replies_on(resumed) == 2, 15, message=f"the replay on Core B; got {resumed.types()}")
        # And a live one, posted through Core A (Memory 1) this time.
        posted.append(post_acknowledged([alice], conv, "Thanks", uuid.uuid4().hex)[0]["id"])
        wait_until(lambda: replies_on(resumed) == 3, 20, message=f"the live reply on Core B; got {resumed.types()}")
    finally:
        resumed.close()
    seen_on_b = [e for e in resumed.events if e.event != "connected"]
    assert_turns(seen_on_a + seen_on_b, posted)
    assert [(e.id, e.event) for e in seen_on_a + seen_on_b] == redis_events(scaled, conv)
    # Both Memory processes read the one database: the same history, sequences 1..8.
    through_a, through_b = history(alice, conv), history(on_b, conv)
    assert through_a == through_b and [m["sequence"] for m in through_a] == list(range(1, 9))


def test_clients_of_a_killed_core_resume_on_the_other_and_lose_nothing(scaled: ScaledStack, tmp_path) -> None:
    core_a, core_b = scaled.cores
    bob = user(scaled, core=1)
    convs = [bob.conversation(f"Kill {i}") for i in range(KILLED_CORE_CONVERSATIONS)]
    # A pause before reconnecting (EventSource waits its `retry`) so events are published meanwhile.
    readers = [ResumingReader([core_a.url, core_b.url], f"/v1/conversation/{c}/messages/stream", bob.token,
                              pause=0.5) for c in convs]
    acknowledged: dict[str, list[str]] = {c: [] for c in convs}
    count, lock, kill_now = [0], threading.Lock(), threading.Event()

    def post_all(conv: str) -> None:
        for i in range(KILLED_CORE_MESSAGES):
            message, _ = post_acknowledged([bob], conv, f"{conv} message {i}", uuid.uuid4().hex)
            acknowledged[conv].append(message["id"])
            with lock:
                count[0] += 1
                if count[0] == KILL_CORE_AFTER:
                    kill_now.set()
            time.sleep(0.1)

    started = time.monotonic()
    try:
        wait_until(lambda: all(r.connections == 1 for r in readers), 10, message="every stream on Core A")
        with ThreadPoolExecutor(len(convs)) as pool:
            posting = [pool.submit(post_all, c) for c in convs]
            assert kill_now.wait(20), "the posts never got going"
            killed_at = time.time()
            core_a.kill()
            for future in posting:
                future.result(timeout=30)
        for conv in convs:
            wait_until(lambda: replies_published(scaled, conv) == KILLED_CORE_MESSAGES, 20,  # noqa: B023
                       message="every reply in Redis")
        truth = {conv: redis_events(scaled, conv) for conv in convs}
        wait_until(lambda: all(len(r.seen()) >= len(truth[c]) for r, c in zip(readers, convs, strict=True)), 15,
                   message="every stream to catch up")
    finally:
        close_all(readers)
        core_a.stop()
        core_a.start()

    in_gap = 0
    for reader, conv in zip(readers, convs, strict=True):
        assert reader.connections == 2 and reader.base_index == 1, reader.interruptions
        assert [(e.id, e.event) for e in reader.seen()] == truth[conv]  # exactly once, in order, no error
        inputs = [e.data["id"] for e in reader.seen() if e.event == "message" and e.data["role"] == "user"]
        assert inputs == acknowledged[conv]
        reconnected_ms = reader.connected_at[1] * 1000
        in_gap += sum(killed_at * 1000 <= event_key(e.id)[0] < reconnected_ms for e in reader.seen())
    assert in_gap > 0, "no event was published while the clients were reconnecting"
    report(tmp_path, "killed_core", {
        "streams": len(readers), "messages": sum(map(len, acknowledged.values())),
        "events_per_stream": sorted(len(r.seen()) for r in readers), "published_while_reconnecting": in_gap,
        "reconnect_after_kill_s": sorted(round(r.connected_at[1] - killed_at, 2) for r in readers),
        "seconds": round(time.monotonic() - started, 1)})


def test_a_memory_killed_under_load_loses_nothing_acknowledged_and_stores_nothing_twice(
        scaled: ScaledStack, tmp_path) -> None:
    core_a, core_b = scaled.cores
    memory_1 = scaled.memories[0]
    with ThreadPoolExecutor(LOAD_CLIENTS) as pool:  # signing up is slow on purpose (scrypt): at once
        clients = list(pool.map(lambda i: user(scaled, core=i % 2), range(LOAD_CLIENTS)))
        convs = list(pool.map(lambda api: api.conversation(), clients))
    sides = [(api.on(core_a.url), api.on(core_b.url)) for api in clients]
    acknowledged: list[list[str]] = [[] for _ in clients]
    attempts: Counter[int] = Counter()
    count, lock, kill_now = [0], threading.Lock(), threading.Event()
    run = uuid.uuid4().hex[:8]

    def load(index: int) -> None:
        for i in range(LOAD_MESSAGES):
            message, tries = post_acknowledged(sides[index], convs[index], f"client {index} message {i}",
                                               f"load-{run}-{index}-{i}", first=i % 2)
            acknowledged[index].append(message["id"])
            with lock:
                attempts[tries] += 1
                count[0] += 1
                if count[0] == KILL_MEMORY_AFTER:
                    kill_now.set()

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
            loading = [pool.submit(load, i) for i in range(LOAD_CLIENTS)]
            assert kill_now.wait(30), "the load never got going"
            memory_1.kill()
            killed_after = time.monotonic() - started
            for future in loading:
                future.result(timeout=60)
        load_seconds = time.monotonic() - started

        last: list = [None]

        def settled() -> list[list[dict]] | None:
            """Every history, once two reads in a row agree (the replies still being stored are done)."""
            with ThreadPoolExecutor(LOAD_CLIENTS) as readers:
                now = list(readers.map(lambda i: history(sides[i][1], convs[i]), range(LOAD_CLIENTS)))
            same, last[0] = now == last[0], now
            return now if same else None

        histories = wait_until(settled, 20, interval=0.3, message="the histories to settle")
    finally:
        memory_1.stop()
        memory_1.start()

    for index, messages in enumerate(histories):
        inputs = [m for m in messages if m["role"] == "user"]
        contents = Counter(m["content"] for m in inputs)
        assert contents == Counter(f"client {index} message {i}" for i in range(LOAD_MESSAGES)), "lost or doubled"
        assert [m["id"] for m in inputs] == acknowledged[index]  # every acknowledged id, once, in order
        assert sorted(m["sequence"] for m in messages) == list(range(1, len(messages) + 1)), "a gap"
    replies = sum(m["role"] == "assistant" for h in histories for m in h)
    report(tmp_path, "killed_memory", {
        "messages": sum(map(len, acknowledged)), "clients": LOAD_CLIENTS, "killed_after_s": round(killed_after, 2),
        "load_s": round(load_seconds, 1), "attempts_per_message": dict(sorted(attempts.items())),
        "replies_stored": replies})
