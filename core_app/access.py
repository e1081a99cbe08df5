"""Who is calling, and calls to Memory on their behalf with other users' objects hidden as 404."""

from __future__ import annotations

from typing import Any

from flask import g, request

from common.auth import bearer_token
from common.errors import Forbidden, NotFound, ServiceError, Unauthorized
from core_app.services import services
from core_app.tokens import TokenUser


def current_user() -> TokenUser:
    """The user of a valid bearer token."""
    token = bearer_token()
    if token is None:
        raise Unauthorized("send a bearer token: Authorization: Bearer <token>")
    user = services().tokens.verify(token)
    g.user = user
    return user


def stream_user(conversation_id: str) -> TokenUser:
    """The reader of a conversation's stream. EventSource cannot send headers, so besides a bearer token
    a stream accepts `?ticket=` (short-lived, for this conversation only) or, for older clients,
    `?access_token=` (redacted from the access log)."""
    tokens = services().tokens
    if bearer_token() is not None:
        return current_user()
    ticket = request.args.get("ticket")
    token = request.args.get("access_token")
    if ticket:
        user = tokens.verify_ticket(ticket, conversation_id)
    elif token:
        user = tokens.verify(token)
    else:
        raise Unauthorized("send a bearer token, or a ?ticket= from POST .../stream-ticket")
    g.user = user
    return user


def hide_foreign(exc: ServiceError, what: str) -> ServiceError:
    """Another user's object is reported exactly like a missing one, so ids reveal nothing."""
    if isinstance(exc, Forbidden):
        return NotFound(f"{what} not found")
    if isinstance(exc, NotFound) and exc.details.get("object") == "user":
        # The token is valid but its user is gone (deleted): treat as signed out.
        return Unauthorized("the user of this token no longer exists")
    return exc


def call(client_name: str, tool: str, what: str, idempotency_key: str | None = None, **arguments: Any) -> Any:
    """Call a tool of Memory or Cognition for the current user, mapping refusals to 404."""
    client = getattr(services(), client_name)
    try:
        return client.call_tool(tool, {"user_id": g.user.user_id, **arguments}, idempotency_key=idempotency_key)
    except ServiceError as exc:
        raise hide_foreign(exc, what) from None
