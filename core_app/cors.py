"""Cross-origin access to the Core's API and output streams for web pages on the origins of
CORS_ALLOWED_ORIGINS (none by default: then no answer carries a CORS header, as before there was any)."""

from __future__ import annotations

from flask import Flask, Response, current_app, request

from common.headers import IDEMPOTENCY_KEY, REQUEST_ID
from common.server.cors import allow_cross_origin, exact_origin, is_preflight

API_PREFIX = "/v1/"
METHODS = ("GET", "POST", "PUT", "DELETE")
# JSON bodies, the bearer token, the input endpoint's key, a stream's resume position, a caller's own id.
REQUEST_HEADERS = ("Content-Type", "Authorization", IDEMPOTENCY_KEY, "Last-Event-ID", REQUEST_ID)
# What a page may read besides the CORS-safelisted headers: the id to quote in a report, and how long to
# wait after a 429 or 503.
EXPOSED_HEADERS = (REQUEST_ID, "Retry-After")


def install_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """CORS for everything under /v1/ (the stream and its ticket included) from exactly `origins`.

    Call it before the rate limits are installed: a preflight is answered by the hook added here, before
    the sign-in limits count it and before any blueprint asks it for a token it never carries."""
    if not origins:
        return
    allow_cross_origin(app, API_PREFIX + ".*", [exact_origin(origin) for origin in origins], methods=METHODS,
                       request_headers=REQUEST_HEADERS, exposed_headers=EXPOSED_HEADERS)

    @app.before_request
    def _answer_preflight() -> Response | None:
        if is_preflight() and request.path.startswith(API_PREFIX):
            return current_app.make_default_options_response()
        return None
