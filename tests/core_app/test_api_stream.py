"""The output stream (SPEC §7) read through the Flask test client: framing, event order, auth by query
token and by stream ticket, resuming with Last-Event-ID, the replay window, fan-out, release of closed
streams, streams per user, and the end of a stream whose token expired or whose reader lost access."""

from __future__ import annotations

import time

import pytest

from core_app.app import create_app
from core_app.events import EventId
from core_app.tokens import TokenIssuer
from tests.core_app.accounts import Account, sign_up
from tests.core_app.api_calls import assert_error, new_conversation, post_message, wait_for_reply
from tests.core_app.embedded_config import JWT_SECRET, core_config
from tests.core_app.output_stream import assistant_message_for, listening, stream_url
from tests.core_app.polling import eventually


def test_the_first_frame_sets_retry_and_says_connected(client, alice):
    conversation = new_conversation(client, alice)

    with listening(client, conversation["id"], headers=alice.headers) as stream:
        first = stream.frame()

    assert stream.first_chunk.startswith(b"retry: 3000\n")
    assert first.retry == 3000
    assert first.event == "connected"
    assert first.id is not None and EventId.parse(first.id).sequence == 0
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
    assert_consecutive(events)


def sequences(events) -> list[int]:
    """The conversation-local sequence numbers of the events' ids (the client treats ids as opaque)."""
    return [EventId.parse(event.id).sequence for event in events]


def assert_consecutive(events, after: int | None = None) -> None:
    numbers = sequences(events)
    start = numbers[0] if after is None else after + 1
    assert numbers == list(range(start, start + len(numbers))), numbers


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
    assert_consecutive([*replayed, *live], after=EventId.parse(last_id).sequence)


@pytest.mark.parametrize(("via", "last_id"), [
    ("header", "1"),
    ("query", "1"),
    ("header", "0"),
    ("header", "9" * 20),
    ("header", "0123456789ab-1"),
    ("query", "0123456789ab-99999"),
    ("header", "1700000000000-0"),
    ("query", "0-0"),
], ids=["header-1", "query-1", "header-0", "header-legacy-large", "header-another-log", "query-another-log",
        "header-redis-stream-id", "query-redis-stream-start"])
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
    assert sequences(live)[0] > EventId.parse(notice.id).sequence


