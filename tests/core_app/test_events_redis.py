"""What only the Redis event log does: stream ids as positions,
exact trimming, ids that work on another process's log and after a restart, one reader and a few
connections for many streams, the wake-up of a newly subscribed conversation, and what a Redis outage
does to publishers, open streams and new subscribers (against a redis-server of the test's own)."""

from __future__ import annotations

import logging
import signal
import threading
import time

import pytest

from core_app.events import ReplayWindowExceeded, StreamUnavailable
from core_app.events.stream_ids import StreamId
from tests.core_app.event_backends import CONV, OTHER, on_redis, publish_many, received_ids
from tests.core_app.redis_server import own_redis


@pytest.mark.parametrize(("raw", "parsed"), [
    ("1700000000000-0", StreamId(1700000000000, 0)),
    (" 0-0 ", StreamId(0, 0)),
    ("17-3", StreamId(17, 3)),
])
def test_a_stream_id_reads_back_what_redis_wrote(raw, parsed):
    assert StreamId.parse(raw) == parsed
    assert str(parsed) == raw.strip()
    assert on_redis().parse_position(raw) == parsed


@pytest.mark.parametrize("raw", ["01-0", "1-01", "1-", "-1", "1_0", "1-0-0", "18446744073709551616-0", "a-b"])
def test_anything_else_is_not_a_stream_id(raw):
    with pytest.raises(ValueError):
        StreamId.parse(raw)
    with pytest.raises(ValueError):
        on_redis().parse_position(raw)


def test_streams_are_trimmed_exactly_to_the_retention():
    log = on_redis(retention=5)
    ids = publish_many(log, 12)

    assert log.client.xlen(log.key(CONV)) == 5
    assert [event.id for event in log.backlog(CONV, ids[6]).events] == ids[7:]
    with pytest.raises(ReplayWindowExceeded):
        log.backlog(CONV, ids[5])


def test_an_id_from_one_process_resumes_on_another_and_after_a_restart():
    first = on_redis()
    ids = publish_many(first, 5)
    other = on_redis()
    other.prefix = first.prefix  # the same Redis keys, as every Core process of one deployment uses
    other.reader.wake_key = f"{first.prefix}:reader:other"

    resumed = other.subscribe(CONV, other.parse_position(str(ids[1])))
    assert received_ids(resumed, expected=3) == ids[2:]
    live = publish_many(first, 2)
    assert received_ids(resumed, expected=2) == live


def test_an_id_whose_stream_is_gone_is_replay_window_exceeded():
    log = on_redis()
    ids = publish_many(log, 3)
    log.client.delete(log.key(CONV))  # as after a Redis restart without persistence

    with pytest.raises(ReplayWindowExceeded):
        log.subscribe(CONV, ids[-1])
    assert log.subscribe(CONV, log.parse_position("0-0")).position == StreamId(0, 0)


def clients_named(log) -> int:
    listing = log.client.client_list()
    return sum(1 for client in listing if client.get("name") == log.client_name)


def test_many_streams_on_many_conversations_use_one_reader_and_a_few_connections():
    log = on_redis(pool_size=4)
    conversations = [f"conv-{n}" for n in range(100)]
    subs = [log.subscribe(conv, None) for conv in conversations for _ in range(3)]  # 300 streams

    published = {conv: log.publish(conv, "message", {"to": conv}).id for conv in conversations}
    for sub in subs:
        assert received_ids(sub, expected=1) == [published[sub.conversation_id]]
    assert clients_named(log) <= 4 + 1  # the publishers' pool and the one reader
    # One reading thread; its reads follow the wake-ups and the publishes, never the number of streams.
    assert [t for t in threading.enumerate() if t is log.reader._thread] != []
    assert log.reader.reads <= 2 * len(conversations) + 5 < len(subs)


def test_a_newly_subscribed_conversation_wakes_the_blocked_reader():
    log = on_redis(block_seconds=30)
    log.subscribe(OTHER, None)
    time.sleep(0.2)  # the reader is now blocked on OTHER alone, for up to 30 s
    sub = log.subscribe(CONV, None)

    started = time.monotonic()
    [event_id] = publish_many(log, 1)
    assert received_ids(sub, expected=1, deadline=5) == [event_id]
    assert time.monotonic() - started < 2


def test_redis_down_refuses_streams_ends_open_ones_and_recovers(tmp_path, caplog):
    server = own_redis(tmp_path)
    try:
        log = on_redis_at(server.url)
        sub = log.subscribe(CONV, None)
        [before] = publish_many(log, 1)
        assert received_ids(sub, expected=1) == [before]

        caplog.set_level(logging.WARNING, logger="core_app.events.redis")
        server.stop(signal.SIGKILL)
        ended = wait_ended(sub)
        assert [event.type for event in ended] == ["error"]
        assert b"stream_unavailable" in ended[0].wire and b"id:" not in ended[0].wire
        for _ in range(5):
            with pytest.raises(StreamUnavailable):
                log.publish(CONV, "message", {})
        with pytest.raises(StreamUnavailable) as refused:
            log.subscribe(CONV, before)
        assert (refused.value.status, refused.value.code) == (503, "stream_unavailable")
        assert log.subscriber_count() == 0
        assert sum("Redis is unavailable" in record.message for record in caplog.records) == 1

        server.start()  # the same port, no data: what it held is gone
        time.sleep(log.outage.pause)
        with pytest.raises(ReplayWindowExceeded):
            log.subscribe(CONV, before)
        again = log.subscribe(CONV, None)
        [after] = publish_many(log, 1)
        assert after > before  # stream ids follow the clock, so a restart never reuses one
        assert received_ids(again, expected=1) == [after]
        assert sum("Redis is back" in record.message for record in caplog.records) == 1
    finally:
        server.stop()


def on_redis_at(url: str):
    import tests.core_app.event_backends as backends

    original = backends.redis_url
    backends.redis_url = lambda: url
    try:
        return on_redis()
    finally:
        backends.redis_url = original


def wait_ended(sub, deadline: float = 10.0) -> list:
    got: list = []
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        events = sub.wait(0.05)
        if events is None:
            return got
        got += events
    raise AssertionError(f"the subscription did not end; got {got}")
