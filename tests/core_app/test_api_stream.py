"""The output stream (SPEC §7) read through the Flask test client: framing, event order, auth by query
token, resuming with Last-Event-ID, the replay window, fan-out and release of closed streams."""

from __future__ import annotations

import pytest

from core_app.app import create_app
from tests.core_app.conftest import (
    assert_error,
    assistant_message_for,
    core_config,
    eventually,
    listening,
    new_conversation,
    post_message,
    sign_up,
    stream_url,
    wait_for_reply,
)


def test_the_first_frame_sets_retry_and_says_connected(client, alice):
    conversation = new_conversation(client, alice)

    with listening(client, conversation["id"], headers=alice.headers) as stream:
        first = stream.frame()

    assert stream.first_chunk.startswith(b"retry: 3000\n")
    assert first.retry == 3000
    assert first.event == "connected"
    assert first.id is not None and first.id.isdigit()
    assert first.data == {"conversation_id": conversation["id"], "user_id": alice.id}


def test_one_message_gives_its_echo_then_the_reply_in_order(client, alice):
    conversation = new_conversation(client, alice)

    with listening(client, conversation["id"], headers=alice.headers) as stream:
        stream.event()
        message = post_message(client, alice, conversation["id"], "What should I plant in March?")
        events = stream.until(assistant_message_for(message))

    kinds = [event.event for event in events]
    deltas = [event for event in events if event.event == "response.delta"]
    assert kinds == ["message", "response.started", *["response.delta"] * len(deltas), "response.completed",
                     "message"]
    assert len(deltas) >= 2
    assert events[0].data == message
    started, completed, final = events[1], events[-2], events[-1]
    response_id = started.data["response_id"]
    assert started.data == {"response_id": response_id, "in_reply_to": message["id"]}
    assert {event.data["response_id"] for event in deltas} == {response_id}
    assert completed.data["response_id"] == response_id
    assert completed.data["message"] == final.data
    assert "".join(event.data["delta"] for event in deltas) == final.data["content"]
    assert (final.data["role"], final.data["sequence"]) == ("assistant", message["sequence"] + 1)
    ids = [int(event.id) for event in events]
    assert ids == sorted(set(ids))


def test_an_idle_stream_sends_heartbeats(client, alice):
    conversation = new_conversation(client, alice)

    with listening(client, conversation["id"], headers=alice.headers) as stream:
        stream.event()
        assert stream.heartbeat(timeout=2.0).comment == "ping"


def test_every_subscriber_gets_every_event(client, alice, bob):
    conversation = new_conversation(client, alice, participants=(bob,))

    with listening(client, conversation["id"], headers=alice.headers) as hers, \
            listening(client, conversation["id"], headers=bob.headers) as his:
        hers.event(), his.event()
        message = post_message(client, bob, conversation["id"], "Shall we grow squash?")
        seen_by_alice = hers.until(assistant_message_for(message))
        seen_by_bob = his.until(assistant_message_for(message))

    assert [(e.id, e.event, e.data) for e in seen_by_alice] == [(e.id, e.event, e.data) for e in seen_by_bob]


def test_a_closed_stream_releases_its_subscription(client, api_app, alice):
    conversation = new_conversation(client, alice)
    events = api_app.extensions["cortex"].events

    with listening(client, conversation["id"], headers=alice.headers) as stream:
        stream.event()
        assert events.subscriber_count(conversation["id"]) == 1

    eventually(lambda: events.subscriber_count(conversation["id"]) == 0, timeout=2.0, what="the unsubscribe")


# --- auth ---------------------------------------------------------------------------------------------


def test_the_stream_accepts_an_access_token_in_the_query(client, alice):
    conversation = new_conversation(client, alice)

    with listening(client, conversation["id"], query={"access_token": alice.token}) as stream:
        assert stream.event().data == {"conversation_id": conversation["id"], "user_id": alice.id}


@pytest.mark.parametrize("query", [{}, {"access_token": ""}, {"access_token": "not-a-jwt"}],
                         ids=["none", "empty", "garbage"])
def test_the_stream_needs_a_valid_token(client, alice, query):
    conversation = new_conversation(client, alice)

    response = client.get(stream_url(conversation["id"]), query_string=query, buffered=False)
    try:
        assert_error(response, 401, "unauthorized")
    finally:
        response.close()


@pytest.mark.parametrize("path", ["/v1/workspace", "/v1/conversation/{id}", "/v1/conversation/{id}/messages"])
def test_only_the_stream_accepts_a_query_token(client, alice, path):
    conversation = new_conversation(client, alice)

    response = client.get(path.format(id=conversation["id"]), query_string={"access_token": alice.token})

    assert_error(response, 401, "unauthorized")


# --- resuming -----------------------------------------------------------------------------------------


def resume_request(account, last_id: str, via: str) -> dict:
    if via == "header":
        return {"headers": {**account.headers, "Last-Event-ID": last_id}}
    return {"headers": account.headers, "query": {"last_event_id": last_id}}


