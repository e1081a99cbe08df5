"""The Core App: the client-facing API (SPEC §6) and the output stream (SPEC §7)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask
from werkzeug.routing import BaseConverter

from common import metrics
from common.config import ConfigError, exit_on_config_error
from common.server import base_app, health_blueprint, stats_blueprint
from common.server.metrics import adopt_live_metrics
from core_app.config import load_config
from core_app.cors import install_cors
from core_app.limits import install_limits
from core_app.services import build_services
from core_app.streams import stream_capacity
from core_app.views import accounts, cognition, conversations, messages, stream, web, workspaces


class IdConverter(BaseConverter):
    """Ids in paths: anything else is simply not a route (404), never a bad argument downstream."""

    regex = r"[A-Za-z0-9_-]{1,64}"


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the app from the environment, with `config` overriding individual variables."""
    try:
        settings = load_config({**os.environ, **(config or {})})
    except ConfigError as error:
        exit_on_config_error(error)
    app = base_app(__name__, service="core", max_body_bytes=settings.max_body_bytes, log_level=settings.log_level,
                   log_format=settings.log_format, metrics=settings.metrics)
    app.url_map.converters["id"] = IdConverter
    cortex = build_services(settings)
    app.extensions["cortex"] = cortex
    metrics.streams_limit(stream_capacity(settings.worker_connections))
    for embedded in cortex.embedded:  # single-process mode: this /metrics also reports Memory's database size
        adopt_live_metrics(app, embedded)
    for blueprint in (accounts.bp, workspaces.bp, conversations.bp, messages.bp, stream.bp, cognition.bp, web.bp):
        app.register_blueprint(blueprint)
    install_cors(app, settings.cors_allowed_origins)  # before the limits: a preflight is not a sign-in
    install_limits(app, settings, auth=accounts.bp)
    app.register_blueprint(health_blueprint("core", monitor=cortex.monitor))
    if settings.debug_stats:
        app.register_blueprint(stats_blueprint(lambda: {"subscribers": cortex.events.subscriber_count(),
                                                        "replies": cortex.replier.pool.stats()}))
    cortex.monitor.start()
    return app
