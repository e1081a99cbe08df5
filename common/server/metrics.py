"""`GET /metrics` (the Prometheus text format) and the count of every request a service answers.

`/metrics` is not public: it answers clients on this machine that came straight to the service's port, and
others only with `Authorization: Bearer $METRICS_TOKEN` when that is set."""

from __future__ import annotations

import hmac
import ipaddress
import time
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from common import metrics
from common.config import Env
from common.errors import Forbidden, Unauthorized
from common.request_ids import route_pattern
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


def add_live_metrics(app: Flask, collect: metrics.Collect) -> None:
    """Have `/metrics` also report what `collect` reads at scrape time (a database's size)."""
    app.extensions.setdefault(LIVE, []).append(collect)


def adopt_live_metrics(app: Flask, other: Flask) -> None:
    """Have `app`'s `/metrics` also report `other`'s scrape-time figures (an app running inside `app`)."""
    for collect in other.extensions.get(LIVE, ()):
        add_live_metrics(app, collect)


def install_metrics(app: Flask, service: str, settings: MetricsSettings) -> None:
    """Count and time every request `app` answers, and serve `/metrics`; nothing at all when disabled.
    Call it before any other request hook, so a request another hook answers is timed too."""
    metrics.enable(settings.enabled)
    if not settings.enabled:
        return

    @app.before_request
    def _start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None:
            method = request.method if request.method in METHODS else "other"
            metrics.request_answered(service, method, route_pattern(), response.status_code,
                                     time.perf_counter() - started)
        return response

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
