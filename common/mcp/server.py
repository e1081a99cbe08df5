"""The official Model Context Protocol on `POST /mcp` (SPEC §3.7): the Streamable HTTP transport,
stateless, serving the handshake-era revisions and the stateless 2026-07-28 revision on one endpoint.

The blueprint only speaks HTTP: it checks Origin, the service token, content negotiation and the
JSON-RPC envelope, answers browsers on the origins the operator set in MCP_ALLOWED_ORIGINS with CORS
headers (Flask-CORS; none for the default), routes each message to its era (`common.mcp.eras`) and
renders what `common.mcp.methods.McpServer` answers. Every answer is one JSON body; no session id is
ever issued, so any worker serves any request, and `GET`/`DELETE` (the session stream and session end)
are 405.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from common.errors import PayloadTooLarge, Unauthorized
from common.mcp.eras import (
    BATCH_VERSION,
    MODERN_VERSIONS,
    VERSION_HEADER,
    Era,
    check_notification_version,
    http_status,
    route,
)
from common.mcp.jsonrpc import (
    INVALID_REQUEST,
    PARSE_ERROR,
    Message,
    RpcError,
    error_message,
    is_response,
    parse_message,
    result_message,
)
from common.mcp.methods import McpServer, dumps
from common.mcp.origins import AllowedOrigins, cors_patterns, origin_allowed, parse_allowed_origins
from common.request_ids import current_request_id
from common.server.auth import require_service_token
from common.server.body import parse_json, read_body
from common.server.cors import allow_cross_origin, is_preflight
from common.server.protocol import CallContext, Resource, Tool

log = logging.getLogger(__name__)

PATH = "/mcp"
# Every message of a batch is answered in one request, so an unbounded array is unbounded work for one
# POST. Only the 2025-03-26 revision has batches at all; no client needs more than a handful.
MAX_BATCH = 50
# What an MCP client in a browser sends and reads beyond the CORS-safelisted headers (the Streamable HTTP
# transport's headers; this server issues no session id, but a client reads the header to find that out).
CORS_REQUEST_HEADERS = ("Content-Type", "Authorization", "Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-ID")
CORS_EXPOSED_HEADERS = ("Mcp-Session-Id", "X-Request-ID")


def json_response(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status=status, mimetype="application/json")


def accepted() -> Response:
    """202 with no body: what a notification (or a response to nothing we asked) gets."""
    response = Response(status=202)
    del response.headers["Content-Type"]
    return response


def refusal(status: int, code: str, message: str) -> Response:
    """An HTTP-level refusal, still as a JSON-RPC error (id null) so MCP clients can show its message;
    `data.code` is the code the rest of our protocol uses for the same refusal."""
    error = RpcError(INVALID_REQUEST, message, {"code": code})
    return json_response(error_message(None, error), status)


def rpc_error(error: RpcError, request_id: str | int | None, modern: bool) -> Response:
    return json_response(error_message(request_id, error), http_status(error, modern))


def mcp_blueprint(service: str, tools: Sequence[Tool], resources: Sequence[Resource], service_token: str | None,
                  allowed_origins: AllowedOrigins | None = None) -> Blueprint:
    """`/mcp` for one service's tool and resource table; `service` names the URI authority
    (`cortex://<service>/...`) and the server (`cortex-<service>`)."""
    server = McpServer(service, tools, resources)
    origins = parse_allowed_origins(None) if allowed_origins is None else allowed_origins
    bp = Blueprint("mcp", __name__)
    cors_origins = cors_patterns(origins)
    if cors_origins:
        allow_cross_origin(bp, PATH, cors_origins, methods=("GET", "POST", "DELETE"),
                           request_headers=CORS_REQUEST_HEADERS, exposed_headers=CORS_EXPOSED_HEADERS)

    @bp.before_request
    def _guard() -> Response | None:
        if not origin_allowed(request.headers.get("Origin"), origins):
            return refusal(403, "forbidden", f"Origin {request.headers['Origin'][:100]!r} is not allowed")
        if is_preflight():
            return None  # a browser never sends the token on a preflight; the request it asks about needs it
        try:
            require_service_token(service_token)
        except Unauthorized as error:
            response = refusal(error.status, error.code, error.message)
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return None

    @bp.route(PATH, methods=["GET", "DELETE", "PUT", "PATCH"])
    def not_allowed() -> Response:
        response = refusal(405, "method_not_allowed", "this MCP endpoint is stateless: POST each JSON-RPC message; "
                                                      "there is no session stream to GET and no session to DELETE")
        response.headers["Allow"] = "POST"
        return response

    @bp.post(PATH)
    def endpoint() -> Response:
        accept = request.accept_mimetypes
        if accept and not accept["application/json"]:
            return refusal(406, "not_acceptable", "the answer is application/json; the Accept header must allow it")
        if request.mimetype != "application/json":
            return refusal(415, "unsupported_media_type", "send the body as application/json")
        try:
            raw = parse_json(read_body())
        except (RequestEntityTooLarge, PayloadTooLarge):
            return refusal(413, "payload_too_large", "request body is too large")
        except (ValueError, RecursionError):
            return rpc_error(RpcError(PARSE_ERROR, "Parse error: the body is not valid JSON"), None, modern=False)
        return batch(raw) if isinstance(raw, list) else single(raw)

    def single(raw: Any) -> Response:
        if is_response(raw):
            # We never send the client requests, so a response answers nothing. The stateless revision
            # forbids clients to send one; the handshake era lets it through.
            if request.headers.get(VERSION_HEADER) in MODERN_VERSIONS:
                return rpc_error(RpcError(INVALID_REQUEST, "a client must not send JSON-RPC responses", status=400),
                                 None, modern=True)
            return accepted()
        try:
            message = parse_message(raw)
            if message.is_notification:
                check_notification_version(request.headers)
                return accepted()
            era = route(message, request.headers)
        except RpcError as error:
            return rpc_error(error, error.id, modern=False)
        body, status = answer(message, era)
        return json_response(body, status)

    def batch(raw: list) -> Response:
        # Only 2025-03-26 allowed an array of messages; 2025-06-18 removed batching.
        version = request.headers.get(VERSION_HEADER)
        if version is not None and version != BATCH_VERSION:
            return rpc_error(RpcError(INVALID_REQUEST, f"JSON-RPC batches are not allowed in protocol version "
                                                       f"{version[:30]}; send one message per POST", status=400),
                             None, modern=False)
        if not raw:
            return rpc_error(RpcError(INVALID_REQUEST, "an empty batch", status=400), None, modern=False)
        if len(raw) > MAX_BATCH:
            return rpc_error(RpcError(INVALID_REQUEST, f"a JSON-RPC batch may hold at most {MAX_BATCH} messages, "
                                                       f"got {len(raw)}; send them in smaller batches", status=400,
                                      data={"limit": MAX_BATCH}), None, modern=False)
        replies = []
        for item in raw:
            if is_response(item):
                continue
            try:
                message = parse_message(item)
            except RpcError as error:
                replies.append(error_message(error.id, error))
                continue
            if message.is_notification:
                continue
            if message.method == "initialize":
                in_batch = RpcError(INVALID_REQUEST, "initialize must not be part of a JSON-RPC batch")
                replies.append(error_message(message.id, in_batch))
                continue
            replies.append(answer(message, Era(BATCH_VERSION, modern=False))[0])
        return json_response(replies) if replies else accepted()

    def answer(message: Message, era: Era) -> tuple[dict[str, Any], int]:
        log.debug("MCP %s (%s)", message.method, era.version)
        try:
            result = server.handle(message, era, CallContext(request_id=current_request_id()))
        except RpcError as error:
            return error_message(message.id, error), http_status(error, era.modern)
        return result_message(message.id, result), 200

    return bp
