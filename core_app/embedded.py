"""Single-process mode (`CORTEX_DISTRIBUTED_MODE=false`): Memory and Cognition run inside the Core
process and are reached through the same client and protocol, over an in-process WSGI adapter.

The apps are loaded by name, not imported, so the services still never import each other.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask
from werkzeug.utils import import_string

from common.client import ServiceClient, WSGIAdapter

MEMORY_APP = "memory_service.app:create_app"
COGNITION_APP = "cognition_service.app:create_app"


def embedded_values(values: Mapping[str, str]) -> dict[str, str]:
    """The settings the in-process Memory and Cognition start with. CORTEX_IN_PROCESS: they have no port of
    their own, so they need no SERVICE_TOKEN and no Host check, whatever HOST the Core listens on."""
    return {**values, "CORTEX_IN_PROCESS": "true"}


def mount_embedded_services(settings: object, memory: ServiceClient, cognition: ServiceClient) -> tuple[Flask, ...]:
    """Build Memory and Cognition in this process, route the clients to them, and return the two apps."""
    values: Mapping[str, str] = settings.values  # type: ignore[attr-defined]
    overrides = {**embedded_values(values), "MEMORY_SERVICE_URL": memory.base_url}
    memory_app = import_string(MEMORY_APP)(overrides)
    # Cognition's own health monitor would probe Memory before the in-process route below is mounted,
    # find nothing listening and open its circuit; in one process Memory cannot be down on its own.
    cognition_app = import_string(COGNITION_APP)({**overrides, "HEALTH_INTERVAL_SECONDS": "0"})
    to_memory = WSGIAdapter(memory_app)
    memory.transport.mount(memory.base_url + "/", to_memory)
    cognition.transport.mount(cognition.base_url + "/", WSGIAdapter(cognition_app))
    # Cognition's own client to Memory must take the in-process route too.
    cognition_app.extensions["cortex.memory"].transport.mount(memory.base_url + "/", to_memory)
    # Its embedding worker likewise starts only now that Memory is reachable.
    indexer = cognition_app.extensions.get("cortex.indexer")
    if indexer is not None:
        indexer.start()
    return memory_app, cognition_app
