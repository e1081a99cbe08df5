"""The Core's stream and event metrics: `cortex_streams_open` up while an output stream is open and back down
however it ends, `cortex_streams_limit`, events published by type, and streams the server ended by reason.
Values are read from this process's registry (no PROMETHEUS_MULTIPROC_DIR in tests) and compared as deltas."""

from __future__ import annotations

import gc

import pytest
from prometheus_client import REGISTRY

from common import sse
from core_app import streams
from core_app.app import create_app
from core_app.events import FanOut, InProcessEventLog, StoredEvent, StreamUnavailable
from core_app.replies import Replier
from core_app.streams import stream_capacity
from tests.core_app.accounts import sign_up
from tests.core_app.api_calls import new_conversation, post_message, wait_for_reply
from tests.core_app.embedded_config import core_config
from tests.core_app.metric_values import value
from tests.core_app.output_stream import assistant_message_for, listening
from tests.core_app.polling import eventually
from tests.core_app.test_api_stream import short_lived_token

OPEN = "cortex_streams_open"
CUT = "cortex_subscribers_cut_total"
PUBLISHED = "cortex_events_published_total"


def open_streams() -> float:
    # A stream another test left to the garbage collector would otherwise close in the middle of this one.
    gc.collect()
    return value(OPEN)


def small_system(tmp_path_factory, **settings: str):
    app = create_app(core_config(tmp_path_factory.mktemp("metrics-streams"), **settings))
    client = app.test_client()
    return client, sign_up(client, "Tess")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A system that re-checks each stream's access every 0.2 s."""
    return small_system(tmp_path_factory, STREAM_ACCESS_CHECK_SECONDS="0.2")


@pytest.fixture(scope="module")
def small_buffers(tmp_path_factory):
    """A system that buffers only 3 undelivered events per stream."""
    return small_system(tmp_path_factory, SUBSCRIBER_BUFFER="3")


# --- the limit ---------------------------------------------------------------------------------------------


def test_the_streams_limit_is_the_worker_connections_of_this_process(tmp_path):
    create_app(core_config(tmp_path, WORKER_CONNECTIONS="345"))

    assert value("cortex_streams_limit") == 345


def test_the_streams_limit_is_never_above_the_open_files_limit(monkeypatch):
    monkeypatch.setattr(streams.resource, "getrlimit", lambda which: (500, 4096))

    assert stream_capacity(12000) == 500
    assert stream_capacity(300) == 300


def test_an_unlimited_open_files_limit_leaves_the_worker_connections(monkeypatch):
    infinity = streams.resource.RLIM_INFINITY
    monkeypatch.setattr(streams.resource, "getrlimit", lambda which: (infinity, infinity))

    assert stream_capacity(12000) == 12000


# --- open streams ----------------------------------------------------------------------------------------


def test_an_open_stream_counts_until_its_client_closes_it(guarded):
    client, tess = guarded
    conversation = new_conversation(client, tess)
    before = open_streams()

    with listening(client, conversation["id"], headers=tess.headers) as one:
        one.event()
        assert value(OPEN) == before + 1
        with listening(client, conversation["id"], headers=tess.headers) as two:
            two.event()
            assert value(OPEN) == before + 2
        assert value(OPEN) == before + 1

    assert value(OPEN) == before


def test_a_refused_or_unread_stream_never_counts(guarded):
    client, tess = guarded
    conversation = new_conversation(client, tess)
    before = open_streams()

    refused = client.get(f"/v1/conversation/{conversation['id']}/messages/stream",
                         headers={**tess.headers, "Last-Event-ID": "not an id"}, buffered=False)
    refused.close()
    with client.application.test_request_context(f"/v1/conversation/{conversation['id']}/messages/stream",
                                                 headers=tess.headers):
        unread = client.application.full_dispatch_request()
        assert unread.status_code == 200
        unread.close()  # the client left before the first byte: the stream never started

    assert refused.status_code == 400
    assert value(OPEN) == before


def test_a_stream_whose_token_expires_is_counted_down_and_cut_for_token_expired(guarded):
    client, tess = guarded
    conversation = new_conversation(client, tess)
    before, cut = open_streams(), value(CUT, reason="token_expired")

    with listening(client, conversation["id"], query={"access_token": short_lived_token(tess, 1)}) as stream:
        stream.event()
        assert value(OPEN) == before + 1
        rest = stream.rest(timeout=5)
        # Ended by the server, before the client closes anything.
        assert value(OPEN) == before

    assert [e.data["code"] for e in rest] == ["token_expired"]
    assert value(CUT, reason="token_expired") == cut + 1


def test_a_stream_that_lost_its_conversation_is_cut_for_forbidden(guarded):
    client, tess = guarded
    conversation = new_conversation(client, tess)
    before, cut = open_streams(), value(CUT, reason="forbidden")

    with listening(client, conversation["id"], headers=tess.headers) as stream:
        stream.event()
        client.delete(f"/v1/conversation/{conversation['id']}", headers=tess.headers)
        rest = stream.rest(timeout=5)

    assert [e.data["code"] for e in rest] == ["forbidden"]
    assert value(CUT, reason="forbidden") == cut + 1
    assert value(OPEN) == before


