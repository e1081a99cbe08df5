"""`GET /health` (SPEC §3.4) and the background monitor that feeds dependencies' breakers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from flask import Blueprint, Response, jsonify

from common.client import ServiceClient
from common.errors import ServiceError

log = logging.getLogger(__name__)

VERSION = "0.1.0"


class DependencyMonitor:
    """Probes each dependency's `/health` every `interval` seconds. A failed probe opens that
    dependency's circuit at once, so users get a fast 503 instead of each waiting for a timeout;
    a good probe closes it again once the breaker's reset timeout has passed."""

    def __init__(self, clients: Mapping[str, ServiceClient], interval: float) -> None:
        self.clients = dict(clients)
        self.interval = interval
        self.up: dict[str, bool | None] = {name: None for name in self.clients}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def probe(self, name: str) -> bool:
        client = self.clients[name]
        try:
            client.health()
            ok = True
        except ServiceError as exc:
            log.debug("health probe of %s failed: %s", name, exc)
            ok = False
        if ok:
            client.breaker.recover_if_due()
        else:
            if self.up.get(name) is not False:
                log.warning("dependency %s is down; circuit opened", name)
            client.breaker.trip()
        self.up[name] = ok
        return ok

    def probe_all(self) -> None:
        for name in self.clients:
            self.probe(name)

    def start(self) -> None:
        """Start probing in the background (a greenlet under gevent's patched threading)."""
        if self._thread is None and self.clients and self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="health-monitor", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.probe_all()
            except Exception:
                log.exception("health monitor round failed")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()

    def report(self) -> dict[str, dict[str, str]]:
        report = {}
        for name, client in self.clients.items():
            up = self.up[name]
            if up is None:  # not probed yet: the circuit is the best evidence there is
                up = client.circuit == "closed"
            report[name] = {"status": "up" if up else "down", "circuit": client.circuit}
        return report


def health_blueprint(service: str, monitor: DependencyMonitor | None = None,
                     self_check: Callable[[], bool] | None = None) -> Blueprint:
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