NOT_AN_EVENT_ID = [
    ("header", "abc"),
    ("header", "-1"),
    ("header", "1.5"),
    ("header", "0x1F"),
    ("header", "1e3"),
    ("header", "12 34"),
    ("header", "9" * 21),
    ("header", "0123456789ab-"),
    ("header", "0123456789ab-1-2"),
    ("header", "01700000000000-0"),
    ("header", "1700000000000-0-0"),
    ("header", "18446744073709551616-0"),
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
    assert_consecutive(events)
    assert events[0].data == message
    assert [e.event for e in events[:2]] == ["message", "response.started"]
    assert [e.event for e in events[-2:]] == ["response.completed", "message"]
    assert "".join(e.data["delta"] for e in events if e.event == "response.delta") == events[-1].data["content"]


# --- ids reveal nothing of other conversations -----------------------------------------------------------


def test_a_readers_event_ids_do_not_move_when_another_user_is_active(client, alice, bob):
    hers, his = new_conversation(client, alice), new_conversation(client, bob)
    with listening(client, hers["id"], headers=alice.headers) as stream:
        connected = stream.event()
        first = post_message(client, alice, hers["id"], "How deep do I sow carrots?")
        seen = stream.until(assistant_message_for(first))
        for n in range(3):  # someone else's conversation, busy in between
            wait_for_reply(client, bob, his["id"], post_message(client, bob, his["id"], f"Note {n} on peas"))
        second = post_message(client, alice, hers["id"], "And parsnips?")
        seen += stream.until(assistant_message_for(second))
    with listening(client, hers["id"], headers=alice.headers) as again:
        reconnected = again.event()

    assert_consecutive(seen, after=EventId.parse(connected.id).sequence)
    assert reconnected.id == seen[-1].id


# --- streams per user, tickets, expiry and lost access ------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A system with 2 streams per user that re-checks each stream's access every 0.2 s."""
    return small_system(tmp_path_factory, STREAMS_PER_USER="2", STREAM_ACCESS_CHECK_SECONDS="0.2")


def test_a_user_gets_429_beyond_their_open_streams_and_a_slot_back_when_one_closes(guarded):
    client, tess = guarded
    conversation = new_conversation(client, tess)
    url = stream_url(conversation["id"])
    with listening(client, conversation["id"], headers=tess.headers) as one:
        one.event()
        with listening(client, conversation["id"], headers=tess.headers) as two:
            two.event()
            refused = client.get(url, headers=tess.headers, buffered=False)
            try:
                error = assert_error(refused, 429, "too_many_requests")
                assert int(refused.headers["Retry-After"]) >= 1
                assert error["details"]["limit"] == 2
            finally:
                refused.close()
            other = sign_up(client, "Otto")  # the limit is per user
            with listening(client, new_conversation(client, other)["id"], headers=other.headers) as theirs:
                theirs.event()
        with listening(client, conversation["id"], headers=tess.headers) as three:
            assert three.event().event == "connected"


def test_the_stream_slot_is_released_when_the_stream_is_refused_or_never_read(guarded):
    client, tess = guarded
    conversation = new_conversation(client, tess)
    for _ in range(3):
        response = client.get(stream_url(conversation["id"]), headers={**tess.headers, "Last-Event-ID": "x"},
                              buffered=False)
        assert_error(response, 400, "invalid_request")
        response.close()
        unread = client.get(stream_url(conversation["id"]), headers=tess.headers, buffered=False)
        assert unread.status_code == 200
        unread.close()
    with listening(client, conversation["id"], headers=tess.headers) as stream:
        assert stream.event().event == "connected"


def test_a_stream_whose_body_is_never_iterated_leaves_no_subscription(guarded):
    # The server closes the response without reading a byte of it (the client left at once): the stream
    # generator never started, so its own `finally` cannot release anything.
    client, tess = guarded
    app, conversation = client.application, new_conversation(client, tess)
    with app.test_request_context(stream_url(conversation["id"]), headers=tess.headers):
        response = app.full_dispatch_request()
        assert response.status_code == 200
        assert app.extensions["cortex"].events.subscriber_count(conversation["id"]) == 1
        response.close()
    assert app.extensions["cortex"].events.subscriber_count(conversation["id"]) == 0
    assert app.extensions["cortex"].stream_slots.held(tess.id) == 0


def short_lived_token(account: Account, seconds: int) -> str:
    return TokenIssuer(JWT_SECRET, seconds).issue({"id": account.id, "email": account.email, "name": account.name})


def test_a_stream_ends_with_an_error_event_when_its_token_expires(guarded):
    client, tess = guarded
    conversation = new_conversation(client, tess)
    token = short_lived_token(tess, 1)

    with listening(client, conversation["id"], query={"access_token": token}) as stream:
        opened = time.time()
        stream.event()
        rest = stream.rest(timeout=5)

    assert [e.event for e in rest] == ["error"], rest
    assert rest[0].data["code"] == "token_expired"
    assert time.time() - opened < 4
    refused = client.get(stream_url(conversation["id"]), query_string={"access_token": token}, buffered=False)
    assert_error(refused, 401, "unauthorized")
    refused.close()


def test_a_stream_ends_with_an_error_event_when_its_conversation_is_deleted(guarded):
    client, tess = guarded
    conversation = new_conversation(client, tess)

    with listening(client, conversation["id"], headers=tess.headers) as stream:
        stream.event()
        stream.heartbeat()
        deleted = client.delete(f"/v1/conversation/{conversation['id']}", headers=tess.headers)
        assert deleted.status_code in (200, 204), deleted.get_data()
        rest = stream.rest(timeout=5)

    assert [(e.event, e.data["code"]) for e in rest] == [("error", "forbidden")], rest


def new_ticket(client, account: Account, conversation_id: str) -> dict:
    response = client.post(f"/v1/conversation/{conversation_id}/stream-ticket", headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_stream_ticket_opens_its_conversations_stream(client, alice):
    conversation = new_conversation(client, alice)
    issued = new_ticket(client, alice, conversation["id"])

    with listening(client, conversation["id"], query={"ticket": issued["ticket"]}) as stream:
        hello = stream.event()
        message = post_message(client, alice, conversation["id"], "When do I plant garlic?")
        stream.until(assistant_message_for(message))

    assert 0 < issued["expires_in"] <= 60
    assert hello.data == {"conversation_id": conversation["id"], "user_id": alice.id}


def test_a_stream_ticket_opens_nothing_else(client, alice, bob):
    mine, other = new_conversation(client, alice), new_conversation(client, alice)
    ticket = new_ticket(client, alice, mine["id"])["ticket"]
    as_bearer = {"Authorization": f"Bearer {ticket}"}
    attempts = {
        "another-conversations-stream": client.get(stream_url(other["id"]), query_string={"ticket": ticket},
                                                   buffered=False),
        "as-access-token-in-query": client.get(stream_url(mine["id"]), query_string={"access_token": ticket},
                                               buffered=False),
        "as-bearer-on-the-stream": client.get(stream_url(mine["id"]), headers=as_bearer, buffered=False),
        "as-bearer-on-the-api": client.get("/v1/workspace", headers=as_bearer),
        "as-bearer-for-a-new-ticket": client.post(f"/v1/conversation/{mine['id']}/stream-ticket", headers=as_bearer),
        "an-access-token-as-ticket": client.get(stream_url(mine["id"]), query_string={"ticket": alice.token},
                                                buffered=False),
    }
    for name, response in attempts.items():
        try:
            assert response.status_code == 401, name
            assert_error(response, 401, "unauthorized")
        finally:
            response.close()


def test_an_expired_stream_ticket_is_refused(client, api_app, alice):
    conversation = new_conversation(client, alice)
    tokens = api_app.extensions["cortex"].tokens
    user = tokens.verify(alice.token)
    stale, _ = tokens.issue_ticket(user, conversation["id"], now=time.time() - 120)

    response = client.get(stream_url(conversation["id"]), query_string={"ticket": stale}, buffered=False)
    try:
        error = assert_error(response, 401, "unauthorized")
    finally:
        response.close()
    assert "expired" in error["message"]


def test_no_ticket_for_a_conversation_the_user_cannot_read(client, alice, bob):
    hers = new_conversation(client, alice)

    assert_error(client.post(f"/v1/conversation/{hers['id']}/stream-ticket", headers=bob.headers), 404, "not_found")
    assert_error(client.post(f"/v1/conversation/{hers['id']}/stream-ticket"), 401, "unauthorized")
