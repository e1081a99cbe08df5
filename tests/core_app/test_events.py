"""The in-process event log behind the output stream (SPEC §7): ids, replay after Last-Event-ID, fan-out,
the retained window (in events and in bytes), slow subscribers and shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from core_app.events import EventId, EventSubscription, InProcessEventLog, ReplayWindowExceeded

CONV = "c1"
OTHER = "c2"


def make_log(**kwargs) -> InProcessEventLog:
    return InProcessEventLog(**kwargs)


def publish_many(log: InProcessEventLog, count: int, conversation: str = CONV, data: dict | None = None,
                 ) -> list[EventId]:
    return [log.publish(conversation, "message", data or {"n": n}).id for n in range(count)]


def received_ids(sub: EventSubscription, expected: int | None = None, deadline: float = 5.0) -> list[EventId]:
    """Everything the subscription has ready; with `expected`, keep waiting (up to a deadline) until
    that many events have arrived."""
    ids: list[EventId] = []
    give_up = time.monotonic() + deadline
    while True:
        events = sub.wait(0.02)
        if events:
            ids += [event.id for event in events]
            continue
        if events is None or expected is None or len(ids) >= expected or time.monotonic() > give_up:
            return ids


def test_ids_count_each_conversations_own_events_only():
    log = make_log()
    ids = [log.publish(conv, "message", {}).id for conv in (CONV, OTHER) * 10]
    mine, theirs = ids[0::2], ids[1::2]

    assert [event_id.sequence for event_id in mine] == list(range(1, 11))
    assert [event_id.sequence for event_id in theirs] == list(range(1, 11))
    assert len({event_id.log for event_id in mine}) == 1
    # Another conversation's activity changes nothing in this one's ids.
    quiet = make_log()
    assert [event_id.sequence for event_id in publish_many(quiet, 10)] == list(range(1, 11))


def test_a_restarted_log_never_accepts_an_old_id():
    old = make_log()
    old_ids = publish_many(old, 50)
    restarted = make_log()

    new_id = restarted.publish(CONV, "message", {}).id
    assert new_id.log != old_ids[0].log
    with pytest.raises(ReplayWindowExceeded):
        restarted.subscribe(CONV, old_ids[0])


@pytest.mark.parametrize(("raw", "parsed"), [
    ("0123456789ab-0", EventId("0123456789ab", 0)),
    (" 0123456789ab-42 ", EventId("0123456789ab", 42)),
    ("17", EventId("", 17)),  # what older servers sent: well-formed, known to no log
    ("9" * 20, EventId("", 10**20 - 1)),
])
def test_an_event_id_reads_back_what_str_wrote(raw, parsed):
    assert EventId.parse(raw) == parsed
    assert EventId.parse(str(parsed)) == parsed if parsed.log else True


@pytest.mark.parametrize("raw", ["", "abc", "-1", "1.5", "0x1F", "12 34", "9" * 21, "\u00b2", "0123456789ab-",
                                 "0123456789AB-1", "0123456789ab--1", "0123456789ab-1-2", "123456789ab-1",
                                 "0123456789ab-" + "9" * 19, "1700000000000-0x"])
def test_anything_else_is_not_an_event_id(raw):
    with pytest.raises(ValueError):
        EventId.parse(raw)


def test_subscribing_without_an_id_gets_only_live_events():
    log = make_log()
    publish_many(log, 3)
    sub = log.subscribe(CONV, None)

    assert sub.wait(0) == []
    live = publish_many(log, 2)
    assert received_ids(sub, expected=2) == live


def test_subscribing_after_an_id_replays_the_rest_then_goes_live():
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
def test_replay_boundaries(after, replayed):
    log = make_log()
    before_first = log.subscribe(CONV, None).position
    ids = publish_many(log, 4)
    after_id = {"before-first": before_first, "first": ids[0], "last": ids[-1]}[after]

    assert received_ids(log.subscribe(CONV, after_id)) == ids[replayed]
    assert [event.id for event in log.read_after(CONV, after_id)] == ids[replayed]


def test_a_fresh_log_accepts_the_id_it_announced_before_any_event():
    log = make_log()
    sub = log.subscribe(CONV, None)  # a client told "connected" with this position may resume from it

    resumed = log.subscribe(CONV, sub.position)
    live = publish_many(log, 1)
    assert received_ids(resumed, expected=1) == live


def test_no_gap_and_no_duplicate_while_several_threads_publish():
    log = make_log(retention=100_000, buffer_size=100_000, buffer_bytes=1 << 30)
    published: list[EventId] = publish_many(log, 10)
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


def test_a_subscriber_receives_events_in_id_order_when_two_threads_publish():
    log = make_log()
    sub = log.subscribe(CONV, None)
    offer = sub.offer
    first_offered = threading.Event()
    second_published = threading.Event()

    def preempted_offer(event):
        # Models the first publisher being descheduled between leaving the lock and handing over.
        if not first_offered.is_set():
            first_offered.set()
            second_published.wait(2)
        return offer(event)

    sub.offer = preempted_offer  # type: ignore[method-assign]
    first = threading.Thread(target=log.publish, args=(CONV, "response.delta", {"n": 1}))
    first.start()
    assert first_offered.wait(5)
    log.publish(CONV, "response.delta", {"n": 2})
    second_published.set()
    first.join(timeout=5)

    ids = received_ids(sub, expected=2)
    assert ids == sorted(ids)


def test_every_subscriber_gets_every_event_and_other_conversations_get_none():
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
def test_retention_window(after_index, replayed):
    log = make_log(retention=5)
    ids = publish_many(log, 8)  # ids[3:] are retained

    if replayed is None:
        with pytest.raises(ReplayWindowExceeded) as raised:
            log.subscribe(CONV, ids[after_index])
        assert raised.value.code == "replay_window_exceeded"
        assert raised.value.status == 410
        with pytest.raises(ReplayWindowExceeded):
            log.read_after(CONV, ids[after_index])
    else:
        assert received_ids(log.subscribe(CONV, ids[after_index])) == ids[replayed]


def test_an_id_from_before_a_restart_is_refused():
    before_restart = make_log()
    old_ids = publish_many(before_restart, 5)
    log = make_log()
    publish_many(log, 5)

    for old_id in (old_ids[0], old_ids[-1]):
        with pytest.raises(ReplayWindowExceeded) as raised:
            log.subscribe(CONV, old_id)
        assert raised.value.code == "replay_window_exceeded"
    assert log.subscriber_count(CONV) == 0


@pytest.mark.parametrize("ahead", [1, 2, 10**6])
def test_an_id_from_the_future_is_refused(ahead):
    log = make_log()
    last = publish_many(log, 3)[-1]

    with pytest.raises(ReplayWindowExceeded):
        log.subscribe(CONV, EventId(last.log, last.sequence + ahead))


def test_a_slow_subscriber_is_cut_off_without_holding_up_the_others():
    log = make_log(buffer_size=3)
    slow = log.subscribe(CONV, None)  # never reads until the end
    fast = log.subscribe(CONV, None)
    ids: list[EventId] = []
    fast_got: list[EventId] = []

    def publish_and_read() -> None:
        for n in range(20):
            ids.append(log.publish(CONV, "response.delta", {"n": n}).id)
            fast_got.extend(received_ids(fast))
    publisher = threading.Thread(target=publish_and_read)
    publisher.start()
    publisher.join(timeout=5)
    assert not publisher.is_alive(), "publish blocked on a slow subscriber"

    assert fast_got == ids and not fast.overflowed
    assert slow.overflowed
    got = received_ids(slow)  # what it had buffered before it was cut off, then the end
    assert got == ids[:3]
    assert slow.wait(1) is None
    # The cut-off client resumes from the last id it received and misses nothing.
    assert received_ids(log.subscribe(CONV, got[-1])) == ids[3:]


def test_close_unsubscribes():
    log = make_log()
    subs = [log.subscribe(CONV, None) for _ in range(2)]
    assert log.subscriber_count(CONV) == 2

    subs[0].close()

    assert log.subscriber_count(CONV) == 1
    publish_many(log, 1)
    assert subs[0].wait(0) is None
    assert len(received_ids(subs[1], expected=1)) == 1


def test_wait_returns_an_empty_list_on_timeout_and_none_after_end():
    log = make_log()
    sub = log.subscribe(CONV, None)

    assert sub.wait(0.05) == []
    sub.end()
    assert sub.wait(0.05) is None


def test_end_wakes_a_waiting_subscriber_at_once():
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


def test_stored_events_become_sse_events_with_their_id_and_type():
    log = make_log()
    sub = log.subscribe(CONV, None)
    stored = log.publish(CONV, "response.delta", {"response_id": "r1", "delta": "Hi"})

    [event] = sub.wait(1)
    assert event.encode() == (f"id: {stored.id}\nevent: response.delta\n"
                              'data: {"response_id":"r1","delta":"Hi"}\n\n').encode()


def test_an_id_of_an_older_server_is_refused_as_outside_the_window():
    log = make_log()
    publish_many(log, 3)

    with pytest.raises(ReplayWindowExceeded):
        log.subscribe(CONV, EventId.parse("2"))


def test_stored_events_keep_only_their_wire_bytes_and_decode_data_from_them():
    log = make_log()
    stored = log.publish(CONV, "message", {"text": "a\nb ✓", "n": [1, 2]})

    assert stored.data == {"text": "a\nb ✓", "n": [1, 2]}
    assert stored.size == len(stored.encode()) + 200


# --- memory bounds in bytes -----------------------------------------------------------------------------

KIB = 1024


def big(n: int, kib: int = 10) -> dict:
    return {"n": n, "text": "x" * (kib * KIB)}


def test_a_conversation_keeps_at_most_its_byte_bound_and_older_ids_are_refused():
    log = make_log(conversation_bytes=50 * KIB, total_bytes=10 * 1024 * KIB)
    ids = [log.publish(CONV, "message", big(n)).id for n in range(20)]  # 200 KiB published

    retained = log.read_after(CONV)
    assert 3 <= len(retained) <= 4
    assert sum(event.size for event in retained) <= 50 * KIB
    assert [event.id for event in retained] == ids[-len(retained):]
    with pytest.raises(ReplayWindowExceeded):
        log.subscribe(CONV, ids[-len(retained) - 2])
    assert received_ids(log.subscribe(CONV, ids[-len(retained) - 1])) == ids[-len(retained):]


def test_the_whole_log_keeps_at_most_its_byte_bound_dropping_idle_conversations_first():
    log = make_log(conversation_bytes=100 * KIB, total_bytes=300 * KIB)
    listened = log.subscribe("listened", None)
    first_of_listened = publish_many(log, 5, "listened", big(0))
    idle_ids = {f"idle-{n}": publish_many(log, 5, f"idle-{n}", big(n)) for n in range(10)}  # 500 KiB more

    assert log.bytes <= 300 * KIB
    assert sum(event.size for conv in ["listened", *idle_ids] for event in log.read_after(conv)) <= log.bytes
    # The oldest idle conversations were forgotten whole: their ids are refused, their new events start over.
    with pytest.raises(ReplayWindowExceeded):
        log.subscribe("idle-0", idle_ids["idle-0"][-1])
    assert log.publish("idle-0", "message", {}).id.log != idle_ids["idle-0"][0].log
    # The newest idle conversation is still there, and the listened-to one never loses its subscriber.
    assert [event.id for event in log.read_after("idle-9")] == idle_ids["idle-9"]
    assert log.subscriber_count("listened") == 1
    assert received_ids(listened, expected=5) == first_of_listened
    assert log.publish("listened", "message", {}).id.sequence == 6


def test_a_listened_conversation_loses_its_oldest_events_not_its_subscribers_when_the_total_is_full():
    log = make_log(conversation_bytes=1024 * KIB, total_bytes=100 * KIB)
    subs = [log.subscribe(conv, None) for conv in (CONV, OTHER)]
    ids = {conv: publish_many(log, 10, conv, big(0)) for conv in (CONV, OTHER)}  # 200 KiB, all listened to

    assert log.bytes <= 100 * KIB
    for sub, conv in zip(subs, (CONV, OTHER), strict=True):
        assert received_ids(sub, expected=10) == ids[conv]
    assert log.subscriber_count() == 2


def test_a_subscriber_that_falls_behind_in_bytes_is_cut_off_and_resumes_without_a_gap():
    log = make_log(buffer_size=1000, buffer_bytes=35 * KIB)
    slow = log.subscribe(CONV, None)
    ids = [log.publish(CONV, "message", big(n)).id for n in range(10)]  # 10 events, about 100 KiB

    assert slow.overflowed
    got = received_ids(slow)
    assert got == ids[:3]
    assert received_ids(log.subscribe(CONV, got[-1])) == ids[3:]


def test_one_event_larger_than_the_byte_bound_still_reaches_a_reader_that_keeps_up():
    log = make_log(buffer_bytes=4 * KIB)
    sub = log.subscribe(CONV, None)

    for n in range(3):
        [event_id] = publish_many(log, 1, data=big(n, kib=20))
        assert received_ids(sub) == [event_id]
    assert not sub.overflowed
