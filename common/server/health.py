"""`GET /health` (SPEC §3.4): the service's own state and what its dependency monitor reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify

from common import VERSION

if TYPE_CHECKING:  # the server half does not import the client half; it only reads a monitor's report
    from common.client.monitor import DependencyMonitor



def health_blueprint(service: str, monitor: DependencyMonitor | None = None,
                     self_check: Callable[[], bool] | None = None) -> Blueprint:
    """`GET /health`: unhealthy (503) when `self_check` fails, degraded while a dependency is down or its
    circuit open, healthy otherwise; always naming the service and its version."""
    bp = Blueprint("health", __name__)

    @bp.get("/health")
    def health() -> tuple[Response, int]:
        dependencies = monitor.report() if monitor else {}
        if self_check is not None and not self_check():
            status, code = "unhealthy", 503
        # While a circuit is still open, calls through it fail: not healthy yet, even if the probe is good.
        elif all(dep["status"] == "up" and dep["circuit"] == "closed" for dep in dependencies.values()):
            status, code = "healthy", 200
        else:
            status, code = "degraded", 200
        return jsonify({"status": status, "service": service, "version": VERSION,
                        "dependencies": dependencies}), code

    return bp
