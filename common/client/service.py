"""The client every service uses to call another: tools, resources, discovery and health, with
pooling, retries and circuit breaking (SPEC §3.5)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pybreaker

from common.client.breaker import ConcurrentBreaker
from common.client.transport import ClientSettings, EventStream, Transport
from common.errors import ServiceBusy, ServiceError, ServiceUnavailable, ToolError, from_body
from common.headers import IDEMPOTENCY_KEY as IDEMPOTENCY_HEADER
from common.request_ids import propagation_headers

log = logging.getLogger(__name__)


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

    def _guarded(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.breaker.call(func, *args, **kwargs)
        except pybreaker.CircuitBreakerError:
            raise self._circuit_open() from None

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        """A JSON call through the breaker. The wait for a free pooled connection comes before the breaker:
        a full pool is this process's own back-pressure (`ServiceBusy`), not the service failing, so it
        must neither open the circuit nor count as a success that closes it."""
        if self.breaker.refuses_calls():  # fail at once rather than wait for a slot that stuck calls hold
            raise self._circuit_open()
        with self.transport.slot():
            return self._guarded(self.transport.request_json, method, url, **kwargs)

    def call_tool(self, tool: str, arguments: dict[str, Any], *, idempotency_key: str | None = None) -> Any:
        """Call `tool` and return its `result`. One idempotency key covers every retry of this call."""
        key = idempotency_key or uuid.uuid4().hex
        headers = self._headers({IDEMPOTENCY_HEADER: key, "Content-Type": "application/json"})
        log.debug("call %s.%s key=%s", self.name, tool, key)
        body = self._request("POST", f"{self.base_url}/tool/{tool}", json={"arguments": arguments},
                             headers=headers)
        if not isinstance(body, dict) or "result" not in body:
            raise ToolError(f"{self.name} sent a malformed result for {tool}",
                            status=502, code="bad_response")
        return body["result"]

    def read_resource(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        """Open `path` now (errors before the stream starts raise here) and return its items; an
        `event: error` or a stream cut before `event: end` raises while iterating."""
        stream: EventStream = self._guarded(
            self.transport.open_events, f"{self.base_url}/resource/{path.lstrip('/')}", params=params,
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
        return self._request("GET", f"{self.base_url}/tools", headers=self._headers())["tools"]

    def list_resources(self) -> list[dict]:
        return self._request("GET", f"{self.base_url}/resources", headers=self._headers())["resources"]

    def health(self) -> dict:
        """The service's own health report, bypassing the breaker (the monitor feeds it instead)."""
        return self.transport.request_json("GET", f"{self.base_url}/health", headers=self._headers(), probe=True)

    @property
    def circuit(self) -> str:
        return self.breaker.circuit

    def close(self) -> None:
        self.transport.close()
