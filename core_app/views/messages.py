"""The input endpoint, the history, and the output stream of a conversation (SPEC §6, §7)."""

from __future__ import annotations

import re
import socket

from flask import Blueprint, Response, jsonify, request

from common.errors import InvalidRequest
from common.protocol import IDEMPOTENCY_HEADER, parse_arguments, read_json_object
from common.sse import Event, live_stream, sse_response
from core_app.access import call, current_user, stream_user
from core_app.events import EventId, ReplayWindowExceeded
from core_app.responses import Received
from core_app.schemas import HistoryQuery, MessageIn
from core_app.services import services
from core_app.streams import StreamGuard

bp = Blueprint("messages", __name__, url_prefix="/v1/conversation")

RETRY_MS = 3000
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


def _last_event_id() -> EventId | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if raw is None or raw.strip() == "":
        return None
    try:
        return EventId.parse(raw)
    except ValueError:
        raise InvalidRequest("Last-Event-ID must be an event id this server sent") from None


def _cut(client_socket: socket.socket) -> None:
    """Shut the connection of a client too far behind to catch up: its writer may be blocked on a full
    socket buffer forever, and only a failed write lets the stream end and release it."""
    try:
        client_socket.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _limit_send_buffer(client_socket: socket.socket, size: int) -> None:
    """Cap what the kernel holds for a client that stops reading (Linux auto-tunes a send buffer up to
    megabytes); a stream needs little, its events are small and the subscriber buffer holds the rest."""
    if size <= 0:
        return
    try:
        client_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    except OSError:
        pass


@bp.post("/<id:conversation_id>/stream-ticket")
def stream_ticket(conversation_id: str) -> tuple[Response, int]:
    """A short-lived ticket to open this conversation's stream from a URL, instead of the access token."""
    user = current_user()
    call("memory", "get_conversation", "conversation", conversation_id=conversation_id)
    ticket, expires_in = services().tokens.issue_ticket(user, conversation_id)
    return jsonify({"ticket": ticket, "expires_in": expires_in, "conversation_id": conversation_id}), 201


@bp.get("/<id:conversation_id>/messages/stream")
def stream(conversation_id: str) -> Response:
    user = stream_user(conversation_id)
    call("memory", "get_conversation", "conversation", conversation_id=conversation_id)
    cortex = services()
    settings = cortex.settings
    after = _last_event_id()
    release = cortex.stream_slots.take(user.user_id)
    try:
        log = cortex.events
        notices = []
        try:
            sub = log.subscribe(conversation_id, after)
        except ReplayWindowExceeded as exc:
            sub = log.subscribe(conversation_id, None)
            notices.append(Event({"code": exc.code, "message": exc.message}, event="error", id=str(sub.position)))
    except BaseException:
        release()
        raise
    client_socket = request.environ.get("gunicorn.socket")
    if client_socket is not None:
        _limit_send_buffer(client_socket, settings.stream_send_buffer_bytes)
        sub.on_overflow = lambda: _cut(client_socket)
    connected = Event({"conversation_id": conversation_id, "user_id": user.user_id}, event="connected",
                      id=str(sub.position), retry=RETRY_MS)
    guard = StreamGuard(cortex.access_checks, user.user_id, conversation_id, user.expires_at)
    response = sse_response(live_stream(sub, settings.heartbeat_seconds, first=[connected, *notices], check=guard))
    # Also when the body is never iterated (the client left before the first byte): the stream's own
    # `finally` never runs then. Both are safe to call twice.
    response.call_on_close(release)
    response.call_on_close(sub.close)
    return response
