"""The Memory Service: the only owner of durable data (SPEC §4)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask

from common import metrics
from common.config import ConfigError, UnusableSetting, exit_on_config_error
from common.mcp import mcp_blueprint
from common.server import base_app, health_blueprint, install_host_check, protocol_blueprint
from common.server.metrics import add_live_metrics
from memory_service.config import load_config
from memory_service.hashing import PasswordHashing
from memory_service.resources import build_resources
from memory_service.store import StoreUnavailable, open_store
from memory_service.store.vectors import VectorIndex
from memory_service.tools import build_tools


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the app from the environment, with `config` overriding individual variables."""
    try:
        settings = load_config({**os.environ, **(config or {})})
    except ConfigError as error:
        exit_on_config_error(error)
    app = base_app(__name__, service="memory", max_body_bytes=settings.max_body_bytes,
                   log_level=settings.log_level, log_format=settings.log_format, metrics=settings.metrics)
    try:
        store = open_store(settings)
    except StoreUnavailable as exc:  # one line naming the setting, as `python -m memory_service` says it
        exit_on_config_error(UnusableSetting("DATABASE_URL", str(exc)))
    if not settings.in_process:  # reached only through the Core's own client, never by a browser
        install_host_check(app, settings.service_token, settings.allowed_hosts)
    hashing = PasswordHashing(settings.password_hash_threads, settings.password_hash_queue)
    app.extensions["cortex.settings"] = settings
    app.extensions["cortex.store"] = store
    app.extensions["cortex.close"] = store.close  # by gunicorn.conf.py's worker_exit
    index = VectorIndex(settings.vector_cache_mb * 1024 * 1024)
    tools, resources = build_tools(store, hashing, index, settings.max_page_bytes), build_resources(store)
    app.register_blueprint(protocol_blueprint(tools, resources, settings.service_token))
    app.register_blueprint(mcp_blueprint("memory", tools, resources, settings.service_token,
                                         settings.mcp_allowed_origins))
    app.register_blueprint(health_blueprint("memory", self_check=store.ping))
    add_live_metrics(app, metrics.database_size(settings.database.backend, store.size_bytes))
    return app
