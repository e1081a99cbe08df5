"""What follows a stored user message (SPEC §7): its echo, then the reply streamed as events and stored,
with fake Memory and Cognition clients and a real in-process event log."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from common.errors import ServiceUnavailable
from core_app.cognition import Cognition
from core_app.events import InProcessEventLog, StoredEvent
from core_app.generators import BuiltinGenerator, Prompt, ProviderError
from core_app.memory import Memory
from core_app.replies import Replier

USER = "u-1"
CONV = "c-1"


class FakeService:
    """A stand-in for a `ServiceClient`: records every call, answers from `answers`, and raises
    `ServiceUnavailable` for the tools listed in `failing`."""

    def __init__(self, name: str, answers: dict[str, Any]) -> None:
        self.name = name
        self.answers = answers
        self.failing: set[str] = set()
        self.calls: list[tuple[str, dict, str | None]] = []
        self._lock = threading.Lock()

    def call_tool(self, tool: str, arguments: dict, idempotency_key: str | None = None) -> Any:
        with self._lock:
            self.calls.append((tool, arguments, idempotency_key))
        if tool in self.failing:
            raise ServiceUnavailable(f"{self.name} is unreachable", {"service": self.name})
        answer = self.answers[tool]
        return answer(arguments) if callable(answer) else answer

    def calls_to(self, tool: str) -> list[tuple[dict, str | None]]:
        with self._lock:
            return [(arguments, key) for name, arguments, key in self.calls if name == tool]


class FakeMemory(FakeService):
    def __init__(self, history: list[dict]) -> None:
        self.sequence = itertools.count(len(history) + 1)
        self.claimed: set[str] = set()
        super().__init__("memory", {"store_input": self.store, "list_messages": {"messages": history},
                                    "claim_reply": self.claim})

    def claim(self, arguments: dict) -> dict:
        """Memory's claim: true for exactly one call per message, with the turns before it when asked."""
        with self._lock:
            won = arguments["message_id"] not in self.claimed
            self.claimed.add(arguments["message_id"])
        answer: dict = {"claimed": won, "message_id": arguments["message_id"]}
        if won and arguments.get("recent"):
            history = self.answers["list_messages"]
            turns = (history(arguments) if callable(history) else history)["messages"]
            ids = [turn["id"] for turn in turns]
            before = turns[:ids.index(arguments["message_id"])] if arguments["message_id"] in ids else turns
            answer["recent"] = before[-arguments["recent"]:]
        return answer

    def store(self, arguments: dict) -> dict:
        data = arguments["input_data"]
        sequence = next(self.sequence)
        return {"status": "stored", "message": {
            "id": f"m-{sequence}", "conversation_id": data["conversation_id"], "sender_id": arguments["user_id"],
            "role": data["role"], "content": data["content"], "metadata": data.get("metadata", {}),
            "sequence": sequence, "created_at": "2024-01-01T00:00:00Z"}}


class RecordingGenerator:
    """Streams fixed deltas, optionally failing after some of them; remembers the prompts it got."""

    def __init__(self, deltas: list[str], fail_after: int | None = None) -> None:
        self.deltas = deltas
        self.fail_after = fail_after
        self.prompts: list[Prompt] = []

    def stream(self, prompt: Prompt) -> Iterator[str]:
        self.prompts.append(prompt)
        for index, delta in enumerate(self.deltas):
            if index == self.fail_after:
                raise ProviderError("the language model's stream ended before the reply was finished")
            yield delta


def user_message(sequence: int = 3, content: str = "What did I plant in the garden?") -> dict:
    return {"id": f"m-user-{sequence}", "conversation_id": CONV, "sender_id": USER, "role": "user",
            "content": content, "metadata": {}, "sequence": sequence, "created_at": "2024-01-01T00:00:00Z"}


