"""The official Model Context Protocol (Streamable HTTP) over a service's tools and resources."""

from common.mcp.origins import DEFAULT_ALLOWED_ORIGINS, AllowedOrigins, parse_allowed_origins
from common.mcp.server import mcp_blueprint

__all__ = ["DEFAULT_ALLOWED_ORIGINS", "AllowedOrigins", "mcp_blueprint", "parse_allowed_origins"]
