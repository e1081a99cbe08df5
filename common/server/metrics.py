"""`GET /metrics` (the Prometheus text format) and the count of every request a service answers.

`/metrics` is not public: it answers clients on this machine that came straight to the service's port, and
others only with `Authorization: Bearer $METRICS_TOKEN` when that is set."""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from common import metrics
from common.config import Env
from common.errors import Forbidden, Unauthorized
from common.logs import ENVIRON_ROUTE
from common.request_ids import UNMATCHED
from common.server.auth import bearer_token, check_strong, host_name
from common.server.http_errors import error_response

# Headers a proxy adds: a request that carries one came through a proxy, so its peer address being this
# machine says nothing about the client (a proxy on the same host forwards the whole internet).
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LIVE = "cortex.metrics.live"


@dataclass(frozen=True)
class MetricsSettings:
    """METRICS=false turns collection and `/metrics` off; METRICS_TOKEN lets other machines scrape."""

    enabled: bool = True
    token: str | None = None

    @classmethod
    def from_env(cls, env: Env) -> MetricsSettings:
        token = env.str("METRICS_TOKEN")
        return cls(enabled=env.bool("METRICS", True), token=check_strong("METRICS_TOKEN", token) if token else None)


def _is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    # A service bound to `::` sees an IPv4 client as ::ffff:a.b.c.d, which Python never calls loopback.
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _is_local_name(host: str) -> bool:
    """Whether a request was addressed to this machine by a local name: a web page that rebinds its own DNS
    name to 127.0.0.1 reaches the port from a browser on this machine, but its requests carry its name."""
    return host == "localhost" or _is_loopback(host)


def allow_scrape(token: str | None) -> None:
    """Raise unless this request may read the metrics."""
    given = bearer_token()
    if token and given is not None and hmac.compare_digest(given.encode(), token.encode()):
        return
    if (_is_loopback(request.remote_addr) and not any(name in request.headers for name in FORWARDING_HEADERS)
            and _is_local_name(host_name(request.headers.get("Host", "")))):
        return
    if token:
        raise Unauthorized("metrics need the metrics token (Authorization: Bearer $METRICS_TOKEN)")
    raise Forbidden("metrics are served only to this machine; set METRICS_TOKEN to scrape from elsewhere")


def _counting(wsgi_app: WSGIApplication, service: str) -> WSGIApplication:
    """`wsgi_app`, counting and timing each request it answers: around the whole app rather than as request
    hooks, so whatever answers (a hook, an error handler, the view) is counted once with its final status,
    at a fraction of two hooks' cost. The route is the pattern request_ids put in the environ; a stream's
    time ends when its headers go out."""

    def counted(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        status: list[str] = []

        def start(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(line)
            return start_response(line, headers, exc_info)

        answer = wsgi_app(environ, start)
        if status:
            method = environ.get("REQUEST_METHOD", "")
            metrics.request_answered(service, method if method in METHODS else "other",
                                     environ.get(ENVIRON_ROUTE, UNMATCHED), int(status[-1][:3]),
                                     time.perf_counter() - started)
        return answer

    return counted


def add_live_metrics(app: Flask, collect: metrics.Collect) -> None:
    """Have `/metrics` also report what `collect` reads at scrape time (a database's size)."""
    app.extensions.setdefault(LIVE, []).append(collect)


def adopt_live_metrics(app: Flask, other: Flask) -> None:
    """Have `app`'s `/metrics` also report `other`'s scrape-time figures (an app running inside `app`)."""
    for collect in other.extensions.get(LIVE, ()):
        add_live_metrics(app, collect)


def install_metrics(app: Flask, service: str, settings: MetricsSettings) -> None:
    """Count and time every request `app` answers, and serve `/metrics`; nothing at all when disabled."""
    metrics.enable(settings.enabled)
    if not settings.enabled:
        return
    app.wsgi_app = _counting(app.wsgi_app, service)  # type: ignore[method-assign, assignment]
    bp = Blueprint("metrics", __name__)

    @bp.get("/metrics")
    def scrape() -> Response:
        try:
            allow_scrape(settings.token)
        except Unauthorized as error:
            refused = error_response(error)
            refused.headers["WWW-Authenticate"] = "Bearer"  # says which credentials would do
            return refused
        return Response(metrics.exposition(current_app.extensions.get(LIVE, ())), content_type=CONTENT_TYPE_PLAIN_0_0_4)

    app.register_blueprint(bp)
