"""Service-to-service authentication with a shared bearer token (SPEC §3.6): the check on each request,
when a service refuses to start without a token, how strong a secret must be, and the `Host` check that
guards the open (no token) mode against DNS rebinding."""

from __future__ import annotations

import hmac
import ipaddress
from collections import Counter

from flask import Flask, request

from common.config import ConfigError, Env
from common.errors import MisdirectedRequest, Unauthorized

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
MIN_SECRET_CHARS = 32
MIN_DISTINCT_CHARS = 8
MAX_SHARE_OF_ONE_CHAR = 0.5
SECRET_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_service_token(expected: str | None) -> None:
    """Raise `Unauthorized` unless the request carries `expected`; no token configured means open."""
    if not expected:
        return
    given = bearer_token()
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("missing or wrong service token")


# --- at start: when a token is required, and how strong a secret must be ----------------------------------

def is_loopback_host(host: str) -> bool:
    """Whether binding to `host` keeps the port on this machine (`0.0.0.0` and `::` are every interface)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface


def weak_secret_problem(value: str) -> str | None:
    """Why `value` is too weak to be a shared secret, or None. The rule is deliberately simple: at least
    32 characters, at least 8 different ones, and no one character in more than half of them. A
    random secret passes it (32 hex digits almost always do); a word repeated or a padded name does not."""
    if len(value) < MIN_SECRET_CHARS:
        return f"must be at least {MIN_SECRET_CHARS} characters, got {len(value)} (make one with: {SECRET_HINT})"
    counts = Counter(value)
    if len(counts) < MIN_DISTINCT_CHARS or max(counts.values()) > MAX_SHARE_OF_ONE_CHAR * len(value):
        return (f"is too repetitive to be a secret (it needs {MIN_DISTINCT_CHARS}+ different characters, none in "
                f"more than half of it; make one with: {SECRET_HINT})")
    return None


def check_strong(name: str, value: str) -> str:
    problem = weak_secret_problem(value)
    if problem is not None:
        raise ConfigError(name, problem)
    return value


def service_token_setting(env: Env, *, host: str, environment: str, in_process: bool = False) -> str | None:
    """SERVICE_TOKEN for a service that others call over the network. Without it the service is open to
    whoever reaches its port, so it is required (and must be strong) when the port is bound beyond
    loopback or CORTEX_ENV is production; a service running inside the Core's process has no port."""
    token = env.str("SERVICE_TOKEN")
    if in_process:
        return token
    reason = (f"HOST is {host!r}, not a loopback address" if not is_loopback_host(host)
              else "CORTEX_ENV is production" if environment == "production" else None)
    if reason is None:
        return token
    if token is None:
        raise ConfigError("SERVICE_TOKEN", f"is required when {reason}: set it to a long random string "
                                           f"(the same in every service; make one with: {SECRET_HINT})")
    return check_strong("SERVICE_TOKEN", token)


def allowed_hosts_setting(env: Env) -> tuple[str, ...]:
    """ALLOWED_HOSTS: host names (besides localhost, 127.0.0.1 and [::1]) that may reach an open service."""
    names = tuple(host_name(entry) for entry in (env.str("ALLOWED_HOSTS") or "").split(",") if entry.strip())
    for name in names:
        if not name or any(c in name for c in "/@ *") or ":" in name and not _is_ipv6(name):
            raise ConfigError("ALLOWED_HOSTS", f"entries must be bare host names or addresses, got {name!r}")
    return names


# --- on each request of the open mode: the Host header ----------------------------------------------------

def _is_ipv6(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).version == 6
    except ValueError:
        return False


def host_name(host: str) -> str:
    """The name part of a `Host` header value, lower-cased, without port, brackets or trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def install_host_check(app: Flask, service_token: str | None, allowed_hosts: tuple[str, ...] = ()) -> None:
    """In the open mode (no token), answer only requests addressed to this machine by name: a web page
    that rebinds its own DNS name to 127.0.0.1 reaches the port, but its requests carry its own name."""
    if service_token:
        return  # the token guards every route; a rebinding page cannot know it
    known = frozenset(LOCAL_HOSTS) | frozenset(allowed_hosts)

    @app.before_request
    def _check_host() -> None:
        name = host_name(request.headers.get("Host", ""))
        if name not in known:
            raise MisdirectedRequest(f"Host {name[:100]!r} is not served here; without SERVICE_TOKEN this service "
                                     f"answers only localhost, 127.0.0.1, [::1] and ALLOWED_HOSTS")
