"""Exactly one reply per stored message, across processes: a first write is announced at once and its reply
claims the message while it gathers context; a replay is announced and answered only if it wins the claim.
Two `Replier`s on one fake Memory stand for two Core processes."""

from __future__ import annotations

import threading

from common.errors import ServiceUnavailable
from core_app.cognition import Cognition
from core_app.events import InProcessEventLog
from core_app.generators import BuiltinGenerator
from core_app.memory import Memory
from core_app.replies import Replier
from tests.core_app.test_replies import CONTEXT, HISTORY, USER, FakeMemory, FakeService, types_of, user_message


def process(memory: FakeMemory, cognition: FakeService) -> tuple[Replier, InProcessEventLog]:
    log = InProcessEventLog()
    return Replier(Memory(memory), Cognition(cognition), log, BuiltinGenerator()), log


def accept(replier: Replier, message: dict, key: str, replayed: bool) -> None:
    with replier.admit(USER, key) as ticket:
        replier.accept(USER, message, ticket, replayed=replayed)


def wait_until_idle(*repliers: Replier) -> None:
    for replier in repliers:
        deadline = threading.Event()
        for _ in range(500):
            if replier.pool.stats()["admitted"] == 0:
                break
            deadline.wait(0.01)  # polling interval; the pool's count is what the test waits for
        assert replier.pool.stats()["admitted"] == 0


def test_a_replay_on_another_process_after_the_reply_adds_nothing():
    memory, cognition = FakeMemory(HISTORY), FakeService("cognition", {"get_context": CONTEXT})
    (a, log_a), (b, log_b) = process(memory, cognition), process(memory, cognition)

    accept(a, user_message(), "u-1:k", replayed=False)
    wait_until_idle(a)
    accept(b, user_message(), "u-1:k", replayed=True)

    assert types_of(log_a.read_after("c-1")).count("response.completed") == 1
    assert log_b.read_after("c-1") == []
    assert b.pool.stats()["admitted"] == 0  # the loser gave its place back
    assert len(memory.calls_to("store_input")) == 1  # one stored reply


def test_a_replay_whose_first_attempt_never_replied_wins_the_claim_and_replies():
    """The first attempt was stored but its answer was lost (the user got 503): no reply was started."""
    memory, cognition = FakeMemory(HISTORY), FakeService("cognition", {"get_context": CONTEXT})
    b, log_b = process(memory, cognition)

    accept(b, user_message(), "u-1:k", replayed=True)
    wait_until_idle(b)

    types = types_of(log_b.read_after("c-1"))
    assert types[:2] == ["message", "response.started"]
    assert types[-2:] == ["response.completed", "message"]
    assert len(memory.calls_to("claim_reply")) == 1


def test_a_first_write_that_loses_the_claim_publishes_nothing_after_its_message():
    memory, cognition = FakeMemory(HISTORY), FakeService("cognition", {"get_context": CONTEXT})
    memory.claimed.add("m-user-3")  # another process has won it already
    a, log_a = process(memory, cognition)

    accept(a, user_message(), "u-1:k", replayed=False)
    wait_until_idle(a)

    assert types_of(log_a.read_after("c-1")) == ["message"]
    assert memory.calls_to("store_input") == []


def test_a_failing_claim_is_the_replys_error_event():
    memory, cognition = FakeMemory(HISTORY), FakeService("cognition", {"get_context": CONTEXT})
    memory.failing.add("claim_reply")
    a, log_a = process(memory, cognition)

    accept(a, user_message(), "u-1:k", replayed=False)
    accept(a, user_message(4), "u-1:other", replayed=True)
    wait_until_idle(a)

    events = log_a.read_after("c-1")
    assert types_of(events) == ["message", "error", "error"]
    assert {e.data["code"] for e in events[1:]} == {"unavailable"}
    assert all(e.data["response_id"] for e in events[1:])
    assert memory.calls_to("store_input") == []


def test_the_claim_with_its_recent_turns_and_the_context_are_asked_at_the_same_time():
    """Each waits until both are in flight: asked one after the other, they would never finish. The recent
    turns come with the claim: no separate call for them."""
    together = threading.Barrier(2, timeout=5)
    memory, cognition = FakeMemory(HISTORY), FakeService("cognition", {})
    claim = memory.answers["claim_reply"]
    memory.answers["claim_reply"] = lambda arguments: (together.wait(), claim(arguments))[1]
    cognition.answers["get_context"] = lambda arguments: (together.wait(), CONTEXT)[1]
    a, log_a = process(memory, cognition)

    a.reply(USER, user_message())

    assert types_of(log_a.read_after("c-1"))[-2:] == ["response.completed", "message"]
    (arguments, _), = memory.calls_to("claim_reply")
    assert arguments["recent"] > 0
    assert memory.calls_to("list_messages") == []


def test_memory_down_for_the_claim_of_a_replay_is_an_error_event():
    memory, cognition = FakeMemory(HISTORY), FakeService("cognition", {"get_context": CONTEXT})
    a, log_a = process(memory, cognition)
    memory.answers["claim_reply"] = lambda arguments: (_ for _ in ()).throw(
        ServiceUnavailable("memory is unreachable", {"service": "memory"}))

    accept(a, user_message(), "u-1:k", replayed=True)

    (event,) = log_a.read_after("c-1")
    assert (event.type, event.data["code"], event.data["in_reply_to"]) == ("error", "unavailable", "m-user-3")
    assert a.pool.stats()["admitted"] == 0
