"""The background monitor that probes each dependency's `GET /health` and feeds its breaker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from common import metrics
from common.client.service import ServiceClient
from common.errors import ServiceError

log = logging.getLogger(__name__)


class DependencyMonitor:
    """Probes each dependency's `/health` every `interval` seconds. A failed probe opens that
    dependency's circuit at once, so users get a fast 503 instead of each waiting for a timeout;
    a good probe closes it again once the breaker's reset timeout has passed.

    A dependency is `up`, `down` (unreachable, too slow, or answering with an error), `tls_error` (no
    TLS connection with a certificate this client trusts) or `wrong_service` (it answers, but its
    `/health` names another service: a URL pointing at the wrong port)."""

    def __init__(self, clients: Mapping[str, ServiceClient], interval: float) -> None:
        self.clients = dict(clients)
        self.interval = interval
        self.status: dict[str, str | None] = {name: None for name in self.clients}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, name: str) -> tuple[str, str | None, str | None]:
        """Probe one dependency once: its status, what is wrong in words a user may see, and the
        transport's own account of it for the log."""
        try:
            report = self.clients[name].health()
        except ServiceError as exc:
            cause = exc.__cause__ or exc.__context__
            status = "tls_error" if exc.details.get("reason") == "tls_error" else "down"
            return status, exc.message, str(cause)[:300] if cause is not None else None
        answered = report.get("service") if isinstance(report, dict) else None
        if answered != name:
            what = f"the {answered[:40]!r} service" if isinstance(answered, str) else "something that names no service"
            return "wrong_service", f"the service at {name}'s URL is {what}", None
        return "up", None, None

    def probe(self, name: str) -> bool:
        client = self.clients[name]
        status, problem, cause = self.check(name)
        metrics.dependency_probed(name, status == "up")
        if status == "up":
            client.breaker.recover_if_due()
        else:
            client.breaker.trip(problem or status)
        previous, self.status[name] = self.status.get(name), status
        # Once per change, not every probe: a dependency down for an hour is one line, not 720.
        if status != previous and status != "up":
            log.warning("dependency %s at %s/health is %s: %s%s; circuit opened", name, client.base_url, status,
                        problem, f" ({cause})" if cause else "")
        elif status != previous and previous is not None:
            log.info("dependency %s at %s/health is up again", name, client.base_url)
        else:
            log.debug("health probe of %s: %s", name, status)
        return status == "up"

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
            status = self.status[name]
            if status is None:  # not probed yet: the circuit is the best evidence there is
                status = "up" if client.circuit == "closed" else "down"
            report[name] = {"status": status, "circuit": client.circuit}
        return report