HISTORY = [
    {"id": "m-1", "conversation_id": CONV, "role": "user", "content": "I planted tomatoes", "sequence": 1},
    {"id": "m-2", "conversation_id": CONV, "role": "assistant", "content": "Nice!", "sequence": 2},
    {"id": "m-user-3", "conversation_id": CONV, "role": "user", "content": "What did I plant in the garden?",
     "sequence": 3},
]
CONTEXT = {"context": [
    {"id": "m-user-3", "content": "What did I plant in the garden?", "score": 1.0},  # the message itself
    {"id": "m-1", "content": "I planted tomatoes and basil in the garden", "score": 0.9},
]}


@pytest.fixture
def log() -> InProcessEventLog:
    return InProcessEventLog()


@pytest.fixture
def memory() -> FakeMemory:
    return FakeMemory(HISTORY)


@pytest.fixture
def cognition() -> FakeService:
    return FakeService("cognition", {"get_context": CONTEXT})


def make_replier(memory, cognition, log, generator=None) -> Replier:
    return Replier(Memory(memory), Cognition(cognition), log, generator or BuiltinGenerator())


def events_of(log: InProcessEventLog) -> list[StoredEvent]:
    return log.read_after(CONV)


def types_of(events: list[StoredEvent]) -> list[str]:
    return [event.type for event in events]


def test_a_reply_is_started_streamed_completed_and_announced_in_that_order(memory, cognition, log):
    make_replier(memory, cognition, log).reply(USER, user_message())

    events = events_of(log)
    types = types_of(events)
    assert types[0] == "response.started"
    assert types[-2:] == ["response.completed", "message"]
    deltas = types[1:-2]
    assert len(deltas) >= 2 and set(deltas) == {"response.delta"}
    response_id = events[0].data["response_id"]
    assert events[0].data == {"response_id": response_id, "in_reply_to": "m-user-3"}
    assert all(event.data["response_id"] == response_id for event in events[1:-1])
    streamed = "".join(event.data["delta"] for event in events[1:-2])
    completed, announced = events[-2].data, events[-1].data
    assert completed["response_id"] == response_id
    assert completed["message"] == announced
    assert announced["role"] == "assistant"
    assert announced["content"] == streamed
    assert "tomatoes and basil" in streamed  # answered from the retrieved context


def test_the_reply_is_stored_as_the_assistant_with_an_idempotency_key(memory, cognition, log):
    make_replier(memory, cognition, log).reply(USER, user_message())

    [(arguments, key)] = memory.calls_to("store_input")
    response_id = events_of(log)[0].data["response_id"]
    assert arguments["user_id"] == USER
    assert arguments["input_data"]["role"] == "assistant"
    assert arguments["input_data"]["conversation_id"] == CONV
    assert arguments["input_data"]["metadata"] == {"response_id": response_id, "in_reply_to": "m-user-3"}
    assert key and response_id in key
    assert events_of(log)[-1].data["id"] == "m-4"  # what Memory stored is what clients are shown


def test_the_generator_gets_the_context_and_the_earlier_turns(memory, cognition, log):
    generator = RecordingGenerator(["Tomatoes ", "and basil."])

    make_replier(memory, cognition, log, generator).reply(USER, user_message())

    [prompt] = generator.prompts
    assert prompt.message == "What did I plant in the garden?"
    assert [item["id"] for item in prompt.context] == ["m-1"]  # not the message being answered
    assert [turn["sequence"] for turn in prompt.history] == [1, 2]
    [(arguments, _)] = cognition.calls_to("get_context")
    assert arguments["user_id"] == USER and arguments["query"] == "What did I plant in the garden?"


def test_cognition_down_gives_a_warning_before_the_deltas_and_still_a_reply(memory, cognition, log):
    cognition.failing.add("get_context")

    make_replier(memory, cognition, log).reply(USER, user_message())

    events = events_of(log)
    types = types_of(events)
    assert types[:2] == ["response.started", "warning"]
    assert events[1].data["code"] == "context_unavailable"
    assert events[1].data["message"]
    assert types.count("response.delta") >= 2
    assert types[-2:] == ["response.completed", "message"]
    assert "error" not in types


def test_history_unavailable_still_gives_a_reply(memory, cognition, log):
    memory.failing.add("list_messages")

    make_replier(memory, cognition, log).reply(USER, user_message())

    assert types_of(events_of(log))[-2:] == ["response.completed", "message"]


