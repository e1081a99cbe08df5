"""Cross-origin access for web pages served from other origins, through Flask-CORS: what an origin in a
setting may look like, and the one way the Core's API and `/mcp` hand their rules to Flask-CORS.

Never in credentials mode: callers authenticate with a bearer token in `Authorization`, never with
cookies, so a page on another origin needs no cookies sent or read, and a page that is not allowed gains
nothing from a user's browser session.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Blueprint, Flask, request
from flask_cors import CORS

from common.config import ConfigError

# How long a browser may reuse a preflight's answer: two hours, the most Chromium honours. Removing an
# origin from a setting still takes effect at once: the answers themselves stop carrying
# Access-Control-Allow-Origin, and the browser withholds them from the page.
MAX_AGE_SECONDS = 7200
DEFAULT_PORTS = {"http": 80, "https": 443}
# A host name as browsers put it in `Origin` (internationalised names in their xn-- form), or an IP address.
HOST = re.compile(r"[a-z0-9_.-]+|[0-9a-f:.]+")


def canonical_origin(entry: str) -> str | None:
    """`entry` as a browser writes an `Origin` header (`scheme://host[:port]`, lower case, no default port),
    or None when it is not an http(s) origin (a path, a query, user info, a wildcard...)."""
    text = entry.strip().lower().rstrip("/")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if (parts.scheme not in DEFAULT_PORTS or not parts.hostname or not HOST.fullmatch(parts.hostname)
            or parts.username is not None or parts.path or "?" in text or "#" in text):
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + ("" if port in (None, DEFAULT_PORTS[parts.scheme]) else f":{port}")


def parse_origins(name: str, raw: str | None) -> tuple[str, ...]:
    """A comma-separated setting of exact origins, canonical; a malformed entry stops the service at start
    with one line naming `name`."""
    origins = []
    for entry in (raw or "").split(","):
        if not entry.strip():
            continue
        origin = canonical_origin(entry)
        if origin is None:
            raise ConfigError(name, f"entries must be exact origins, scheme://host[:port] with http or https and "
                                    f"nothing after the port, got {entry.strip()!r}")
        origins.append(origin)
    return tuple(dict.fromkeys(origins))


def exact_origin(origin: str) -> re.Pattern[str]:
    """A pattern matching `origin` and nothing else (case aside: schemes and host names are not case
    sensitive). A pattern rather than a string, because Flask-CORS would take `http://[::1]:8080` for a
    regular expression."""
    return re.compile(re.escape(origin) + r"\Z", re.IGNORECASE)


def is_preflight() -> bool:
    """Whether this request is a browser's CORS preflight: it carries no credentials by design, so the
    checks of the request it asks about must not run on it."""
    return (request.method == "OPTIONS" and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers)


def allow_cross_origin(target: Flask | Blueprint, path: str, origins: Iterable[re.Pattern[str]], *,
                       methods: Iterable[str], request_headers: Iterable[str], exposed_headers: Iterable[str]) -> None:
    """Answer browsers from `origins` on `path` (a literal path or a regular expression): the requested
    origin echoed in Access-Control-Allow-Origin, with `Vary: Origin`, on every answer, errors included; a
    preflight is told `methods`, those of `request_headers` it asked for, and MAX_AGE_SECONDS. Any other
    origin gets no CORS header, and the browser keeps the answer from its page."""
    CORS(target, resources={path: {}}, origins=list(origins), methods=list(methods),
         allow_headers=list(request_headers), expose_headers=list(exposed_headers), max_age=MAX_AGE_SECONDS,
         supports_credentials=False, send_wildcard=False, vary_header=True,
         # Flask-CORS would otherwise list every allowed origin on answers to requests with no Origin.
         always_send=False,
         # Error answers pass through after_request like any other; no need to wrap Flask's handlers.
         intercept_exceptions=False)
