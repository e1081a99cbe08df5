"""The client every service uses to call another: tools, resources, discovery and health, with
pooling, retries and circuit breaking (SPEC §3.5), each call counted and timed in the metrics."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pybreaker

from common import metrics
from common.client.breaker import ConcurrentBreaker
from common.client.transport import ClientSettings, EventStream, Transport
from common.errors import ServiceBusy, ServiceError, ServiceTimeout, ServiceUnavailable, ToolError, from_body
from common.headers import IDEMPOTENCY_KEY as IDEMPOTENCY_HEADER
from common.request_ids import propagation_headers

log = logging.getLogger(__name__)

# A metrics label must come from a small set: tool names and resource kinds are ours, and anything else
# (an id in a path, a name from elsewhere) is counted as `other` rather than growing a series per value.
LABEL = re.compile(r"[a-z_]{1,64}")


def call_label(name: str) -> str:
    """`name` as the `tool` label of a call's metrics, or `other` when it is not a plain lower-case name."""
    return name if LABEL.fullmatch(name) else "other"


def call_outcome(exc: BaseException) -> str:
    """The outcome label of a call that raised `exc` (a refusal by the breaker is `circuit_open`, set apart).
    `busy` is a full pool to the service, ours or its own: back-pressure, not a failure. `cancelled` is a call
    cut off by its caller (greenlet killed, `gevent.Timeout`): it says nothing about the service."""
    if not isinstance(exc, Exception):
        return "cancelled"
    if isinstance(exc, ServiceBusy):
        return "busy"
    if isinstance(exc, ServiceTimeout):
        return "timeout"
    if isinstance(exc, ServiceUnavailable):
        return "unavailable"
    return "error"  # the service answered with an error of its own, or its answer made no sense


def _is_not_a_failure(exc: BaseException) -> bool:
    # 4xx is the caller's fault, and "busy" is the service shedding load: it answered, so it is up.
    # Neither counts against the breaker.
    return isinstance(exc, ServiceBusy) or (isinstance(exc, ServiceError) and exc.status < 500)


class ServiceClient:
    """One per downstream service and process, shared by all greenlets."""

    def __init__(self, name: str, base_url: str, *, token: str | None = None,
                 settings: ClientSettings | None = None, transport: Transport | None = None,
                 breaker: ConcurrentBreaker | None = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.settings = settings or ClientSettings()
        self.transport = transport or Transport(name, self.settings)
        self.breaker = breaker or ConcurrentBreaker(
            fail_max=self.settings.fail_max, reset_timeout=self.settings.reset_timeout,
            exclude=[_is_not_a_failure], name=name, throw_new_error_on_trip=False)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(propagation_headers())
        headers.update(extra or {})
        return headers

    def _circuit_open(self) -> ServiceUnavailable:
        reason = self.breaker.reason
        return ServiceUnavailable(f"{self.name} is unavailable (circuit open{': ' + reason if reason else ''})",
                                  {"service": self.name, "circuit": self.breaker.circuit})

    @contextmanager
    def _measured(self, tool: str) -> Iterator[None]:
        """Count and time one call (its retries and its wait for a pooled connection included) by `tool`
        and outcome, and turn the breaker's refusal into the `ServiceUnavailable` callers expect."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            yield
        except pybreaker.CircuitBreakerError:
            outcome = "circuit_open"
            raise self._circuit_open() from None
        except BaseException as exc:
            outcome = call_outcome(exc)
            raise
        finally:
            metrics.call_finished(self.name, tool, outcome, time.perf_counter() - started)

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        """A JSON call through the breaker, inside `_measured`. The wait for a free pooled connection comes
        before the breaker: a full pool is this process's own back-pressure (`ServiceBusy`), not the service
        failing, so it must neither open the circuit nor count as a success that closes it."""
        if self.breaker.refuses_calls():  # fail at once rather than wait for a slot that stuck calls hold
            raise pybreaker.CircuitBreakerError("circuit open")
        with self.transport.slot():
            return self.breaker.call(self.transport.request_json, method, url, **kwargs)

    def call_tool(self, tool: str, arguments: dict[str, Any], *, idempotency_key: str | None = None) -> Any:
        """Call `tool` and return its `result`. One idempotency key covers every retry of this call."""
        key = idempotency_key or uuid.uuid4().hex
        headers = self._headers({IDEMPOTENCY_HEADER: key, "Content-Type": "application/json"})
        log.debug("call %s.%s key=%s", self.name, tool, key)
        with self._measured(call_label(tool)):
            body = self._request("POST", f"{self.base_url}/tool/{tool}", json={"arguments": arguments},
                                 headers=headers)
            if not isinstance(body, dict) or "result" not in body:
                raise ToolError(f"{self.name} sent a malformed result for {tool}",
                                status=502, code="bad_response")
            return body["result"]

    def read_resource(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        """Open `path` now (errors before the stream starts raise here) and return its items; an
        `event: error` or a stream cut before `event: end` raises while iterating. The metrics time the
        opening, under `resource:` and the path's first segment (`resource:history`)."""
        path = path.lstrip("/")
        with self._measured("resource:" + call_label(path.partition("/")[0])):
            stream: EventStream = self.breaker.call(
                self.transport.open_events, f"{self.base_url}/resource/{path}", params=params,
                headers=self._headers({"Accept": "text/event-stream"}))
        return self._items(stream, path)

    def _items(self, stream: EventStream, path: str) -> Iterator[dict]:
        with stream:
            for event in stream:
                data = json.loads(event.data)
                if event.event == "end":
                    return
                if event.event == "error":
                    raise from_body(None, data)
                yield data
        raise ServiceUnavailable(f"stream {path} from {self.name} ended before its end event",
                                 {"service": self.name})

    def list_tools(self) -> list[dict]:
        with self._measured("discovery:tools"):
            return self._request("GET", f"{self.base_url}/tools", headers=self._headers())["tools"]

    def list_resources(self) -> list[dict]:
        with self._measured("discovery:resources"):
            return self._request("GET", f"{self.base_url}/resources", headers=self._headers())["resources"]

    def health(self) -> dict:
        """The service's own health report, bypassing the breaker (the monitor feeds it instead)."""
        with self._measured("probe:health"):
            return self.transport.request_json("GET", f"{self.base_url}/health", headers=self._headers(),
                                               probe=True)

    @property
    def circuit(self) -> str:
        return self.breaker.circuit

    def close(self) -> None:
        self.transport.close()
