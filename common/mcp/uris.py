"""The MCP resource URIs of a service's resource table: `cortex://<service>/<path>?<query>`.

A resource's path template (`history/{user_id}/limit/{n}`) becomes an RFC 6570 URI template whose
remaining parameters are form-style query expansions (`cortex://memory/conversation/{conversation_id}
{?user_id}`), and a concrete URI resolves back to the resource and its validated parameters with the
same pydantic model `GET /resource/...` uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import BaseModel

from common.errors import InvalidArguments, NotFound
from common.server.body import parse_arguments
from common.server.protocol import Resource

SCHEME = "cortex"


def path_variables(resource: Resource) -> list[str]:
    return [part[1:-1] for part in resource.path_template.split("/") if part.startswith("{") and part.endswith("}")]


def query_variables(resource: Resource) -> list[str]:
    """The model's fields that are not in the path, in declaration order."""
    in_path = set(path_variables(resource))
    return [name for name in resource.params.model_fields if name not in in_path]


def uri_template(service: str, resource: Resource) -> str:
    query = query_variables(resource)
    expansion = "{?" + ",".join(query) + "}" if query else ""
    return f"{SCHEME}://{service}/{resource.path_template}{expansion}"


def template_name(resource: Resource) -> str:
    """A stable identifier from the template's literal segments: `history/{user_id}/limit/{n}` is
    `history_limit`."""
    literal = [part for part in resource.path_template.split("/") if not part.startswith("{")]
    return "_".join(literal) or resource.path_template


def resolve(service: str, resources: Sequence[Resource], uri: str) -> tuple[Resource, BaseModel]:
    """The resource a URI names and its validated parameters. `NotFound` when no template matches;
    `InvalidArguments` when one does but its parameters are wrong."""
    parts = urlsplit(uri)
    if parts.scheme != SCHEME or parts.netloc != service or parts.fragment:
        raise NotFound(f"no resource at {uri[:200]!r}: this server's URIs start with {SCHEME}://{service}/")
    path = unquote(parts.path.lstrip("/"))
    for resource in resources:
        found = resource.match(path)
        if found is not None:
            break
    else:
        raise NotFound(f"no resource at {uri[:200]!r}")
    query: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in query:
            raise InvalidArguments(f"query parameter given twice: {key}")
        query[key] = value
    clash = set(query) & set(found)
    if clash:
        raise InvalidArguments(f"parameter given twice: {', '.join(sorted(clash))}")
    return resource, parse_arguments(resource.params, {**query, **found})
