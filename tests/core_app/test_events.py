"""The event-log contract (SPEC §7), run against every backend in `event_backends.BACKENDS`: positions
and their ids (the other backend's ids retired), replay after Last-Event-ID, live events for every
subscriber of a conversation, the retained window, and no gap or duplicate between the backlog and live
events."""

from __future__ import annotations

import threading
import time

import pytest

from core_app.config import load_config
from core_app.events import InProcessEventLog, Position, ReplayWindowExceeded, open_event_log
from core_app.events.stored import RetiredId
from tests.core_app.event_backends import BACKENDS, CONV, FOREIGN_IDS, OTHER, publish_many, received_ids


@pytest.fixture(params=sorted(BACKENDS))
def make_log(request):
    return BACKENDS[request.param]


def test_positions_are_ordered_and_read_back_from_their_ids(make_log):
    log = make_log()
    ids = publish_many(log, 10)

    assert all(earlier < later and earlier <= later and not later <= earlier
               for earlier, later in zip(ids, ids[1:], strict=False))
    assert [log.parse_position(str(event_id)) for event_id in ids] == ids
    assert [log.parse_position(f" {event_id} ") for event_id in ids] == ids


@pytest.mark.parametrize("raw", ["", "abc", "-1", "1.5", "0x1F", "12 34", "\u00b2"])
def test_anything_else_is_not_a_position(make_log, raw):
    with pytest.raises(ValueError):
        make_log().parse_position(raw)


@pytest.mark.parametrize(("backend", "raw"), [(name, raw) for name in sorted(BACKENDS) for raw in FOREIGN_IDS[name]])
def test_an_id_of_the_other_backend_is_retired_and_resuming_from_it_is_replay_window_exceeded(backend, raw):
    log = BACKENDS[backend]()
    publish_many(log, 2)

    position = log.parse_position(raw)
    assert position == RetiredId(raw.strip())
    with pytest.raises(ReplayWindowExceeded):
        log.subscribe(CONV, position)
    assert log.subscriber_count() == 0


def test_subscribing_without_an_id_gets_only_live_events(make_log):
    log = make_log()
    publish_many(log, 3)
    sub = log.subscribe(CONV, None)

    assert sub.wait(0) == []
    live = publish_many(log, 2)
    assert received_ids(sub, expected=2) == live


def test_subscribing_after_an_id_replays_the_rest_then_goes_live(make_log):
    log = make_log()
    ids = publish_many(log, 5)
    sub = log.subscribe(CONV, ids[1])

    events = sub.wait(0)
    assert [event.id for event in events] == ids[2:]
    assert [event.data for event in events] == [{"n": 2}, {"n": 3}, {"n": 4}]
    live = publish_many(log, 2)
    assert received_ids(sub, expected=2) == live


@pytest.mark.parametrize(
    ("after", "replayed"),
    [
        ("before-first", slice(0, None)),
        ("first", slice(1, None)),
        ("last", slice(0, 0)),
    ],
)
def test_replay_boundaries(make_log, after, replayed):
    log = make_log()
    before_first = log.subscribe(CONV, None).position
    ids = publish_many(log, 4)
    after_id = {"before-first": before_first, "first": ids[0], "last": ids[-1]}[after]

    assert received_ids(log.subscribe(CONV, after_id)) == ids[replayed]
    assert [event.id for event in log.backlog(CONV, after_id).events] == ids[replayed]


def test_a_fresh_log_accepts_the_id_it_announced_before_any_event(make_log):
    log = make_log()
    sub = log.subscribe(CONV, None)  # a client told "connected" with this position may resume from it

    resumed = log.subscribe(CONV, sub.position)
    assert resumed.position == sub.position
    live = publish_many(log, 1)
    assert received_ids(resumed, expected=1) == live


