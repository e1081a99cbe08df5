"""The MCP methods over one service's tool and resource tables, free of HTTP: `McpServer.handle` takes a
parsed request and its era and returns the result object, or raises `RpcError`.

Tools and resources are the very `Tool` and `Resource` entries behind `/tool/{name}` and
`/resource/{path}`: the same names, descriptions, JSON Schemas, argument validation and functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from common import VERSION
from common.errors import NotFound, ServiceError
from common.mcp.eras import META_SERVER_INFO, SUPPORTED_VERSIONS, Era, negotiate
from common.mcp.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    RESOURCE_NOT_FOUND,
    Message,
    RpcError,
)
from common.mcp.uris import resolve, template_name, uri_template
from common.server.body import parse_arguments
from common.server.protocol import CallContext, Resource, Tool, run_tool

log = logging.getLogger(__name__)

# A resource read is answered in one JSON body, so it is bounded; the SSE `/resource/...` has no bound.
MAX_RESOURCE_ITEMS = 10_000
# Tool and template lists change only with a deploy; a read is the user's data, fresh every time.
LIST_TTL_MS = 60_000
CAPABILITIES = {"tools": {"listChanged": False}, "resources": {"subscribe": False, "listChanged": False}}
LEGACY_ONLY = {"initialize", "ping"}
MODERN_ONLY = {"server/discover"}
CACHEABLE = {"server/discover": "public", "tools/list": "public", "resources/list": "public",
             "resources/templates/list": "public", "resources/read": "private"}


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class McpServer:
    """One service's tools and resources as MCP methods."""

    def __init__(self, service: str, tools: Sequence[Tool], resources: Sequence[Resource]) -> None:
        self.service = service
        self.tools = {tool.name: tool for tool in tools}
        self.resources = list(resources)
        self.info = {"name": f"cortex-{service}", "version": VERSION}
        self._methods: dict[str, Callable[[dict[str, Any], Era, CallContext], dict[str, Any]]] = {
            "initialize": self.initialize,
            "ping": lambda params, era, ctx: {},
            "server/discover": self.discover,
            "tools/list": self.list_tools,
            "tools/call": self.call_tool,
            "resources/list": self.list_resources,
            "resources/templates/list": self.list_templates,
            "resources/read": self.read_resource,
        }

    def handle(self, message: Message, era: Era, ctx: CallContext) -> dict[str, Any]:
        method = self._methods.get(message.method)
        if method is None or message.method in (LEGACY_ONLY if era.modern else MODERN_ONLY):
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {message.method[:100]} (protocol version "
                           f"{era.version}; this server speaks {', '.join(SUPPORTED_VERSIONS)})")
        try:
            result = method(message.params, era, ctx)
        except RpcError:
            raise
        except Exception:
            log.exception("MCP method %s failed", message.method)
            raise RpcError(INTERNAL_ERROR, "internal error; see the service log") from None
        if not era.modern:
            return result
        result = {"resultType": "complete", **result, "_meta": {META_SERVER_INFO: self.info}}
        scope = CACHEABLE.get(message.method)
        if scope is not None:
            result["ttlMs"] = 0 if scope == "private" else LIST_TTL_MS
            result["cacheScope"] = scope
        return result

    # --- lifecycle --------------------------------------------------------------------------------

    def initialize(self, params: dict[str, Any], era: Era, ctx: CallContext) -> dict[str, Any]:
        requested = params.get("protocolVersion")
        if not isinstance(requested, str):
            raise RpcError(INVALID_PARAMS, "initialize needs params.protocolVersion (a string)")
        # Stateless: nothing is remembered, so no Mcp-Session-Id is issued and any worker serves the next call.
        return {"protocolVersion": negotiate(requested), "capabilities": CAPABILITIES, "serverInfo": self.info}

    def discover(self, params: dict[str, Any], era: Era, ctx: CallContext) -> dict[str, Any]:
        return {"supportedVersions": list(SUPPORTED_VERSIONS), "capabilities": CAPABILITIES}

    # --- tools ------------------------------------------------------------------------------------

    def list_tools(self, params: dict[str, Any], era: Era, ctx: CallContext) -> dict[str, Any]:
        no_cursor(params)
        described = [tool.describe() for tool in self.tools.values()]
        return {"tools": [{"name": d["name"], "description": d["description"], "inputSchema": d["input_schema"]}
                          for d in described]}

    def call_tool(self, params: dict[str, Any], era: Era, ctx: CallContext) -> dict[str, Any]:
        name, arguments = params.get("name"), params.get("arguments", {})
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "tools/call needs params.name (a string)")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, "params.arguments must be an object")
        tool = self.tools.get(name)
        if tool is None:
            raise RpcError(INVALID_PARAMS, f"Unknown tool: {name[:100]}", {"name": name[:100]})
        # Everything that goes wrong once the tool is known, bad arguments included, is a tool execution
        # error: a result the model can read and correct, with the same error body `/tool/{name}` sends.
        try:
            result = run_tool(tool, parse_arguments(tool.arguments, arguments), ctx)
        except ServiceError as error:
            body = error.to_body()
            return {"content": [{"type": "text", "text": dumps(body)}], "structuredContent": body, "isError": True}
        return {"content": [{"type": "text", "text": dumps(result)}], "structuredContent": result, "isError": False}

    # --- resources --------------------------------------------------------------------------------

    def list_resources(self, params: dict[str, Any], era: Era, ctx: CallContext) -> dict[str, Any]:
        no_cursor(params)
        # Every resource here belongs to a user or a conversation, so there is nothing to list without
        # parameters; the templates say how to name one.
        return {"resources": []}

    def list_templates(self, params: dict[str, Any], era: Era, ctx: CallContext) -> dict[str, Any]:
        no_cursor(params)
        return {"resourceTemplates": [
            {"uriTemplate": uri_template(self.service, r), "name": template_name(r), "description": r.description,
             "mimeType": "application/json"} for r in self.resources]}

    def read_resource(self, params: dict[str, Any], era: Era, ctx: CallContext) -> dict[str, Any]:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise RpcError(INVALID_PARAMS, "resources/read needs params.uri (a string)")
        try:
            resource, arguments = resolve(self.service, self.resources, uri)
            items: list[dict] = []
            for item in resource.func(arguments, ctx):
                if len(items) == MAX_RESOURCE_ITEMS:
                    raise RpcError(INVALID_PARAMS, f"{uri[:200]} has more than {MAX_RESOURCE_ITEMS} items, too many "
                                   "for one read; narrow it (a /limit/{n} form) or stream it from /resource/",
                                   {"uri": uri})
                items.append(item)
        except ServiceError as error:
            raise resource_error(error, uri, era) from None
        return {"contents": [{"uri": uri, "mimeType": "application/json", "text": dumps(items)}]}


def resource_error(error: ServiceError, uri: str, era: Era) -> RpcError:
    """A refusal from the resource table as a JSON-RPC error that keeps our code in `data`."""
    data = {"uri": uri, **error.to_body()}
    if isinstance(error, NotFound):
        code = INVALID_PARAMS if era.modern else RESOURCE_NOT_FOUND
        return RpcError(code, f"Resource not found: {error.message}", data)
    if error.status < 500:
        return RpcError(INVALID_PARAMS, error.message, data)
    return RpcError(INTERNAL_ERROR, error.message, data)


def no_cursor(params: dict[str, Any]) -> None:
    # Lists come in one page, so no cursor was ever issued and any cursor is one we cannot honour.
    if params.get("cursor") is not None:
        raise RpcError(INVALID_PARAMS, "invalid cursor: this server returns every list in one page")

