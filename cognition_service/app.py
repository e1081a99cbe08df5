"""The Cognition Service: context retrieval and conversation analysis, reading through Memory (SPEC §5)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask

from cognition_service.analysis import Analyst
from cognition_service.config import load_config
from cognition_service.context import Retriever
from cognition_service.embeddings import open_embedder
from cognition_service.indexer import Indexer
from cognition_service.memory import MemoryReader
from cognition_service.offload import CpuOffload
from cognition_service.resources import build_resources
from cognition_service.tools import build_tools
from common.client import DependencyMonitor, ServiceClient
from common.config import ConfigError, exit_on_config_error
from common.mcp import mcp_blueprint
from common.server import base_app, health_blueprint, install_host_check, protocol_blueprint


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the app from the environment, with `config` overriding individual variables."""
    try:
        settings = load_config({**os.environ, **(config or {})})
    except ConfigError as error:
        exit_on_config_error(error)
    app = base_app(__name__, service="cognition", max_body_bytes=settings.max_body_bytes,
                   log_level=settings.log_level, log_format=settings.log_format, metrics=settings.metrics)
    memory = ServiceClient("memory", settings.memory_service_url, token=settings.service_token,
                           settings=settings.client)
    monitor = DependencyMonitor({"memory": memory}, settings.health_interval)
    if not settings.in_process:  # reached only through the Core's own client, never by a browser
        install_host_check(app, settings.service_token, settings.allowed_hosts)
    app.extensions["cortex.settings"] = settings
    app.extensions["cortex.memory"] = memory
    app.extensions["cortex.monitor"] = monitor
    reader = MemoryReader(memory)
    offload = CpuOffload(settings.analysis_threads).run
    analyst = Analyst(reader, settings.analysis_limits, offload)
    embedder = open_embedder(settings)
    retriever = Retriever(reader, embedder, offload)
    tools, resources = build_tools(retriever, analyst), build_resources(retriever, analyst)
    app.register_blueprint(protocol_blueprint(tools, resources, settings.service_token))
    app.register_blueprint(mcp_blueprint("cognition", tools, resources, settings.service_token,
                                         settings.mcp_allowed_origins))
    app.register_blueprint(health_blueprint("cognition", monitor=monitor))
    monitor.start()
    if embedder is not None:
        indexer = Indexer(memory, embedder, batch=settings.embedding_batch,
                          poll_seconds=settings.embedding_poll_seconds, offload=offload)
        app.extensions["cortex.indexer"] = indexer
        if not settings.in_process:  # the Core starts it once Memory's in-process route is mounted
            indexer.start()
    return app
