"""Cross-origin access for web pages served from other origins, through Flask-CORS: what an origin in a
setting may look like, and the one way the Core's API and `/mcp` hand their rules to Flask-CORS.

Never in credentials mode: callers authenticate with a bearer token in `Authorization`, never with
cookies, so a page on another origin needs no cookies sent or read, and a page that is not allowed gains
nothing from a user's browser session.
"""

from __future__ import annotations

import ipaddress
import re
import socket
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
# A host whose last label is a number is an IPv4 address to a browser (the URL Standard's "ends in a
# number"), which it rewrites to four decimal numbers: `127.1` and `0x7f.0.0.1` arrive as `127.0.0.1`.
ENDS_IN_A_NUMBER = re.compile(r"(?:^|.*\.)(?:[0-9]+|0x[0-9a-f]*)\.?")
BYTE = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
CANONICAL_IPV4 = re.compile(rf"{BYTE}(?:\.{BYTE}){{3}}")


class NonCanonicalAddress(ValueError):
    """An IPv4 address written in a form browsers never send; the message says how to write it."""


def canonical_origin(entry: str) -> str | None:
    """`entry` as a browser writes an `Origin` header (`scheme://host[:port]`, lower case, no default port,
    an IPv6 address compressed), or None when it is not an http(s) origin (a path, a query, user info, a
    wildcard...). NonCanonicalAddress, saying how to write it, for an IPv4 address in any form but the four
    decimal numbers browsers send: such an entry would never match."""
    text = entry.strip().lower().rstrip("/")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    hostname = parts.hostname
    if (parts.scheme not in DEFAULT_PORTS or not hostname or not HOST.fullmatch(hostname)
            or parts.username is not None or parts.path or "?" in text or "#" in text
            or ("[" in parts.netloc) != (":" in hostname)):
        return None
    if ":" in hostname:
        try:
            host = f"[{ipaddress.IPv6Address(hostname).compressed}]"
        except ValueError:
            return None
    else:
        host = hostname
        if ENDS_IN_A_NUMBER.fullmatch(hostname) and not CANONICAL_IPV4.fullmatch(hostname):
            raise NonCanonicalAddress(f"entries must write IPv4 addresses as browsers send them, {_advice(hostname)}")
    return f"{parts.scheme}://{host}" + ("" if port in (None, DEFAULT_PORTS[parts.scheme]) else f":{port}")


def _advice(hostname: str) -> str:
    """How a browser writes the IPv4 address `hostname` stands for, or that it stands for none."""
    try:
        return f"{hostname} as {socket.inet_ntoa(socket.inet_aton(hostname.removesuffix('.')))}"
    except OSError:
        return f"four decimal numbers from 0 to 255 ({hostname} is not an address)"


def parse_origins(name: str, raw: str | None) -> tuple[str, ...]:
    """A comma-separated setting of exact origins, canonical; a malformed entry (or an IPv4 address written
    in a form browsers never send) stops the service at start with one line naming `name`."""
    origins = []
    for entry in (raw or "").split(","):
        if not entry.strip():
            continue
        try:
            origin = canonical_origin(entry)
        except NonCanonicalAddress as exc:
            raise ConfigError(name, f"{exc}, got {entry.strip()!r}") from None
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
