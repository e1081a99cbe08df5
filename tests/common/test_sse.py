"""SSE wire format, finite resource framing and live relaying with heartbeats."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from common import sse
from common.errors import Forbidden, NotFound
from common.sse import HEADERS, Event, finite_stream, live_stream, sse_response


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        (Event({"a": 1}), b'data: {"a":1}\n\n'),
        (Event({"a": 1}, event="update", id=7), b'id: 7\nevent: update\ndata: {"a":1}\n\n'),
        (Event("x", id=1, retry=2000), b'retry: 2000\nid: 1\ndata: "x"\n\n'),
        (Event({"n": 2}, event="end", id="42", retry=1500),
         b'retry: 1500\nid: 42\nevent: end\ndata: {"n":2}\n\n'),
        (Event({"text": "a\nb\r\nc\rd"}), b'data: {"text":"a\\nb\\r\\nc\\rd"}\n\n'),
        (Event({"t": "h\u00e9llo \u2713 \U0001f600"}), 'data: {"t":"h\u00e9llo \u2713 \U0001f600"}\n\n'.encode()),
        (Event(None), b"data: null\n\n"),
        (Event([1, "two", {"three": 3.5}]), b'data: [1,"two",{"three":3.5}]\n\n'),
    ],
    ids=["data-only", "id-event-data", "retry-first", "all-fields", "newlines-in-data", "unicode", "null", "list"],
)
def test_event_encode_is_exact_wire_format(event, wire):
    assert event.encode() == wire


def test_event_with_newlines_in_data_is_a_single_data_line():
    encoded = Event({"text": "line1\nline2\n\nline4"}).encode()
    assert encoded.count(b"\n") == 2  # just the line end and the blank line that ends the event
    assert encoded.endswith(b"\n\n")


def test_sse_response_headers():
    response = sse_response(iter([b"data: 1\n\n"]))
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    for name, value in HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.is_streamed


def test_finite_stream_frames_items_with_ids_and_end():
    out = list(finite_stream([{"n": 1}, {"n": 2}, {"n": 3}]))
    assert out == [
        b'id: 1\ndata: {"n":1}\n\n',
        b'id: 2\ndata: {"n":2}\n\n',
        b'id: 3\ndata: {"n":3}\n\n',
        b'event: end\ndata: {"count":3}\n\n',
    ]


def test_finite_stream_of_nothing_still_ends():
    assert list(finite_stream([])) == [b'event: end\ndata: {"count":0}\n\n']


def _items_then(exc: BaseException) -> Iterator[dict]:
    yield {"n": 1}
    yield {"n": 2}
    raise exc


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (NotFound("conversation vanished"), "not_found", "conversation vanished"),
        (Forbidden("not yours", {"id": "c1"}), "forbidden", "not yours"),
    ],
)
def test_finite_stream_reports_service_error_in_band(exc, code, message):
    out = list(finite_stream(_items_then(exc)))
    assert out[:2] == [b'id: 1\ndata: {"n":1}\n\n', b'id: 2\ndata: {"n":2}\n\n']
    assert out[2] == Event(exc.to_body(), event="error").encode()
    assert out[2].startswith(b"event: error\ndata: ")
    assert f'"code":"{code}"'.encode() in out[2]
    assert f'"message":"{message}"'.encode() in out[2]
    assert len(out) == 3  # no end event after an error
    assert not any(b"event: end" in chunk for chunk in out)


def test_finite_stream_hides_unexpected_failures(caplog):
    caplog.set_level(logging.ERROR, logger="common.sse")
    out = list(finite_stream(_items_then(RuntimeError("password=hunter2 in /srv/secret.py"))))
    assert len(out) == 3
    last = out[-1]
    assert last.startswith(b"event: error\ndata: ")
    assert b'"code":"tool_execution_error"' in last
    assert b"hunter2" not in last
    assert b"Traceback" not in last
    assert b"RuntimeError" not in last
    # ...but the service log keeps the traceback for the operator.
    assert any(record.exc_info for record in caplog.records)


def test_finite_stream_error_before_first_item():
    def refuse() -> Iterator[dict]:
        raise Forbidden("no")
        yield {}  # pragma: no cover

    out = list(finite_stream(refuse()))
    assert out == [Event(Forbidden("no").to_body(), event="error").encode()]


class FakeSubscription:
    """Scripted `wait` results; records timeouts and how often it was closed."""

    def __init__(self, script: list[list[Event] | None]) -> None:
        self.script = list(script)
        self.timeouts: list[float] = []
        self.closed = 0
        self.ended = 0

    def wait(self, timeout: float) -> list[Event] | None:
        self.timeouts.append(timeout)
        if not self.script:
            return []
        return self.script.pop(0)

    def close(self) -> None:
        self.closed += 1

    def end(self) -> None:
        self.ended += 1
        self.script = [None]


@pytest.fixture
def registry(monkeypatch):
    """A fresh registry of live streams, so shutdown tests do not leak into other tests."""
    fresh = sse._LiveRegistry()
    monkeypatch.setattr(sse, "LIVE", fresh)
    return fresh


def test_live_stream_sends_heartbeat_when_idle(registry):
    sub = FakeSubscription([[], []])
    stream = live_stream(sub, heartbeat_seconds=15)
    assert next(stream) == b": ping\n\n"
    assert next(stream) == b": ping\n\n"
    assert sub.timeouts == [15, 15]
    stream.close()


def test_live_stream_relays_events_and_first(registry):
    first = [Event({"replay": 1}, id=1)]
    sub = FakeSubscription([[Event({"n": 2}, id=2), Event({"n": 3}, id=3)], [], None])
    out = list(live_stream(sub, heartbeat_seconds=5, first=first))
    assert out == [
        b'id: 1\ndata: {"replay":1}\n\n',
        b'id: 2\ndata: {"n":2}\n\nid: 3\ndata: {"n":3}\n\n',
        b": ping\n\n",
    ]


def test_live_stream_closes_subscription_once_when_client_goes_away(registry):
    sub = FakeSubscription([[Event({"n": 1})], [], []])
    stream = live_stream(sub, heartbeat_seconds=1)
    next(stream)
    assert len(registry) == 1
    assert sub.closed == 0
    stream.close()  # what the WSGI server does when the client disconnects (GeneratorExit)
    assert sub.closed == 1
    assert len(registry) == 0
    stream.close()
    assert sub.closed == 1


def test_live_stream_closes_subscription_once_when_it_ends(registry):
    sub = FakeSubscription([[], None])
    assert list(live_stream(sub, heartbeat_seconds=1)) == [b": ping\n\n"]
    assert sub.closed == 1
    assert len(registry) == 0


def test_live_stream_closes_subscription_when_closed_before_start(registry):
    sub = FakeSubscription([[]])
    stream = live_stream(sub, heartbeat_seconds=1, first=[Event({"n": 1})])
    assert next(stream) == b'data: {"n":1}\n\n'
    stream.close()
    assert sub.closed == 1


def test_live_stream_closes_subscription_when_wait_fails(registry):
    class Broken(FakeSubscription):
        def wait(self, timeout: float) -> list[Event] | None:
            raise ConnectionError("redis went away")

    sub = Broken([])
    with pytest.raises(ConnectionError):
        list(live_stream(sub, heartbeat_seconds=1))
    assert sub.closed == 1
    assert len(registry) == 0


def test_end_all_ends_every_open_stream(registry):
    subs = [FakeSubscription([[], [], []]) for _ in range(3)]
    streams = [live_stream(sub, heartbeat_seconds=1) for sub in subs]
    for stream in streams:
        assert next(stream) == b": ping\n\n"
    registry.end_all()
    assert [sub.ended for sub in subs] == [1, 1, 1]
    for stream, sub in zip(streams, subs, strict=True):
        assert list(stream) == []
        assert sub.closed == 1
    assert len(registry) == 0


def test_live_stream_ends_with_the_event_its_check_returns(registry):
    sub = FakeSubscription([[Event({"n": 1})], [], [Event({"n": 2})], []])
    verdicts = [None, None, Event({"code": "token_expired"}, event="error")]
    stream = live_stream(sub, heartbeat_seconds=1, check=lambda: verdicts.pop(0))

    out = list(stream)

    # The events that woke the stream together with the news are not sent; the client resumes before them.
    assert out == [b'data: {"n":1}\n\n', b": ping\n\n", b'event: error\ndata: {"code":"token_expired"}\n\n']
    assert sub.closed == 1
    assert len(registry) == 0
