"""The only module that touches `requests`: pooled sessions, timeouts, retries, exception translation."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
import sseclient
import urllib3
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from common.client.retry import RetryPolicy, build_retry
from common.client.tls import ClientTLS, handshake_problem
from common.config import Env
from common.errors import ServiceBusy, ServiceError, ServiceTimeout, ServiceUnavailable, from_body
from common.headers import IDEMPOTENCY_KEY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts, pool size, retry and breaker settings of one downstream client."""

    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    stream_read_timeout: float = 45.0  # above the 15 s heartbeat, so idle streams are not cut
    pool_size: int = 50
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fail_max: int = 5
    reset_timeout: float = 10.0
    probe_timeout: float = 2.0
    tls: ClientTLS = field(default_factory=ClientTLS)

    @classmethod
    def from_env(cls, env: Env) -> ClientSettings:
        """The client settings every service reads (listed in .env.example)."""
        return cls(
            connect_timeout=env.float("CLIENT_CONNECT_TIMEOUT", 2.0, minimum=0.01),
            read_timeout=env.float("CLIENT_READ_TIMEOUT", 10.0, minimum=0.01),
            pool_size=env.int("CLIENT_POOL_SIZE", 50, minimum=1, maximum=10_000),
            retry=RetryPolicy(attempts=env.int("CLIENT_RETRIES", 3, minimum=0, maximum=10),
                              max_elapsed=env.float("CLIENT_RETRY_MAX_SECONDS", 10.0, minimum=0)),
            fail_max=env.int("BREAKER_FAIL_MAX", 5, minimum=1),
            reset_timeout=env.float("BREAKER_RESET_SECONDS", 10.0, minimum=0.01),
            tls=ClientTLS.from_env(env),
        )


def _is_read_timeout(exc: BaseException) -> bool:
    if isinstance(exc, requests.ReadTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    # After retries, urllib3 wraps a read timeout in MaxRetryError and requests reports ConnectionError.
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, ReadTimeoutError)


