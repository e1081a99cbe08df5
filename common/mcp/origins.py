"""Which browser origins may call `/mcp` (the MCP transport's defence against DNS rebinding).

A request without an `Origin` header does not come from a web page and is always let through (the
service token still applies). A request with one must match an entry of `MCP_ALLOWED_ORIGINS`: an exact
origin (`https://app.example.com`), an origin with any port (`http://localhost:*`), or `*` for any.
Without the setting, loopback pages on any port are let through (`DEFAULT_ALLOWED_ORIGINS`).

Only entries the operator set get CORS answers (`cors_patterns`): a page on an origin listed there can
read what `/mcp` answers. The default gets none, so a page on some localhost port cannot use `/mcp` from
a browser unless someone chose to let it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from common.config import ConfigError
from common.server.cors import NonCanonicalAddress, canonical_origin

SETTING = "MCP_ALLOWED_ORIGINS"
# Loopback pages only: a page on another site that points a rebound DNS name at this port is refused.
DEFAULT_ALLOWED_ORIGINS = "http://localhost:*,http://127.0.0.1:*,http://[::1]:*"


def _normalise(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


def _canonical_entry(entry: str) -> str:
    """An entry as browsers write origins (`canonical_origin`; for `scheme://host:*`, its scheme and host);
    a malformed one stops the service at start."""
    text = entry.strip()
    if text == "*":
        return text
    any_port = text.endswith(":*")
    base = text[:-2] if any_port else text
    try:
        origin = canonical_origin(base)
    except NonCanonicalAddress as exc:
        raise ConfigError(SETTING, f"{exc}, got {text!r}") from None
    if origin is None or (any_port and urlsplit(base).port is not None):
        raise ConfigError(SETTING, f"entries must be '*', scheme://host[:port] or scheme://host:*, "
                                   f"got {_normalise(text)!r}")
    return origin + (":*" if any_port else "")


@dataclass(frozen=True)
class AllowedOrigins:
    """MCP_ALLOWED_ORIGINS as canonical entries, and whether the operator set them (else the default)."""

    entries: tuple[str, ...]
    explicit: bool


def parse_allowed_origins(raw: str | None) -> AllowedOrigins:
    """The comma-separated setting as entries written as browsers write origins (the default when empty); a
    malformed entry stops the service at start."""
    setting = raw or ""
    explicit = any(entry.strip() for entry in setting.split(","))
    entries = (_canonical_entry(entry) for entry in (setting if explicit else DEFAULT_ALLOWED_ORIGINS).split(",")
               if entry.strip())
    return AllowedOrigins(tuple(dict.fromkeys(entries)), explicit)


def origin_allowed(origin: str | None, allowed: AllowedOrigins) -> bool:
    if origin is None:
        return True
    given = _normalise(origin)
    for entry in allowed.entries:
        if entry in ("*", given):
            return True
        if entry.endswith(":*"):
            base = entry[:-2]
            port = given[len(base) + 1:] if given.startswith(base + ":") else None
            if given == base or (port is not None and port.isascii() and port.isdigit()):
                return True
    return False


def origin_patterns(allowed: AllowedOrigins) -> list[re.Pattern[str]]:
    """The entries as patterns, matching exactly the origins `origin_allowed` lets through."""
    patterns = []
    for entry in allowed.entries:
        if entry == "*":
            patterns.append(re.compile(r".*", re.DOTALL))
            continue
        any_port = entry.endswith(":*")
        base = re.escape(entry[:-2] if any_port else entry)
        patterns.append(re.compile(base + (r"(?::[0-9]+)?" if any_port else "") + r"/*\Z", re.IGNORECASE))
    return patterns


def cors_patterns(allowed: AllowedOrigins) -> list[re.Pattern[str]]:
    """The origins whose pages get CORS answers, for Flask-CORS: those `origin_allowed` lets through when
    the operator listed them, none for the default."""
    return origin_patterns(allowed) if allowed.explicit else []
