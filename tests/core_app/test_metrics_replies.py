"""The Core's reply metrics: time to first text and to the end by outcome, text pieces of a finished reply,
and the language model's failures by kind; through the whole system in-process (builtin, and openai against
a fake OpenAI-compatible server), then the Replier and the OpenAI generator alone for each way they fail."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from core_app.app import create_app
from core_app.events import InProcessEventLog
from core_app.generators import OpenAIGenerator, Prompt, ProviderError
from tests.core_app.accounts import Account, sign_up
from tests.core_app.api_calls import new_conversation, post_message
from tests.core_app.embedded_config import core_config
from tests.core_app.metric_values import value
from tests.core_app.output_stream import assistant_message_for, listening
from tests.core_app.polling import eventually
from tests.core_app.test_generators import (
    DONE,
    Provider,
    Reply,
    answer_401,
    answer_500,
    chunk,
    chunk_not_json,
    chunk_without_choices,
    collect,
    cut_after_two_chunks,
    in_band_error,
    stream_of,
)
from tests.core_app.test_replies import (
    CONTEXT,
    HISTORY,
    FakeMemory,
    FakeService,
    RecordingGenerator,
    make_replier,
    user_message,
)
from tests.system.support.fake_llm import FakeLLM

FIRST = "cortex_reply_first_token_seconds"
DURATION = "cortex_reply_duration_seconds"
TOKENS = "cortex_reply_tokens"
ERRORS = "cortex_provider_errors_total"


class Figures:
    """The reply metrics of one provider (and one outcome), read now, to compare with later."""

    def __init__(self, provider: str, outcome: str = "completed") -> None:
        self.provider, self.outcome = provider, outcome
        self.then = self.quiet()

    def quiet(self) -> dict[str, float]:
        """The figures once they hold still for a tenth of a second: a reply of an earlier test in this
        process (the suite runs modules one after another per worker) may still be recording its own."""
        last, deadline = self.read(), time.monotonic() + 3
        while time.monotonic() < deadline:
            time.sleep(0.1)  # pacing the reads, not synchronisation
            now = self.read()
            if now == last:
                break
            last = now
        return last

    def read(self) -> dict[str, float]:
        p, o = self.provider, self.outcome
        return {"first": value(f"{FIRST}_count", provider=p), "first_seconds": value(f"{FIRST}_sum", provider=p),
                "finished": value(f"{DURATION}_count", provider=p, outcome=o),
                "seconds": value(f"{DURATION}_sum", provider=p, outcome=o),
                "replies": value(f"{TOKENS}_count", provider=p), "tokens": value(f"{TOKENS}_sum", provider=p)}

    def moved(self) -> dict[str, float]:
        now = self.read()
        return {name: now[name] - self.then[name] for name in now}

    def settled(self, **expected: float) -> dict[str, float]:
        """The moves once those named in `expected` have reached their values. A reply on the pool's thread
        records its figures after publishing its last event, so a test that has seen that event waits."""
        def reached() -> dict[str, float] | None:
            moved = self.moved()
            return moved if all(moved[name] == count for name, count in expected.items()) else None

        return eventually(reached, what=f"the {self.provider} reply figures to move by {expected}")


def reply_events(client: FlaskClient, account: Account, content: str) -> list:
    """The events of one message's reply, as its conversation's stream shows them."""
    conversation = new_conversation(client, account)
    with listening(client, conversation["id"], headers=account.headers) as stream:
        stream.event()
        message = post_message(client, account, conversation["id"], content)
        return stream.until(lambda e: assistant_message_for(message)(e) or e.event == "error")


# --- the whole system ------------------------------------------------------------------------------------


def test_a_builtin_reply_records_its_first_token_its_duration_and_its_tokens(client, alice):
    figures = Figures("builtin")

    events = reply_events(client, alice, "Which herbs grow well in shade?")

    moved = figures.settled(first=1, finished=1, replies=1)
    deltas = [e for e in events if e.event == "response.delta"]
    assert len(deltas) >= 2
    assert moved["tokens"] == len(deltas)
    assert 0 < moved["first_seconds"] <= moved["seconds"]


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM(["Porto ", "is ", "lovely ", "in ", "spring."]) as fake:
        yield fake


@pytest.fixture(scope="module")
def openai_system(tmp_path_factory, llm) -> tuple[FlaskClient, Account]:
    app = create_app(core_config(tmp_path_factory.mktemp("metrics-openai"), LLM_PROVIDER="openai",
                                 LLM_BASE_URL=llm.base_url, LLM_API_KEY="sk-test", LLM_MODEL="test-model"))
    client = app.test_client()
    return client, sign_up(client, "Olga")


def test_an_openai_reply_is_recorded_under_the_openai_provider(openai_system):
    client, olga = openai_system
    figures, builtin = Figures("openai"), Figures("builtin")

    events = reply_events(client, olga, "Where should I go in spring?")

    assert events[-1].data["content"] == "Porto is lovely in spring."
    assert figures.settled(finished=1, replies=1) | {"first_seconds": 0, "seconds": 0} == {
        "first": 1, "first_seconds": 0, "finished": 1, "seconds": 0, "replies": 1, "tokens": 5}
    assert builtin.moved() == dict.fromkeys(builtin.then, 0)


def test_a_provider_that_breaks_off_is_counted_as_a_cut_and_a_failed_reply(openai_system, llm):
    client, olga = openai_system
    figures, cut = Figures("openai", "provider_failed"), value(ERRORS, provider="openai", kind="cut")
    completed = Figures("openai")
    llm.fail_after = 1
    try:
        events = reply_events(client, olga, "And in summer?")
    finally:
        llm.fail_after = None

    assert events[-1].event == "error" and events[-1].data["code"] == "provider_error"
    moved = figures.settled(finished=1)  # recorded last, after the error event and the provider's failure
    assert value(ERRORS, provider="openai", kind="cut") == cut + 1
    assert moved["first"] == 1  # one piece of text arrived before the cut
    assert moved["replies"] == 0  # a failed reply has no size
    assert completed.moved()["finished"] == 0


# --- the Replier alone -----------------------------------------------------------------------------------


@pytest.fixture
def memory() -> FakeMemory:
    return FakeMemory(HISTORY)


@pytest.fixture
def cognition() -> FakeService:
    return FakeService("cognition", {"get_context": CONTEXT})


def test_times_run_from_when_the_message_was_accepted(memory, cognition):
    figures = Figures("builtin")

    make_replier(memory, cognition, InProcessEventLog()).reply("u-1", user_message(),
                                                               accepted_at=time.monotonic() - 100)

    moved = figures.moved()
    assert moved["first"] == moved["finished"] == 1
    assert 100 <= moved["first_seconds"] <= moved["seconds"] < 200


@pytest.mark.parametrize("kind", ["timeout", "rate_limited", "model_error"])
def test_a_provider_failure_is_counted_with_its_kind_and_the_settings_provider(memory, cognition, kind):
    class Failing(RecordingGenerator):
        def stream(self, prompt: Prompt) -> Iterator[str]:
            yield "Half "
            raise ProviderError("the language model failed", kind=kind)

    replier = make_replier(memory, cognition, InProcessEventLog(), Failing([]))
    replier.provider = "openai"
    errors, figures = value(ERRORS, provider="openai", kind=kind), Figures("openai", "provider_failed")

    replier.reply("u-1", user_message())

    assert value(ERRORS, provider="openai", kind=kind) == errors + 1
    assert figures.moved()["finished"] == 1


@pytest.mark.parametrize(("failing", "broken", "outcome"), [
    ("store_input", False, "dependency_failed"),  # Memory cannot store the reply
    ("claim_reply", False, "dependency_failed"),  # nor say whether this process replies
    (None, True, "error"),  # a bug
])
def test_a_reply_that_fails_for_another_reason_is_no_provider_error(memory, cognition, failing, broken, outcome):
    class Broken(RecordingGenerator):
        def stream(self, prompt: Prompt) -> Iterator[str]:
            yield "Half "
            raise RuntimeError("a bug")

    if failing:
        memory.failing.add(failing)
    replier = make_replier(memory, cognition, InProcessEventLog(), Broken([]) if broken else None)
    figures, errors = Figures("builtin", outcome), REGISTRY.get_sample_value(ERRORS, {"provider": "builtin",
                                                                                   "kind": "other"})

    replier.reply("u-1", user_message())

    assert figures.moved()["finished"] == 1
    assert REGISTRY.get_sample_value(ERRORS, {"provider": "builtin", "kind": "other"}) == errors


def test_a_reply_another_process_claimed_records_nothing(memory, cognition):
    memory.claimed.add(user_message()["id"])
    figures = Figures("builtin")

    make_replier(memory, cognition, InProcessEventLog()).reply("u-1", user_message())

    assert figures.moved() == dict.fromkeys(figures.then, 0)
    assert memory.calls_to("store_input") == []


# --- the kind of each OpenAI failure ---------------------------------------------------------------------


def answer(status: int, body: dict | None) -> object:
    def script(reply: Reply) -> None:
        reply.start(status, "application/json")
        reply.write(json.dumps(body).encode() if body is not None else b"<html>bad gateway</html>")
        reply.finish()
    return script


def silent_for(seconds: float, after_first_chunk: bool) -> object:
    def script(reply: Reply) -> None:
        if after_first_chunk:
            reply.start()
            reply.write(chunk("Hel"))
        time.sleep(seconds)
        try:
            if not after_first_chunk:
                reply.start()
            reply.write(chunk("lo", finish="stop") + DONE)
            reply.finish()
        except OSError:
            pass  # the client gave up waiting, as it should
    return script


@pytest.fixture
def provider() -> Iterator[Provider]:
    provider = Provider()
    provider.thread.start()
    yield provider
    provider.server.shutdown()
    provider.server.server_close()


@pytest.mark.parametrize("framing", ["close-delimited", "chunked"])
@pytest.mark.parametrize(("script", "kind"), [
    (answer_500, "server_error"),
    (answer_401, "rejected"),
    (answer(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
     "rate_limited"),
    (answer(503, None), "unavailable"),  # a proxy in front of it said so
    (cut_after_two_chunks, "cut"),
    (stream_of(["Hel", "lo"], finish=False, done=False), "cut"),
    (chunk_not_json, "bad_response"),
    (chunk_without_choices, "bad_response"),
    (in_band_error, "model_error"),
    (silent_for(1.0, after_first_chunk=False), "timeout"),
    (silent_for(1.0, after_first_chunk=True), "timeout"),
], ids=["http-500", "http-401", "http-429", "proxy-503", "cut-mid-stream", "ends-unfinished", "chunk-not-json",
        "chunk-without-choices", "in-band-error", "silent-before-answering", "silent-mid-stream"])
def test_each_openai_failure_has_its_kind(provider, framing, script, kind):
    provider.framing = framing
    provider.script = script
    generator = OpenAIGenerator(provider.base_url, "sk-test", "test-model", timeout=0.3)

    _, error = collect(generator.stream(Prompt("hi")))

    assert isinstance(error, ProviderError)
    assert error.kind == kind
    assert error.code == "provider_error"


def test_a_provider_not_listening_is_unavailable():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    generator = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", "sk-test", "test-model", timeout=2)

    _, error = collect(generator.stream(Prompt("hi")))

    assert isinstance(error, ProviderError) and error.kind == "unavailable"