def test_generator_failing_midway_gives_an_error_and_no_completed_reply(memory, cognition, log):
    generator = RecordingGenerator(["Tomatoes ", "and ", "basil."], fail_after=2)

    make_replier(memory, cognition, log, generator).reply(USER, user_message())

    events = events_of(log)
    assert types_of(events) == ["response.started", "response.delta", "response.delta", "error"]
    error = events[-1].data
    assert error["code"] == "provider_error"
    assert error["message"]
    assert error["response_id"] == events[0].data["response_id"]
    assert memory.calls_to("store_input") == []


def test_memory_down_at_the_final_store_gives_an_unavailable_error(memory, cognition, log):
    memory.failing.add("store_input")

    make_replier(memory, cognition, log).reply(USER, user_message())

    types = types_of(events_of(log))
    assert types.count("response.delta") >= 2
    assert types[-1] == "error"
    assert events_of(log)[-1].data["code"] == "unavailable"
    assert "response.completed" not in types
    assert "message" not in types


def test_an_unexpected_generator_crash_is_an_internal_error_event(memory, cognition, log):
    class Broken:
        def stream(self, prompt: Prompt) -> Iterator[str]:
            yield "Half "
            raise RuntimeError("secret internals")

    make_replier(memory, cognition, log, Broken()).reply(USER, user_message())

    error = events_of(log)[-1]
    assert error.type == "error"
    assert error.data["code"] == "internal_error"
    assert "secret internals" not in error.data["message"]


def wait_for_replies_to_finish(log: InProcessEventLog, count: int, started_after: set[threading.Thread],
                               deadline: float = 5.0) -> None:
    """Until `count` replies have ended and no reply thread started by this test is still running."""
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        finished = [e for e in events_of(log) if e.type in ("response.completed", "error")]
        running = [t for t in threading.enumerate() if t.name == "reply" and t not in started_after]
        if len(finished) >= count and not running:
            return
        time.sleep(0.01)  # polling interval; the condition above is what the test waits for
    raise AssertionError(f"replies did not finish within {deadline} s")


def accept(replier: Replier, message: dict, key: str | None = None, replayed: bool = False) -> None:
    """What the input endpoint does: admit, store (here: the message is given), accept."""
    with replier.admit(USER, key) as ticket:
        replier.accept(USER, message, ticket, replayed=replayed)


def test_accept_announces_the_users_message_first_then_replies_in_the_background(memory, cognition, log):
    message = user_message()
    threads = set(threading.enumerate())

    accept(make_replier(memory, cognition, log), message)

    first = events_of(log)[0]
    assert (first.type, first.data) == ("message", message)
    wait_for_replies_to_finish(log, 1, threads)
    assert types_of(events_of(log))[-3:] == ["response.delta", "response.completed", "message"]


def test_accepting_the_same_message_twice_announces_and_replies_once(memory, cognition, log):
    replier = make_replier(memory, cognition, log)
    message = user_message()
    threads = set(threading.enumerate())

    accept(replier, message, key="u-1:retried")
    # A retried POST with the same key: Memory replays the same stored message.
    accept(replier, dict(message), key="u-1:retried", replayed=True)

    wait_for_replies_to_finish(log, 1, threads)
    types = types_of(events_of(log))
    assert [e.data["id"] for e in events_of(log) if e.type == "message" and e.data["role"] == "user"] == [
        "m-user-3"]
    assert types.count("response.started") == 1
    assert types.count("response.completed") == 1
    assert len(memory.calls_to("store_input")) == 1
    assert replier.pool.stats()["admitted"] == 0  # the retry's place was given back at once


def test_different_messages_each_get_their_reply(memory, cognition, log):
    replier = make_replier(memory, cognition, log)
    threads = set(threading.enumerate())

    accept(replier, user_message(3, "first question"))
    accept(replier, user_message(4, "second question"))

    wait_for_replies_to_finish(log, 2, threads)
    completed = [e.data["message"] for e in events_of(log) if e.type == "response.completed"]
    assert sorted(m["metadata"]["in_reply_to"] for m in completed) == ["m-user-3", "m-user-4"]
