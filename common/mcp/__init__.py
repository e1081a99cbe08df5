"""The official Model Context Protocol (Streamable HTTP) over a service's tools and resources."""

from common.mcp.origins import DEFAULT_ALLOWED_ORIGINS, parse_allowed_origins
from common.mcp.server import mcp_blueprint

__all__ = ["DEFAULT_ALLOWED_ORIGINS", "mcp_blueprint", "parse_allowed_origins"]