@pytest.mark.parametrize("via", ["header", "query"])
@pytest.mark.parametrize("resume_at", ["connected", "user-message", "a-delta", "last-event"])
def test_reconnecting_resumes_after_the_last_event_id_without_gap_or_duplicate(client, alice, via, resume_at):
    conversation = new_conversation(client, alice)
    with listening(client, conversation["id"], headers=alice.headers) as first:
        seen = [first.event()]
        message = post_message(client, alice, conversation["id"], "Where did I put the seed potatoes?")
        seen += first.until(assistant_message_for(message))
    index = {"connected": 0, "user-message": 1, "a-delta": 3, "last-event": len(seen) - 1}[resume_at]
    assert resume_at != "a-delta" or seen[index].event == "response.delta"
    last_id, missed = seen[index].id, seen[index + 1:]

    with listening(client, conversation["id"], **resume_request(alice, last_id, via)) as second:
        hello = second.event()
        replayed = second.until(lambda e: e.id == missed[-1].id) if missed else []
        follow_up = post_message(client, alice, conversation["id"], "And the onions?")
        live = second.until(assistant_message_for(follow_up))

    assert (hello.event, hello.id) == ("connected", last_id)
    assert [(e.id, e.event, e.data) for e in replayed] == [(e.id, e.event, e.data) for e in missed]
    assert (live[0].event, live[0].data["id"]) == ("message", follow_up["id"])
    ids = [int(e.id) for e in [*replayed, *live]]
    assert ids == sorted(set(ids)) and min(ids) > int(last_id)


@pytest.mark.parametrize(("via", "last_id"), [
    ("header", "1"),
    ("query", "1"),
    ("header", "0"),
    ("header", "9" * 20),
], ids=["header-1", "query-1", "header-0", "header-from-the-future"])
def test_an_id_outside_the_window_gets_an_error_then_live_events(client, alice, via, last_id):
    conversation = new_conversation(client, alice)

    with listening(client, conversation["id"], **resume_request(alice, last_id, via)) as stream:
        hello = stream.event()
        notice = stream.event()
        message = post_message(client, alice, conversation["id"], "Start over, please")
        live = stream.until(assistant_message_for(message))

    assert hello.event == "connected"
    assert notice.event == "error"
    assert notice.id is not None
    assert notice.data["code"] == "replay_window_exceeded"
    assert notice.data["message"]
    assert (live[0].event, live[0].data["id"]) == ("message", message["id"])
    assert int(live[0].id) > int(notice.id)


NOT_AN_EVENT_ID = [
    ("header", "abc"),
    ("header", "-1"),
    ("header", "1.5"),
    ("header", "0x1F"),
    ("header", "1e3"),
    ("header", "12 34"),
    ("header", "9" * 21),
    ("query", "abc"),
    ("query", "-1"),
    ("query", "9" * 21),
    pytest.param("header", "\u00b2", id="header-superscript-two"),
    pytest.param("query", "\u00b2", id="query-superscript-two"),
]


@pytest.mark.parametrize(("via", "last_id"), NOT_AN_EVENT_ID)
def test_a_last_event_id_that_is_not_a_number_is_rejected(client, alice, via, last_id):
    conversation = new_conversation(client, alice)
    request = resume_request(alice, last_id, via)

    response = client.get(stream_url(conversation["id"]), headers=request["headers"],
                          query_string=request.get("query", {}), buffered=False)
    try:
        assert_error(response, 400, "invalid_request")
    finally:
        response.close()


# --- a narrow retention window and small subscriber buffers ---------------------------------------------


def small_system(tmp_path_factory, **settings: str):
    app = create_app(core_config(tmp_path_factory.mktemp("core-small"), **settings))
    client = app.test_client()
    return client, sign_up(client, "Tess")


@pytest.fixture(scope="module")
def narrow_window(tmp_path_factory):
    """A system that keeps only the last 5 events of each conversation."""
    return small_system(tmp_path_factory, EVENT_RETENTION="5")


@pytest.fixture(scope="module")
def small_buffers(tmp_path_factory):
    """A system that buffers only 3 undelivered events per subscriber."""
    return small_system(tmp_path_factory, SUBSCRIBER_BUFFER="3")


def test_resuming_works_up_to_the_edge_of_the_retained_window(narrow_window):
    client, tess = narrow_window
    conversation = new_conversation(client, tess)
    with listening(client, conversation["id"], headers=tess.headers) as first:
        first.event()
        message = post_message(client, tess, conversation["id"], "Which beans climb and which ones do not climb?")
        published = first.until(assistant_message_for(message))
    assert len(published) >= 7
    last_dropped, too_old = published[-6], published[-7]

    with listening(client, conversation["id"], headers={**tess.headers, "Last-Event-ID": last_dropped.id}) as edge:
        assert edge.event().event == "connected"
        replayed = edge.until(assistant_message_for(message))
    with listening(client, conversation["id"], headers={**tess.headers, "Last-Event-ID": too_old.id}) as late:
        late.event()
        notice = late.event()

    assert [e.id for e in replayed] == [e.id for e in published[-5:]]
    assert (notice.event, notice.data["code"]) == ("error", "replay_window_exceeded")


def test_a_subscriber_that_falls_behind_is_cut_off_and_resumes_without_a_gap(small_buffers):
    client, tess = small_buffers
    conversation = new_conversation(client, tess)
    with listening(client, conversation["id"], headers=tess.headers) as slow:
        slow.event()
        message = post_message(client, tess, conversation["id"], "Tell me everything about leeks, at length")
        wait_for_reply(client, tess, conversation["id"], message)  # published while nobody reads
        before_the_cut = slow.rest()

    assert len(before_the_cut) == 3
    with listening(client, conversation["id"],
                   headers={**tess.headers, "Last-Event-ID": before_the_cut[-1].id}) as resumed:
        resumed.event()
        after = resumed.until(assistant_message_for(message))

    events = [*before_the_cut, *after]
    ids = [int(e.id) for e in events]
    assert ids == sorted(set(ids))
    assert events[0].data == message
    assert [e.event for e in events[:2]] == ["message", "response.started"]
    assert [e.event for e in events[-2:]] == ["response.completed", "message"]
    assert "".join(e.data["delta"] for e in events if e.event == "response.delta") == events[-1].data["content"]
