"""Service-to-service authentication with a shared bearer token (SPEC §3.6)."""

from __future__ import annotations

import hmac

from flask import request

from common.errors import Unauthorized


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
