"""The per-process fan-out every event-log backend feeds: subscriber buffers bounded in events and bytes,
the cut-off of a slow subscriber (and its resume), closing and ending, heartbeats, the shared bell, and
a backend that delivers asynchronously (late or early relative to the backlog it returned)."""

from __future__ import annotations

import threading
import time

import pytest

from core_app.events import Backlog, FanOut, Position, StoredEvent
from tests.core_app.event_backends import BACKENDS, CONV, OTHER, publish_many, received_ids, settle
from tests.core_app.polling import eventually


@pytest.fixture(params=sorted(BACKENDS))
def make_log(request):
    return BACKENDS[request.param]


def test_a_slow_subscriber_is_cut_off_without_holding_up_the_others(make_log):
    log = make_log(buffer_size=3)
    slow = log.subscribe(CONV, None)  # never reads until the end
    fast = log.subscribe(CONV, None)
    ids: list[Position] = []
    fast_got: list[Position] = []

    def publish_and_read() -> None:
        for n in range(20):
            ids.append(log.publish(CONV, "response.delta", {"n": n}).id)
            fast_got.extend(received_ids(fast))
    publisher = threading.Thread(target=publish_and_read)
    publisher.start()
    publisher.join(timeout=5)
    assert not publisher.is_alive(), "publish blocked on a slow subscriber"
    settle(log, CONV, ids[-1])

    assert fast_got == ids and not fast.overflowed
    assert slow.overflowed
    got = received_ids(slow)  # what it had buffered before it was cut off, then the end
    assert got == ids[:3]
    assert slow.wait(1) is None
    # The cut-off client resumes from the last id it received and misses nothing.
    assert received_ids(log.subscribe(CONV, got[-1])) == ids[3:]


def test_a_cut_off_subscriber_calls_its_overflow_callback_once(make_log):
    log = make_log(buffer_size=2)
    cuts: list[str] = []
    log.subscribe(CONV, None, on_overflow=lambda: cuts.append("cut"))

    publish_many(log, 6)

    # A backend may deliver after publish returns (Redis: this process's reader), so wait for the cut.
    eventually(lambda: cuts, what="the subscriber to be cut off")
    assert cuts == ["cut"]
    assert log.subscriber_count(CONV) == 0


def test_close_unsubscribes(make_log):
    log = make_log()
    subs = [log.subscribe(CONV, None) for _ in range(2)]
    assert log.subscriber_count(CONV) == 2

    subs[0].close()

    assert log.subscriber_count(CONV) == 1
    publish_many(log, 1)
    assert subs[0].wait(0) is None
    assert len(received_ids(subs[1], expected=1)) == 1


def test_wait_returns_an_empty_list_on_timeout_and_none_after_end(make_log):
    log = make_log()
    sub = log.subscribe(CONV, None)

    assert sub.wait(0.05) == []
    sub.end()
    assert sub.wait(0.05) is None


def test_end_wakes_a_waiting_subscriber_at_once(make_log):
    log = make_log()
    sub = log.subscribe(CONV, None)
    results = []
    waiter = threading.Thread(target=lambda: results.append(sub.wait(30)))
    waiter.start()

    sub.end()
    waiter.join(timeout=5)

    assert not waiter.is_alive()
    assert results == [None]
    assert sub.wait(0) is None


def test_a_long_wait_ends_at_the_conversations_heartbeat(make_log):
    log = make_log(heartbeat=0.2)
    sub = log.subscribe(CONV, None)

    started = time.monotonic()
    assert sub.wait(30) == []
    assert time.monotonic() - started < 2


def test_the_subscribers_of_a_conversation_share_one_bell(make_log):
    log = make_log()
    mine = [log.subscribe(CONV, None) for _ in range(2)]
    theirs = log.subscribe(OTHER, None)

    assert mine[0].bell is mine[1].bell
    assert theirs.bell is not mine[0].bell
    assert sorted(log.fanout.conversations()) == [CONV, OTHER]


# --- memory bounds in bytes -----------------------------------------------------------------------------

KIB = 1024


def big(n: int, kib: int = 10) -> dict:
    return {"n": n, "text": "x" * (kib * KIB)}


def test_a_subscriber_that_falls_behind_in_bytes_is_cut_off_and_resumes_without_a_gap(make_log):
    log = make_log(buffer_size=1000, buffer_bytes=35 * KIB)
    slow = log.subscribe(CONV, None)
    ids = [log.publish(CONV, "message", big(n)).id for n in range(10)]  # 10 events, about 100 KiB
    settle(log, CONV, ids[-1])

    assert slow.overflowed
    got = received_ids(slow)
    assert got == ids[:3]
    assert received_ids(log.subscribe(CONV, got[-1])) == ids[3:]


def test_one_event_larger_than_the_byte_bound_still_reaches_a_reader_that_keeps_up(make_log):
    log = make_log(buffer_bytes=4 * KIB)
    sub = log.subscribe(CONV, None)

    for n in range(3):
        [event_id] = publish_many(log, 1, data=big(n, kib=20))
        assert received_ids(sub) == [event_id]
    assert not sub.overflowed


# --- a backend that delivers asynchronously ---------------------------------------------------------------
# Driven through the fan-out alone, with plain numbers as positions: the order in which a reader of a
# shared log delivers events and a subscriber reads its backlog is not the publisher's.


def event(n: int) -> StoredEvent:
    return StoredEvent.create(n, "message", {"n": n})


def numbers(events: list[StoredEvent] | None) -> list[int]:
    return [int(str(stored.id)) for stored in events or []]


@pytest.mark.parametrize(("early", "backlog", "late"), [
    ([], [2, 3, 4], [3, 4, 5, 6]),  # the reader hands over again what the backlog gave
    ([3, 4], [2, 3], [5, 6]),  # the reader was ahead of the backlog's read
    ([4], [2, 3, 4], [5, 6]),
], ids=["late-reader", "early-reader", "early-overlapping"])
def test_an_asynchronous_backend_gives_no_gap_and_no_duplicate(early, backlog, late):
    fanout = FanOut()
    sub = fanout.add(CONV)
    for n in early:
        fanout.deliver(CONV, event(n))
    fanout.catch_up(sub, Backlog([event(n) for n in backlog], backlog[-1]), 1)
    for n in late:
        fanout.deliver(CONV, event(n))

    assert int(str(sub.position)) == 1
    assert numbers(sub.wait(0)) == [2, 3, 4, 5, 6]
    assert sub.position == 6


def test_a_new_subscriber_without_a_position_gets_nothing_from_before_the_end_it_was_told():
    fanout = FanOut()
    sub = fanout.add(CONV)
    fanout.deliver(CONV, event(5))  # published before the log's end was read
    fanout.catch_up(sub, Backlog([], 5), None)
    fanout.deliver(CONV, event(5))
    fanout.deliver(CONV, event(6))

    assert sub.position == 5
    assert numbers(sub.wait(0)) == [6]