def test_no_gap_and_no_duplicate_while_several_threads_publish(make_log):
    log = make_log(retention=100_000, buffer_size=100_000, buffer_bytes=1 << 30)
    published: list[Position] = publish_many(log, 10)
    stop = threading.Event()

    def publisher(name: str) -> None:
        count = 0
        while not (stop.is_set() and count >= 50):
            published.append(log.publish(CONV, "response.delta", {"by": name, "n": count}).id)
            count += 1

    threads = [threading.Thread(target=publisher, args=(f"p{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    subscribers = []  # (subscription, the id after which it must see everything)
    for round_ in range(6):
        target = len(published) + 100
        give_up = time.monotonic() + 5
        while len(published) < target and time.monotonic() < give_up:
            time.sleep(0.001)  # let the publishers run; the loop condition is what synchronises
        if round_ % 2:
            sub = log.subscribe(CONV, None)
            subscribers.append((sub, sub.position))
        else:
            after_id = published[len(published) // 2]  # an id already published, being published around
            subscribers.append((log.subscribe(CONV, after_id), after_id))
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()

    every_id = sorted(published)
    assert len(set(every_id)) == len(every_id)
    for sub, after_id in subscribers:
        got = received_ids(sub)
        assert len(got) == len(set(got)), "an event was delivered twice"
        assert sorted(got) == [event_id for event_id in every_id if event_id > after_id], "an event is missing"


def test_every_subscriber_gets_every_event_and_other_conversations_get_none(make_log):
    log = make_log()
    mine = [log.subscribe(CONV, None) for _ in range(3)]
    theirs = log.subscribe(OTHER, None)

    ids = publish_many(log, 4)

    for sub in mine:
        assert received_ids(sub, expected=4) == ids
    assert theirs.wait(0) == []
    assert log.subscriber_count(CONV) == 3
    assert log.subscriber_count() == 4


@pytest.mark.parametrize(
    ("after_index", "replayed"),
    [
        (1, None),  # its successor was dropped from the window
        (2, slice(3, None)),  # the edge: the last dropped id, everything after it is still retained
        (3, slice(4, None)),
        (7, slice(0, 0)),
    ],
    ids=["older-than-window", "window-edge", "inside-window", "newest"],
)
def test_retention_window(make_log, after_index, replayed):
    log = make_log(retention=5)
    ids = publish_many(log, 8)  # ids[3:] are retained

    if replayed is None:
        with pytest.raises(ReplayWindowExceeded) as raised:
            log.subscribe(CONV, ids[after_index])
        assert raised.value.code == "replay_window_exceeded"
        assert raised.value.status == 410
        with pytest.raises(ReplayWindowExceeded):
            log.backlog(CONV, ids[after_index])
    else:
        assert received_ids(log.subscribe(CONV, ids[after_index])) == ids[replayed]


def test_a_refused_subscription_holds_no_subscriber(make_log):
    log = make_log(retention=2)
    ids = publish_many(log, 5)

    with pytest.raises(ReplayWindowExceeded):
        log.subscribe(CONV, ids[0])
    assert log.subscriber_count(CONV) == 0


def test_stored_events_become_sse_events_with_their_id_and_type(make_log):
    log = make_log()
    sub = log.subscribe(CONV, None)
    stored = log.publish(CONV, "response.delta", {"response_id": "r1", "delta": "Hi"})

    [event] = sub.wait(1)
    assert event.encode() == (f"id: {stored.id}\nevent: response.delta\n"
                              'data: {"response_id":"r1","delta":"Hi"}\n\n').encode()


def test_stored_events_keep_only_their_wire_bytes_and_decode_data_from_them(make_log):
    log = make_log()
    stored = log.publish(CONV, "message", {"text": "a\nb ✓", "n": [1, 2]})

    assert stored.data == {"text": "a\nb ✓", "n": [1, 2]}
    assert stored.size == len(stored.encode()) + 200


def test_the_factory_builds_the_log_the_settings_describe():
    settings = load_config({"JWT_SECRET": "x" * 32, "EVENT_RETENTION": "7", "SUBSCRIBER_BUFFER": "9",
                            "SUBSCRIBER_BUFFER_BYTES": "4096", "SSE_HEARTBEAT_SECONDS": "0.3",
                            "EVENT_LOG_CONVERSATION_BYTES": "8192", "EVENT_LOG_BYTES": "65536"})

    log = open_event_log(settings)

    assert isinstance(log, InProcessEventLog)  # without REDIS_URL, the only backend there is
    assert (log.retention, log.conversation_bytes, log.total_bytes) == (7, 8192, 65536)
    assert (log.fanout.buffer_size, log.fanout.buffer_bytes, log.fanout.heartbeat) == (9, 4096, 0.3)
