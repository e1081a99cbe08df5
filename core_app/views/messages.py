"""The input endpoint and the history of a conversation (SPEC §6); its output stream is in `stream.py`."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify, request

from common.errors import InvalidRequest
from common.server import parse_arguments, read_json_object
from common.server.protocol import IDEMPOTENCY_HEADER
from core_app.access import current_user
from core_app.responses import Received
from core_app.schemas import HistoryQuery, MessageIn
from core_app.services import services

bp = Blueprint("messages", __name__, url_prefix="/v1/conversation")

_CLIENT_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


@bp.post("/<id:conversation_id>/messages")
def post_message(conversation_id: str) -> tuple[Response, int]:
    """Store the message in Memory before answering, so a 202 means it is durable and its reply is
    coming. The reply's place is taken first: over the limits the answer is 429 and nothing is stored."""
    user = current_user()
    body = parse_arguments(MessageIn, read_json_object())
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not _CLIENT_KEY.match(key):
        raise InvalidRequest("Idempotency-Key must be 8-64 characters of letters, digits, '._:-'")
    user_key = f"{user.user_id}:{key}" if key else None
    replier = services().replier
    with replier.admit(user.user_id, user_key) as ticket:
        stored = services().memory.store_input(user.user_id, conversation_id, body.content, body.metadata,
                                               idempotency_key=user_key)
        message = stored.message.body()
        replier.accept(user.user_id, message, ticket, replayed=stored.replayed)
    return jsonify(Received(status="received", message=stored.message).body()), 202


@bp.get("/<id:conversation_id>/messages")
def list_messages(conversation_id: str) -> Response:
    user = current_user()
    query = parse_arguments(HistoryQuery, request.args.to_dict())
    return jsonify(services().memory.list_messages(user.user_id, conversation_id, query.after_sequence,
                                                   query.limit).body())
