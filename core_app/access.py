"""Who is calling: the user of a bearer token, or of a stream's ticket."""

from __future__ import annotations

from flask import g, request

from common.errors import Unauthorized
from common.server import bearer_token
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