def _closed_unanswered(exc: requests.RequestException) -> bool:
    """Whether the server closed the connection after the request went out and before any answer: what
    a pooled connection meets when the server's keep-alive ends just as it is reused."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    cause = reason.args[1] if isinstance(reason, ProtocolError) and len(reason.args) > 1 else None
    # http.client's RemoteDisconnected is a ConnectionResetError.
    return isinstance(cause, ConnectionResetError | BrokenPipeError | ConnectionAbortedError)


def _replayable(method: str, headers: Mapping[str, str] | None) -> bool:
    """Safe to send twice: a read, or a write the server de-duplicates by its idempotency key."""
    return method.upper() in ("GET", "HEAD", "OPTIONS") or IDEMPOTENCY_KEY in (headers or {})


def _retries(session: requests.Session, url: str) -> int:
    """How many times the adapter serving `url` retries a failed request itself (0 for an in-process one)."""
    retry = getattr(session.get_adapter(url), "max_retries", None)
    return retry.total or 0 if isinstance(retry, Retry) else 0


class Transport:
    """HTTP to one service: a pooled session for calls and another for streams, which hold their
    connection for their whole life and must not starve ordinary calls."""

    def __init__(self, service: str, settings: ClientSettings, retry: Retry | None = None,
                 trust_env: bool = False) -> None:
        self.service = service
        self.settings = settings
        retry = retry if retry is not None else build_retry(settings.retry, dependency=service)
        self.session = self._session(trust_env, HTTPAdapter(
            pool_connections=1, pool_maxsize=settings.pool_size, pool_block=True, max_retries=retry))
        self.streams = self._session(trust_env, HTTPAdapter(pool_maxsize=settings.pool_size, max_retries=retry))
        self._slots = threading.BoundedSemaphore(settings.pool_size)
        self.probes = self._session(trust_env, HTTPAdapter(pool_maxsize=2, max_retries=0))
        # For sending a request once more after the server closed its connection unanswered (see `_send`).
        self.fresh = self._session(trust_env, HTTPAdapter(pool_maxsize=settings.pool_size, max_retries=0))

    def _session(self, trust_env: bool, adapter: HTTPAdapter) -> requests.Session:
        session = requests.Session()
        # Our services' URLs come from our own configuration: skip reading proxy and netrc settings from
        # the environment on every call (a measurable share of its cost). An outside API may need them.
        session.trust_env = trust_env
        # With trust_env off, requests ignores REQUESTS_CA_BUNDLE: a private CA comes from CLIENT_CA_BUNDLE.
        session.verify = self.settings.tls.verify
        session.cert = self.settings.tls.client_cert
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def mount(self, prefix: str, adapter: BaseAdapter) -> None:
        """Route `prefix` through another adapter (the in-process mode serves a WSGI app this way)."""
        for session in (self.session, self.streams, self.probes, self.fresh):
            session.mount(prefix, adapter)

    def _translate(self, exc: requests.RequestException) -> ServiceError:
        if _is_read_timeout(exc):
            return ServiceTimeout(f"{self.service} did not answer in time", {"service": self.service})
        if isinstance(exc, requests.exceptions.SSLError):
            return ServiceUnavailable(f"{self.service}: {handshake_problem(exc)}",
                                      {"service": self.service, "reason": "tls_error"})
        return ServiceUnavailable(f"{self.service} is unreachable", {"service": self.service})

    def _send(self, session: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send, and when the server closed the connection without answering (a pooled connection whose
        keep-alive the server ended just then, as gunicorn does after `keepalive` idle seconds) send once
        more, at once, on a new connection, if the request may be sent twice. Only where the session has no
        retries of its own (a probe, or CLIENT_RETRIES=0): urllib3 already retries this at once otherwise,
        and a resend on top would go past the retry budget."""
        try:
            return session.request(method, url, **kwargs)
        except requests.ConnectionError as exc:
            if not (_closed_unanswered(exc) and _replayable(method, kwargs.get("headers"))
                    and not _retries(session, url)):
                raise
            log.debug("%s %s: the connection was closed unanswered (%s); sending again", method, url, exc)
        # Without retries, and on a connection closed after the answer, so it never meets another stale one.
        headers = {**(kwargs.pop("headers", None) or {}), "Connection": "close"}
        return self.fresh.request(method, url, headers=headers, **kwargs)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold room for one call on the pooled connections, waiting at most the connect timeout.
        requests gives urllib3 no pool timeout, so without this a call would wait for a pooled connection
        forever once every one is held by a slow service. A full pool raises `ServiceBusy`."""
        if not self._slots.acquire(timeout=self.settings.connect_timeout):
            raise ServiceBusy(f"{self.service} is busy: all {self.settings.pool_size} connections to it are in "
                              "use; try again shortly", {"service": self.service})
        try:
            yield
        finally:
            self._slots.release()

    def request_json(self, method: str, url: str, *, json: Any = None, headers: dict[str, str] | None = None,
                     probe: bool = False) -> Any:
        """Send one request and return the decoded JSON body of a 2xx answer; raise the remote
        error otherwise, rebuilt from its body. Callers hold a `slot()` around it. A `probe` (health
        check) is not retried and has a short read timeout, so a frozen service is noticed in seconds
        rather than after every retry; it uses connections of its own, so it needs no slot."""
        if probe:
            session, timeout = self.probes, (self.settings.connect_timeout,
                                             min(self.settings.read_timeout, self.settings.probe_timeout))
        else:
            session, timeout = self.session, (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            response = self._send(session, method, url, json=json, headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            log.debug("%s %s failed: %s", method, url, exc)
            raise self._translate(exc) from None
        with response:
            try:
                body = response.json()
            except ValueError:
                body = None
        if response.status_code >= 400 or body is None:
            raise self._remote_error(response.status_code, body)
        return body

    def _remote_error(self, status: int, body: Any) -> ServiceError:
        error = from_body(status, body)
        if error.code == "bad_response" and status in (502, 503, 504):
            # Not our error shape: a proxy or load balancer in front of the service answered for it.
            cls = ServiceTimeout if status == 504 else ServiceUnavailable
            return cls(f"{self.service} is unavailable (HTTP {status} from in front of it)", {"service": self.service})
        if isinstance(error, ServiceUnavailable | ServiceTimeout) and "service" not in error.details:
            error.details["service"] = self.service
        return error

    def open_events(self, url: str, *, method: str = "GET", params: dict[str, Any] | None = None,
                    json: Any = None, headers: dict[str, str] | None = None) -> EventStream:
        """Open an event stream; errors before the first byte are raised like `request_json`'s."""
        timeout = (self.settings.connect_timeout, self.settings.stream_read_timeout)
        try:
            response = self._send(self.streams, method, url, params=params, json=json, headers=headers,
                                  stream=True, timeout=timeout)
        except requests.RequestException as exc:
            raise self._translate(exc) from None
        if response.status_code >= 400:
            with response:
                try:
                    body = response.json()
                except ValueError:
                    body = None
            raise self._remote_error(response.status_code, body)
        return EventStream(self, response)

    def close(self) -> None:
        for session in (self.session, self.streams, self.probes, self.fresh):
            session.close()


class EventStream:
    """An open SSE response, parsed by sseclient-py; a cut connection becomes `ServiceUnavailable`."""

    def __init__(self, transport: Transport, response: requests.Response) -> None:
        self.transport = transport
        self.response = response

    def _chunks(self) -> Iterator[bytes]:
        # Whatever has arrived, not fixed-size blocks: iterating the response waits for 128 bytes at a
        # time, which holds back a short event on a close-delimited body until more follows.
        raw = self.response.raw
        read = raw.read1 if hasattr(raw, "read1") else raw.read
        while chunk := read(65536):
            yield chunk

    def __iter__(self) -> Iterator[sseclient.Event]:
        try:
            yield from sseclient.SSEClient(self._chunks()).events()
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise ServiceUnavailable(f"stream from {self.transport.service} was cut",
                                     {"service": self.transport.service}) from exc
        finally:
            self.response.close()

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