def test_streams_ended_at_shutdown_are_counted_down_and_cut_for_shutdown(guarded, monkeypatch):
    client, tess = guarded
    conversation = new_conversation(client, tess)
    registry = sse._LiveRegistry()
    monkeypatch.setattr(sse, "LIVE", registry)  # a registry of its own: shutting it down ends no other test
    before, cut = open_streams(), value(CUT, reason="shutdown")

    with listening(client, conversation["id"], headers=tess.headers) as one, \
            listening(client, conversation["id"], headers=tess.headers) as two:
        one.event(), two.event()
        assert value(OPEN) == before + 2
        registry.end_all()
        assert one.rest() == [] and two.rest() == []

    assert value(CUT, reason="shutdown") == cut + 2
    assert value(OPEN) == before


def test_a_stream_cut_off_for_falling_behind_is_counted_once(small_buffers):
    client, tess = small_buffers
    conversation = new_conversation(client, tess)
    before, cut = open_streams(), value(CUT, reason="overflow")
    messages = value(PUBLISHED, type="message")

    with listening(client, conversation["id"], headers=tess.headers) as slow:
        slow.event()
        message = post_message(client, tess, conversation["id"], "Tell me everything about leeks, at length")
        # Many more events than the 3 the stream may hold are published while nobody reads it.
        wait_for_reply(client, tess, conversation["id"], message)
        held = slow.rest()

    assert len(held) == 3
    # Counted on the reply's thread when an event found the buffer full, so before the reply was stored.
    assert value(CUT, reason="overflow") == cut + 1
    assert value(OPEN) == before
    # The reply publishes its last events after storing it: let it finish, so no later test counts them.
    eventually(lambda: value(PUBLISHED, type="message") == messages + 2, what="the reply's `message` event")


def notice(position) -> StoredEvent:
    return StoredEvent.create(position, "error", {"code": "stream_unavailable"})


def test_a_lost_event_log_counts_the_streams_it_ends_and_only_those():
    log = InProcessEventLog(FanOut(heartbeat=60))
    ended_before = log.subscribe("c-1", None)
    ended_before.end()  # at shutdown, say: already over, not cut by the lost log
    open_ones = [log.subscribe("c-1", None), log.subscribe("c-2", None)]
    cut = value(CUT, reason="stream_unavailable")

    assert log.fanout.end_all(notice, reason="stream_unavailable") == 2

    assert value(CUT, reason="stream_unavailable") == cut + 2
    assert [[e.type for e in sub.wait(0)] for sub in open_ones] == [["error"], ["error"]]


# --- events ----------------------------------------------------------------------------------------------


def test_each_published_event_is_counted_by_its_type(guarded):
    client, tess = guarded
    conversation = new_conversation(client, tess)
    types = ["message", "response.started", "response.delta", "response.completed", "warning", "error"]
    before = {kind: value(PUBLISHED, type=kind) for kind in types}

    with listening(client, conversation["id"], headers=tess.headers) as stream:
        stream.event()
        message = post_message(client, tess, conversation["id"], "What should I plant next to beans?")
        seen = [e.event for e in stream.until(assistant_message_for(message))]

    assert seen.count("response.delta") >= 2
    expected = {kind: seen.count(kind) for kind in types}

    def counted() -> dict[str, float]:
        return {kind: value(PUBLISHED, type=kind) - before[kind] for kind in types}

    # The reply counts its last event after publishing it, on its own thread.
    eventually(lambda: counted() == expected, what=f"the published events to be counted as {expected}")


class LostLog(InProcessEventLog):
    """A shared log that cannot be reached: nothing is published."""

    def publish(self, conversation_id, event_type, data):
        raise StreamUnavailable()


def test_an_unknown_type_is_counted_as_other_and_a_lost_event_not_at_all():

    other, typing = value(PUBLISHED, type="other"), REGISTRY.get_sample_value(PUBLISHED, {"type": "typing"})
    message = value(PUBLISHED, type="message")

    Replier(None, None, InProcessEventLog(), None).publish("c-1", "typing", {})  # type: ignore[arg-type]
    Replier(None, None, LostLog(), None).publish("c-1", "message", {})  # type: ignore[arg-type]

    assert value(PUBLISHED, type="other") == other + 1
    assert REGISTRY.get_sample_value(PUBLISHED, {"type": "typing"}) is typing is None
    assert value(PUBLISHED, type="message") == message


def test_a_stream_that_fails_is_counted_down_too():
    log = InProcessEventLog(FanOut(heartbeat=60))
    sub = log.subscribe("c-failing", None)
    sub.wait = lambda timeout: (_ for _ in ()).throw(ConnectionError("the log went away"))  # type: ignore[method-assign]
    before = open_streams()
    stream = sse.live_stream(sub, heartbeat_seconds=60, first=[sse.Event({"n": 1})])

    next(stream)
    assert value(OPEN) == before + 1
    with pytest.raises(ConnectionError):
        next(stream)
    assert value(OPEN) == before


def test_a_bad_worker_connections_stops_the_app_with_one_line_naming_it(tmp_path, capsys):
    with pytest.raises(SystemExit):
        create_app(core_config(tmp_path, WORKER_CONNECTIONS="lots"))

    assert "WORKER_CONNECTIONS" in capsys.readouterr().err
