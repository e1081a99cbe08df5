"""Streams per user, and the access checks that end a stream whose reader lost the conversation."""

from __future__ import annotations

import pytest

from common.errors import Forbidden, NotFound, ServiceUnavailable, TooManyRequests
from core_app.streams import AccessChecks, StreamGuard, stream_slots


def test_slots_are_counted_per_user_and_released_once():
    slots = stream_slots(per_user=2, retry_after=3)
    first, second = slots.take("u1"), slots.take("u1")
    with pytest.raises(TooManyRequests) as raised:
        slots.take("u1")
    assert raised.value.retry_after == 3 and raised.value.status == 429
    other = slots.take("u2")

    first()
    first()  # a second release of the same slot frees nothing more
    third = slots.take("u1")
    with pytest.raises(TooManyRequests):
        slots.take("u1")
    for release in (second, third, other):
        release()
    assert slots.held("u1") == slots.held("u2") == 0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Memory:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.answer: Exception | None = None

    def ask(self, user_id: str, conversation_id: str) -> None:
        self.calls.append((user_id, conversation_id))
        if self.answer is not None:
            raise self.answer


def test_access_is_asked_once_per_user_and_conversation_per_interval():
    clock, memory = Clock(), Memory()
    checks = AccessChecks(memory.ask, interval=30, clock=clock)
    guards = [StreamGuard(checks, "u1", "c1", expires_at=float("inf")) for _ in range(100)]

    assert [guard() for guard in guards] == [None] * 100  # checked when the streams opened
    assert memory.calls == []
    clock.now += 30
    assert [guard() for guard in guards] == [None] * 100
    assert memory.calls == [("u1", "c1")]
    memory.answer = Forbidden("removed")
    clock.now += 10
    assert [guard() for guard in guards] == [None] * 100  # not due yet
    clock.now += 20
    ends = [guard() for guard in guards]
    assert len(memory.calls) == 2
    assert {(event.event, event.data["code"]) for event in ends} == {("error", "forbidden")}


@pytest.mark.parametrize(("answer", "code"), [
    (NotFound("conversation not found"), "forbidden"),
    (Forbidden("not a participant"), "forbidden"),
    (NotFound("user not found", {"object": "user"}), "unauthorized"),
    (ServiceUnavailable("memory is down"), None),  # not the reader's doing: the stream goes on
])
def test_what_ends_a_stream(answer, code):
    clock, memory = Clock(), Memory()
    guard = StreamGuard(AccessChecks(memory.ask, interval=1, clock=clock), "u1", "c1", expires_at=float("inf"))
    memory.answer = answer
    clock.now += 1

    ended = guard()

    assert (ended.data["code"] if ended else None) == code


def test_an_expired_token_ends_the_stream_without_asking_memory():
    memory = Memory()
    guard = StreamGuard(AccessChecks(memory.ask, interval=1), "u1", "c1", expires_at=1000.0,
                        wall_clock=lambda: 1000.0)

    ended = guard()

    assert ended is not None and ended.data["code"] == "token_expired"
    assert memory.calls == []


def test_every_stream_ends_within_one_interval_of_the_lost_access():
    clock, memory = Clock(), Memory()
    checks = AccessChecks(memory.ask, interval=30, clock=clock)
    first = StreamGuard(checks, "u1", "c1", expires_at=float("inf"))  # opened at 100
    clock.now = 125
    second = StreamGuard(checks, "u1", "c1", expires_at=float("inf"))
    clock.now = 130
    assert first() is None and second() is None
    memory.answer = Forbidden("removed")  # lost at 131
    for now in (131, 145, 155, 160):
        clock.now = now
        first(), second()
    ends = [first(), second()]
    assert [event.data["code"] if event else None for event in ends] == ["forbidden", "forbidden"]
