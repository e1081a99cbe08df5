"""The Flask app every service starts from: body limit, metrics, request ids and traces, logging, one error
shape."""

from __future__ import annotations

from flask import Flask, Response

from common.request_ids import configure_logging, install_request_ids
from common.server.http_errors import register_error_handlers
from common.server.metrics import MetricsSettings, install_metrics


def base_app(import_name: str, *, service: str, max_body_bytes: int, log_level: str, log_format: str = "text",
             metrics: MetricsSettings | None = None) -> Flask:
    app = Flask(import_name)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    # A `//` in a path would otherwise be a 308 redirect to the merged path, not an answer in our shape.
    app.url_map.merge_slashes = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    configure_logging(log_level, service, log_format)
    install_metrics(app, service, metrics or MetricsSettings())  # first: it times what later hooks answer
    install_request_ids(app)
    register_error_handlers(app)
    app.after_request(private_headers)
    return app


def private_headers(response: Response) -> Response:
    """Every answer is private to its caller (or, like /health, not worth keeping): no cache may store it,
    and a browser must not guess a type other than the declared one (a JSON error echoing input is not
    HTML). Set on every response, streams included, so no route can forget it; only a route that sets its
    own Cache-Control on purpose keeps it (the Core's web page, core_app/views/web.py)."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
