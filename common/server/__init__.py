"""The server half: a Flask app that serves a table of typed tools and resources (SPEC §3)."""

from common.server.auth import bearer_token, install_host_check
from common.server.body import parse_arguments, read_json_object
from common.server.health import health_blueprint
from common.server.http_errors import register_error_handlers
from common.server.protocol import CallContext, Resource, Tool, protocol_blueprint
from common.server.stats import stats_blueprint
from common.server.webapp import base_app

__all__ = [
    "CallContext",
    "Resource",
    "Tool",
    "base_app",
    "bearer_token",
    "health_blueprint",
    "install_host_check",
    "parse_arguments",
    "protocol_blueprint",
    "read_json_object",
    "register_error_handlers",
    "stats_blueprint",
]
