"""The output stream of a conversation and the tickets that open it from a URL (SPEC §7)."""

from __future__ import annotations

import socket

from flask import Blueprint, Response, jsonify, request

from common.errors import InvalidRequest
from common.sse import Event, live_stream, sse_response
from core_app.access import current_user, stream_user
from core_app.events import EventLog, Position, ReplayWindowExceeded
from core_app.services import services
from core_app.streams import StreamGuard

bp = Blueprint("stream", __name__, url_prefix="/v1/conversation")

RETRY_MS = 3000


def _last_event_id(log: EventLog) -> Position | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if raw is None or raw.strip() == "":
        return None
    try:
        return log.parse_position(raw)
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
    services().memory.get_conversation(user.user_id, conversation_id)
    ticket, expires_in = services().tokens.issue_ticket(user, conversation_id)
    return jsonify({"ticket": ticket, "expires_in": expires_in, "conversation_id": conversation_id}), 201


@bp.get("/<id:conversation_id>/messages/stream")
def stream(conversation_id: str) -> Response:
    user = stream_user(conversation_id)
    services().memory.get_conversation(user.user_id, conversation_id)
    cortex = services()
    settings, log = cortex.settings, cortex.events
    after = _last_event_id(log)
    client_socket = request.environ.get("gunicorn.socket")
    on_overflow = None if client_socket is None else (lambda: _cut(client_socket))
    release = cortex.stream_slots.take(user.user_id)
    try:
        notices = []
        try:
            sub = log.subscribe(conversation_id, after, on_overflow)
        except ReplayWindowExceeded as exc:
            sub = log.subscribe(conversation_id, None, on_overflow)
            notices.append(Event({"code": exc.code, "message": exc.message}, event="error", id=str(sub.position)))
    except BaseException:
        release()
        raise
    if client_socket is not None:
        _limit_send_buffer(client_socket, settings.stream_send_buffer_bytes)
    connected = Event({"conversation_id": conversation_id, "user_id": user.user_id}, event="connected",
                      id=str(sub.position), retry=RETRY_MS)
    guard = StreamGuard(cortex.access_checks, user.user_id, conversation_id, user.expires_at)
    response = sse_response(live_stream(sub, settings.heartbeat_seconds, first=[connected, *notices], check=guard))
    # Also when the body is never iterated (the client left before the first byte): the stream's own
    # `finally` never runs then. Both are safe to call twice.
    response.call_on_close(release)
    response.call_on_close(sub.close)
    return response
