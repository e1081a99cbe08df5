"""Which MCP protocol revision a request speaks, and the checks each era puts on its headers.

Handshake-era ("legacy") revisions negotiate a version in `initialize` and then send it in the
`MCP-Protocol-Version` header; the stateless revision (2026-07-28, "modern") carries the version and the
client's capabilities in every request's `params._meta` and mirrors the method and name in headers.
One endpoint serves both: a request is modern when its `_meta` names a version or its header names a
version that is not a supported handshake version; everything else is legacy.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from common.mcp.jsonrpc import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
    Message,
    RpcError,
)

MODERN_VERSIONS = ("2026-07-28",)
LEGACY_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")  # newest first: the first is offered back
SUPPORTED_VERSIONS = (*MODERN_VERSIONS, *LEGACY_VERSIONS)
# What a request without the header speaks (the header arrived in 2025-06-18), and the only revision
# whose transport allows a JSON array of messages in one POST.
HEADERLESS_VERSION = "2025-03-26"
BATCH_VERSION = "2025-03-26"

VERSION_HEADER = "MCP-Protocol-Version"
METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
# The body field each name-bearing method mirrors into `Mcp-Name`.
NAME_FIELDS = {"tools/call": "name", "resources/read": "uri", "prompts/get": "name"}

_SENTINEL = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$", re.DOTALL)


class Headers(Protocol):
    """What is read from the request headers (werkzeug's `Headers` is one); names are case-insensitive."""

    def get(self, key: str) -> str | None: ...

    def getlist(self, key: str) -> list[str]: ...


@dataclass(frozen=True)
class Era:
    version: str
    modern: bool


def http_status(error: RpcError, modern: bool) -> int:
    """The HTTP status for a JSON-RPC error. The stateless revision maps codes to statuses (unknown
    method 404, bad params or headers 400); the handshake era answers dispatch errors with 200, because
    there a 404 means "your session is gone"."""
    if error.status is not None:
        return error.status
    if not modern:
        return 400 if error.code in (PARSE_ERROR, INVALID_REQUEST) else 200
    if error.code == METHOD_NOT_FOUND:
        return 404
    if error.code in (PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS, HEADER_MISMATCH, UNSUPPORTED_PROTOCOL_VERSION):
        return 400
    return 200


def unsupported_version(requested: Any, request_id: str | int | None = None) -> RpcError:
    return RpcError(UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version",
                    {"supported": list(SUPPORTED_VERSIONS), "requested": requested}, status=400, id=request_id)


def negotiate(requested: Any) -> str:
    """The version to answer `initialize` with: the client's if we speak it, else our newest handshake one."""
    return requested if requested in LEGACY_VERSIONS else LEGACY_VERSIONS[0]


def decode_header_value(value: str | None) -> str | None:
    """Undo the `=?base64?...?=` sentinel a client uses for values that are not plain ASCII; a corrupt
    sentinel decodes to None so it can never match a body value."""
    if value is None:
        return None
    match = _SENTINEL.match(value)
    if match is None:
        return value
    try:
        raw = base64.b64decode(match["payload"], validate=True)
        # Only the canonical encoding counts, so one value has exactly one spelling in a header.
        if base64.b64encode(raw).decode("ascii") != match["payload"]:
            return None
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def check_notification_version(headers: Headers) -> None:
    """A notification names no version in its body; only a header naming one we do not speak is refused."""
    version = headers.get(VERSION_HEADER)
    if version is not None and version not in SUPPORTED_VERSIONS:
        raise unsupported_version(version)


def route(message: Message, headers: Headers) -> Era:
    """The era of a request, after every check its era puts on the envelope and headers."""
    header = headers.get(VERSION_HEADER)
    meta = message.params.get("_meta")
    declares = isinstance(meta, Mapping) and META_VERSION in meta
    if not declares and (header is None or header in LEGACY_VERSIONS):
        return Era(header or HEADERLESS_VERSION, modern=False)
    if not declares and header not in MODERN_VERSIONS:
        raise unsupported_version(header, message.id)
    return Era(_check_modern(message, headers, meta), modern=True)


def _check_modern(message: Message, headers: Headers, meta: Any) -> str:
    """The stateless revision's ladder: `_meta` fields, then headers against the body, then the version."""
    def reject(code: int, text: str) -> RpcError:
        return RpcError(code, text, status=400, id=message.id)

    if not isinstance(meta, Mapping):
        raise reject(INVALID_PARAMS, f"params._meta must be an object carrying {META_VERSION!r} and "
                                     f"{META_CAPABILITIES!r}")
    missing = [key for key in (META_VERSION, META_CAPABILITIES) if key not in meta]
    if missing:
        raise reject(INVALID_PARAMS, f"params._meta is missing {', '.join(missing)}")
    if not isinstance(meta[META_CAPABILITIES], Mapping):
        raise reject(INVALID_PARAMS, f"{META_CAPABILITIES} must be an object")
    for name in (VERSION_HEADER, METHOD_HEADER, NAME_HEADER):
        if len(headers.getlist(name)) > 1:
            raise reject(HEADER_MISMATCH, f"Header mismatch: {name} appears more than once")
    version = meta[META_VERSION]
    if headers.get(VERSION_HEADER) != version:
        raise reject(HEADER_MISMATCH, f"Header mismatch: {VERSION_HEADER} does not match params._meta {META_VERSION}")
    if headers.get(METHOD_HEADER) != message.method:
        raise reject(HEADER_MISMATCH, f"Header mismatch: {METHOD_HEADER} does not match the body's method")
    name_field = NAME_FIELDS.get(message.method)
    body_name = message.params.get(name_field) if name_field else None
    if body_name is not None and decode_header_value(headers.get(NAME_HEADER)) != body_name:
        raise reject(HEADER_MISMATCH, f"Header mismatch: {NAME_HEADER} does not match params.{name_field}")
    if not isinstance(version, str):
        raise reject(INVALID_PARAMS, f"{META_VERSION} must be a string")
    if version not in MODERN_VERSIONS:
        raise unsupported_version(version, message.id)
    return version
