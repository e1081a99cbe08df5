"""Server side of the tool/resource protocol (SPEC §3): a table of typed tools and resources becomes
`POST /tool/{name}`, `GET /tools`, `GET /resource/{path}` (SSE) and `GET /resources`."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel

from common import headers
from common.errors import (
    InvalidArguments,
    InvalidRequest,
    NotFound,
    ServiceError,
    ToolExecutionError,
    ToolNotFound,
)
from common.request_ids import current_request_id
from common.server.auth import require_service_token
from common.server.body import parse_arguments, read_json_object
from common.sse import finite_stream, sse_response

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = headers.IDEMPOTENCY_KEY
_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


@dataclass(frozen=True)
class CallContext:
    """What a tool may know about the call beyond its arguments."""

    request_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    func: Callable[[Any, CallContext], dict]

    def describe(self) -> dict:
        return {"name": self.name, "description": self.description,
                "input_schema": self.arguments.model_json_schema()}


@dataclass(frozen=True)
class Resource:
    """A streamed resource. `func` must check access before it returns its iterable, so that refusals
    are ordinary JSON errors rather than in-band stream errors."""

    path_template: str
    description: str
    params: type[BaseModel]
    func: Callable[[Any, CallContext], Iterable[dict]]

    def match(self, path: str) -> dict[str, str] | None:
        want, got = self.path_template.split("/"), path.split("/")
        if len(want) != len(got):
            return None
        found: dict[str, str] = {}
        for pattern, part in zip(want, got, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                if not part:
                    return None
                found[pattern[1:-1]] = part
            elif pattern != part:
                return None
        return found

    def describe(self) -> dict:
        return {"path_template": self.path_template, "description": self.description,
                "params": self.params.model_json_schema()}


def call_context() -> CallContext:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not _KEY.match(key):
        raise InvalidRequest("Idempotency-Key must be 8-128 characters of letters, digits, '._:-'")
    return CallContext(request_id=current_request_id(), idempotency_key=key)


def run_tool(tool: Tool, arguments: Any, ctx: CallContext) -> dict:
    """Run a tool; anything but our own errors is logged and reported without internals."""
    try:
        return tool.func(arguments, ctx)
    except ServiceError:
        raise
    except Exception:
        log.exception("tool %s failed", tool.name)
        raise ToolExecutionError(f"tool '{tool.name}' failed; see the service log") from None


def protocol_blueprint(tools: Sequence[Tool], resources: Sequence[Resource],
                       service_token: str | None) -> Blueprint:
    """Build the protocol endpoints for one service's tool and resource table."""
    by_name = {tool.name: tool for tool in tools}
    bp = Blueprint("protocol", __name__)

    @bp.before_request
    def _authenticate() -> None:
        require_service_token(service_token)

    @bp.post("/tool/<path:name>")
    def call_tool(name: str) -> Response:
        tool = by_name.get(name)
        if tool is None:
            raise ToolNotFound(f"unknown tool '{name[:100]}'")
        body = read_json_object()
        if set(body) - {"arguments"} or not isinstance(body.get("arguments"), dict):
            raise InvalidRequest('body must be {"arguments": {...}} and nothing else')
        ctx = call_context()
        arguments = parse_arguments(tool.arguments, body["arguments"])
        return jsonify({"result": run_tool(tool, arguments, ctx)})

    @bp.get("/tools")
    def list_tools() -> Response:
        return jsonify({"tools": [tool.describe() for tool in tools]})

    @bp.get("/resource/<path:path>")
    def read_resource(path: str) -> Response:
        for resource in resources:
            found = resource.match(path)
            if found is not None:
                break
        else:
            raise NotFound(f"unknown resource '{path[:200]}'")
        query = {key: request.args.get(key) for key in request.args}
        clash = set(query) & set(found)
        if clash:
            raise InvalidArguments(f"parameter given twice: {', '.join(sorted(clash))}")
        params = parse_arguments(resource.params, {**query, **found})
        items = resource.func(params, call_context())
        return sse_response(finite_stream(items))

    @bp.get("/resources")
    def list_resources() -> Response:
        return jsonify({"resources": [resource.describe() for resource in resources]})

    return bp
