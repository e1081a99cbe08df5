"""What only the in-process event log does: `EventId`s (a random tag per conversation log and a
per-conversation sequence, legacy plain numbers), a restart forgets everything, handing over in id order
under concurrent publishers, and retention bounded in bytes per conversation and per process."""

from __future__ import annotations

import threading

import pytest

from core_app.events import EventId, FanOut, InProcessEventLog, ReplayWindowExceeded
from tests.core_app.event_backends import CONV, OTHER, publish_many, received_ids


def make_log(retention: int = 1000, *, conversation_bytes: int = 4 << 20, total_bytes: int = 128 << 20,
             **fanout: int) -> InProcessEventLog:
    return InProcessEventLog(FanOut(**fanout), retention=retention, conversation_bytes=conversation_bytes,
                             total_bytes=total_bytes)


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
    assert make_log().parse_position(raw) == parsed


@pytest.mark.parametrize("raw", ["", "abc", "-1", "1.5", "0x1F", "12 34", "9" * 21, "\u00b2", "0123456789ab-",
                                 "0123456789AB-1", "0123456789ab--1", "0123456789ab-1-2", "123456789ab-1",
                                 "0123456789ab-" + "9" * 19, "1700000000000-0x"])
def test_anything_else_is_not_an_event_id(raw):
    with pytest.raises(ValueError):
        EventId.parse(raw)
    with pytest.raises(ValueError):
        make_log().parse_position(raw)


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


def test_an_id_of_an_older_server_is_refused_as_outside_the_window():
    log = make_log()
    publish_many(log, 3)

    with pytest.raises(ReplayWindowExceeded):
        log.subscribe(CONV, EventId.parse("2"))


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
