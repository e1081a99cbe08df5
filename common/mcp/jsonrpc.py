"""JSON-RPC 2.0 as the Model Context Protocol uses it: the error codes, the error that carries one, and
reading one message out of a decoded request body."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Handshake-era "resource not found"; the stateless revision uses INVALID_PARAMS instead.
RESOURCE_NOT_FOUND = -32002
# Defined by the stateless revision (2026-07-28) for the Streamable HTTP transport.
HEADER_MISMATCH = -32020
UNSUPPORTED_PROTOCOL_VERSION = -32022


class RpcError(Exception):
    """A JSON-RPC error. `status` forces an HTTP status whatever the era (a broken envelope is always
    400); when None the era decides (see `common.mcp.eras.http_status`). `id` is the request id when it
    could be read, so the error can be matched to its request."""

    def __init__(self, code: int, message: str, data: Any = None, *, status: int | None = None,
                 id: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.status = status
        self.id = id

    def to_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(frozen=True)
class Message:
    """One JSON-RPC request (with an id) or notification (without) sent by the client."""

    method: str
    id: str | int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    has_id: bool = False

    @property
    def is_notification(self) -> bool:
        return not self.has_id


def _valid_id(value: Any) -> bool:
    # MCP ids are strings or integers, never null; a bool is an int to Python but not to JSON.
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def is_response(raw: Any) -> bool:
    """A JSON-RPC response object (the client answering a server request), which carries no method."""
    return isinstance(raw, dict) and "method" not in raw and ("result" in raw or "error" in raw) and "id" in raw


def parse_message(raw: Any) -> Message:
    """Read one request or notification, or raise the `RpcError` that says why it is not one."""
    if not isinstance(raw, dict):
        raise RpcError(INVALID_REQUEST, "a JSON-RPC message must be an object", status=400)
    has_id = "id" in raw
    request_id = raw.get("id")
    if has_id and not _valid_id(request_id):
        raise RpcError(INVALID_REQUEST, "the request id must be a string or an integer", status=400)
    if raw.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'the message must carry "jsonrpc": "2.0"', status=400, id=request_id)
    method = raw.get("method")
    if not isinstance(method, str) or not method:
        raise RpcError(INVALID_REQUEST, "the message must name a method", status=400, id=request_id)
    params = raw.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "params must be an object", status=400, id=request_id)
    return Message(method=method, id=request_id, params=params, has_id=has_id)


def result_message(request_id: str | int | None, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_message(request_id: str | int | None, error: RpcError) -> dict[str, Any]:
    # `id` stays on the wire as null when the request's id could not be read (JSON-RPC 2.0 §5).
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_error()}
