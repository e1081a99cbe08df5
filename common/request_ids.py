"""Request ids: accepted from `X-Request-ID`, made up otherwise, echoed, logged and propagated."""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, Response, g, has_request_context, request

from common import headers

HEADER = headers.REQUEST_ID
_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str | None:
    """The id of the request being served, if any, so outgoing calls can carry it on."""
    if has_request_context():
        return getattr(g, "request_id", None)
    return None


def propagation_headers() -> dict[str, str]:
    """What an outgoing call carries on from the request being served, so its logs can be joined up."""
    request_id = current_request_id()
    return {HEADER: request_id} if request_id else {}


def install_request_ids(app: Flask) -> None:
    @app.before_request
    def _take_id() -> None:
        incoming = request.headers.get(HEADER, "")
        # An id we cannot log safely is replaced rather than rejected: it is a tracing aid, not input.
        g.request_id = incoming if _SAFE.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def _echo_id(response: Response) -> Response:
        response.headers[HEADER] = current_request_id() or uuid.uuid4().hex
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


def configure_logging(level: str, service: str) -> None:
    """Log lines carry the service and the request id; idempotent, so tests may build many apps."""
    root = logging.getLogger()
    root.setLevel(level)
    if any(getattr(h, "_cortex", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s %(levelname)s {service} [%(request_id)s] %(name)s: %(message)s"))
    handler.addFilter(RequestIdFilter())
    handler._cortex = True  # type: ignore[attr-defined]
    root.addHandler(handler)
