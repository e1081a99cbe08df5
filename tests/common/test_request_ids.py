"""Every request served has a request id and a trace: taken from `X-Request-ID` and `traceparent` or made
up, current while it is served (in an app called in-process inside it, in a copy of its context run in
another greenlet), on its log lines, and carried on by every call it makes."""

from __future__ import annotations

import contextvars
import io
import json
import logging

import gevent
import pytest
import requests
from flask import copy_current_request_context, request
from gevent.event import Event

from common import logs, tracing
from common.client.inprocess import WSGIAdapter
from common.request_ids import current_request_id, current_trace, propagation_headers
from common.server import base_app

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


def seen() -> dict:
    trace = current_trace()
    assert trace is not None
    held = tracing.current()  # the context variable itself, not the request's copy in the environ
    return {"trace_id": trace.trace_id, "span_id": trace.span_id, "parent_id": trace.parent_id,
            "request_id": current_request_id(), "carried": propagation_headers(),
            "held": held.span_id if held is not None else None}


@pytest.fixture
def inner():
    """A service called in-process, as the Core calls Memory and Cognition in the embedded mode."""
    app = base_app(__name__, service="inner", max_body_bytes=1024, log_level="WARNING")
    app.add_url_rule("/seen", "seen", seen)
    return app


@pytest.fixture
def app(inner):
    app = base_app(__name__, service="outer", max_body_bytes=1024, log_level="WARNING")
    session = requests.Session()
    session.mount("http://inner/", WSGIAdapter(inner))

    @app.get("/seen/<name>")
    def seen_by_name(name: str) -> dict:
        return {**seen(), "environ": {key: request.environ.get(key)
                                      for key in ("cortex.trace_id", "cortex.request_id", "cortex.route")}}

    @app.get("/nested")
    def nested() -> dict:
        before = seen()
        inside = session.get("http://inner/seen", headers=propagation_headers()).json()
        return {"before": before, "inside": inside, "after": seen()}

    @app.get("/copied")
    def copied() -> dict:
        # Cognition's `concurrently`: a copy of the request context pushed in a greenlet of its own.
        return gevent.spawn(copy_current_request_context(seen)).get(timeout=5)

    return app


def test_a_request_with_a_traceparent_joins_its_trace_as_a_span_of_its_own_and_passes_it_on(app):
    answer = app.test_client().get("/seen/x", headers={"traceparent": TRACEPARENT, "X-Request-ID": "req-7"})

    body = answer.get_json()
    assert (body["trace_id"], body["parent_id"], body["request_id"]) == (TRACE, PARENT, "req-7")
    assert body["span_id"] != PARENT
    assert body["carried"] == {"X-Request-ID": "req-7", "traceparent": f"00-{TRACE}-{body['span_id']}-01"}
    assert answer.headers["X-Request-ID"] == "req-7"
    # For gunicorn's access line: the route's pattern, never the path sent.
    assert body["environ"] == {"cortex.trace_id": TRACE, "cortex.request_id": "req-7", "cortex.route": "/seen/<name>"}
    assert tracing.current() is None  # the teardown left no trace behind


@pytest.mark.parametrize("headers", [{}, {"traceparent": f"00-{'0' * 32}-{PARENT}-01"}, {"traceparent": "junk"},
                                     {"traceparent": TRACEPARENT.upper()}],
                         ids=["absent", "zero-trace-id", "junk", "upper-case"])
def test_a_request_without_a_valid_traceparent_begins_a_new_trace(app, headers):
    body = app.test_client().get("/seen/x", headers=headers).get_json()
    assert body["trace_id"] != TRACE and body["parent_id"] is None
    assert body["carried"]["traceparent"] == f"00-{body['trace_id']}-{body['span_id']}-00"
    assert body["carried"]["X-Request-ID"] == body["request_id"]


def test_the_tracestate_of_a_continued_trace_is_passed_on(app):
    body = app.test_client().get("/seen/x", headers={"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"}
                                 ).get_json()
    assert body["carried"]["tracestate"] == "congo=t61rcWkgMzE"


def test_an_app_called_in_process_continues_the_trace_and_gives_the_outer_request_its_trace_back(app):
    body = app.test_client().get("/nested", headers={"traceparent": TRACEPARENT, "X-Request-ID": "req-7"}).get_json()
    before, inside, after = body["before"], body["inside"], body["after"]
    assert inside["trace_id"] == TRACE and inside["request_id"] == "req-7"
    assert inside["parent_id"] == before["span_id"] and inside["span_id"] != before["span_id"]
    assert after == before and after["held"] == before["span_id"]


def test_a_copy_of_the_request_context_in_another_greenlet_has_the_requests_trace(app):
    answer = app.test_client().get("/copied", headers={"traceparent": TRACEPARENT, "X-Request-ID": "req-7"})
    body = answer.get_json()
    assert (body["trace_id"], body["request_id"]) == (TRACE, "req-7")
    assert body["carried"]["traceparent"].startswith(f"00-{TRACE}-")
    assert body["held"] is None  # found through the request's environ: a new greenlet's context is empty


@pytest.fixture
def captured():
    """The root logger's records as the service would write them in JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("test"))
    handler.addFilter(logs.TraceIds(current_trace))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(level)


def test_log_lines_carry_the_request_id_and_trace_id_also_from_background_work(app, captured):
    log = logging.getLogger("tests.background")
    release = Event()
    started: list[gevent.Greenlet] = []

    @app.get("/later")
    def later() -> dict:
        def work() -> None:
            release.wait(5)  # runs on after the request has ended
            log.info("background %s", "done")

        log.info("in the request")
        started.append(gevent.spawn(contextvars.copy_context().run, work))
        return {}

    app.test_client().get("/later", headers={"traceparent": TRACEPARENT, "X-Request-ID": "req-7"})
    log.info("outside")
    release.set()
    started[0].join(5)

    lines = {line["message"]: line for line in captured() if line["logger"] == "tests.background"}
    assert (lines["in the request"]["trace_id"], lines["in the request"]["request_id"]) == (TRACE, "req-7")
    assert (lines["background done"]["trace_id"], lines["background done"]["request_id"]) == (TRACE, "req-7")
    assert (lines["outside"]["trace_id"], lines["outside"]["request_id"]) == (None, None)


def test_an_unexpected_error_is_logged_with_its_trace_and_its_traceback_as_a_field(app, captured):
    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("kaput")

    assert app.test_client().get("/boom", headers={"traceparent": TRACEPARENT}).status_code == 500
    errors = [line for line in captured() if line["level"] == "ERROR"]
    assert errors and errors[0]["trace_id"] == TRACE
    assert "RuntimeError: kaput" in errors[0]["exception"] and "Traceback" in errors[0]["exception"]
