"""Request ids and traces: an id accepted from `X-Request-ID` (made up otherwise) and a W3C trace taken
from `traceparent` (begun otherwise) for every request served; echoed, logged and propagated.

The trace (common/tracing.py) is current from the first request hook until the request's teardown, in a
context variable, so work outside the request context still has it: a copy of the context
(`contextvars.copy_context().run`) carries it into background work.
"""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, Response, g, has_request_context, request

from common import headers, logs, tracing

HEADER = headers.REQUEST_ID
_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Where the request's WSGI environ holds its trace, for a copy of the request context pushed in another
# greenlet (its ids and route are there too, for gunicorn's access line: common/logs.py).
ENVIRON_TRACE = "cortex.trace"
UNMATCHED = "unmatched"


def current_trace() -> tracing.Trace | None:
    """The trace of the work running now: the request being served, or the one whose context this work
    runs in; in a copy of a request context pushed elsewhere (Flask's `copy_current_request_context`),
    that request's."""
    trace = tracing.current()
    if trace is None and has_request_context():
        trace = request.environ.get(ENVIRON_TRACE)
    return trace


def current_request_id() -> str | None:
    """The id of the request being served (or whose context this work runs in), so outgoing calls can
    carry it on."""
    trace = current_trace()
    return trace.request_id if trace is not None else None


def propagation_headers() -> dict[str, str]:
    """What an outgoing call carries on from the request being served, so its logs can be joined up: the
    request id, and the trace with this request's span as the callee's parent."""
    trace = current_trace()
    if trace is None:
        return {}
    carried = {HEADER: trace.request_id, tracing.TRACEPARENT: trace.traceparent}
    if trace.tracestate:
        carried[tracing.TRACESTATE] = trace.tracestate
    return carried


def route_pattern() -> str:
    """The serving route's pattern (`/v1/conversation/<id:conversation_id>`), never the path a client sent;
    `unmatched` when no route matches. What logs and metrics call the route."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def install_request_ids(app: Flask) -> None:
    """Give every request its id and trace before any other request hook runs, and restore the trace that
    was current before it (none, or the outer request's in the embedded mode) at its teardown."""

    def begin_trace() -> None:
        incoming = request.headers.get(HEADER, "")
        # An id we cannot log safely is replaced rather than rejected: it is a tracing aid, not input.
        request_id = incoming if _SAFE.fullmatch(incoming) else uuid.uuid4().hex
        trace = tracing.begin(request.headers.get(tracing.TRACEPARENT), request.headers.get(tracing.TRACESTATE),
                              request_id)
        g.trace_token = tracing.enter(trace)
        request.environ.update({ENVIRON_TRACE: trace, logs.ENVIRON_REQUEST_ID: request_id,
                                logs.ENVIRON_TRACE_ID: trace.trace_id, logs.ENVIRON_ROUTE: route_pattern()})

    # First of all `before_request` hooks: one that answers the request itself stops the hooks after it.
    app.before_request_funcs.setdefault(None, []).insert(0, begin_trace)

    @app.teardown_request
    def _end_trace(_exc: BaseException | None) -> None:
        # A copy of this request context pushed in another greenlet has an app context (and `g`) of its own,
        # so only the teardown of the request that entered the trace finds its token.
        token = g.pop("trace_token", None)
        if token is not None:
            tracing.leave(token)

    @app.after_request
    def _echo_id(response: Response) -> Response:
        response.headers[HEADER] = current_request_id() or uuid.uuid4().hex
        return response


class RequestIdFilter(logs.TraceIds):
    """Each log record's request id and trace id, from the request or the context the work runs in."""

    def __init__(self) -> None:
        super().__init__(current_trace)


def configure_logging(level: str, service: str, log_format: str = "text") -> None:
    """Log lines carry the service, the request id and the trace id, as text or JSON (`LOG_FORMAT`).
    Idempotent: the first app built in a process (the Core, in the embedded mode) names the service."""
    root = logging.getLogger()
    root.setLevel(level)
    if any(getattr(h, "_cortex", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logs.formatter(log_format, service))
    handler.addFilter(RequestIdFilter())
    handler._cortex = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if log_format == "json":
        logging.captureWarnings(True)  # a warning printed as it is would be the one line that is not JSON
