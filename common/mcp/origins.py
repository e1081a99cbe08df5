"""Which browser origins may call `/mcp` (the MCP transport's defence against DNS rebinding).

A request without an `Origin` header does not come from a web page and is always let through (the
service token still applies). A request with one must match an entry of `MCP_ALLOWED_ORIGINS`: an exact
origin (`https://app.example.com`), an origin with any port (`http://localhost:*`), or `*` for any.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from common.config import ConfigError

SETTING = "MCP_ALLOWED_ORIGINS"
# Loopback pages only: a page on another site that points a rebound DNS name at this port is refused.
DEFAULT_ALLOWED_ORIGINS = "http://localhost:*,http://127.0.0.1:*,http://[::1]:*"


def _normalise(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


def _valid(entry: str) -> bool:
    base = entry[:-2] if entry.endswith(":*") else entry
    if "*" in base:
        return False
    try:
        parts = urlsplit(base)
        parts.port  # noqa: B018 - reading it validates the port number
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username
            and parts.path == "" and not parts.query and not parts.fragment)


def parse_allowed_origins(raw: str | None) -> tuple[str, ...]:
    """The comma-separated setting as normalised entries; a malformed entry stops the service at start."""
    entries = tuple(_normalise(entry) for entry in (raw or DEFAULT_ALLOWED_ORIGINS).split(",") if entry.strip())
    for entry in entries:
        if entry != "*" and not _valid(entry):
            raise ConfigError(SETTING, f"entries must be '*', scheme://host[:port] or scheme://host:*, got {entry!r}")
    return entries


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    if origin is None:
        return True
    given = _normalise(origin)
    for entry in allowed:
        if entry in ("*", given):
            return True
        if entry.endswith(":*"):
            base = entry[:-2]
            port = given[len(base) + 1:] if given.startswith(base + ":") else None
            if given == base or (port is not None and port.isdigit()):
                return True
    return False
