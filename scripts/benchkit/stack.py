"""A Memory + Cognition + Core stack for the benchmarks, and a signed-in user on it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import requests

from benchkit.procs import Service, free_port

JWT_SECRET = "benchmark-secret-0123456789-abcdefghijkl"


class Stack:
    def __init__(self, log_dir: Path, name: str, core_env: dict[str, str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        """`env` goes to all three services, `core_env` to the Core App only."""
        memory_port, cognition_port = free_port(), free_port()
        shared = {"MEMORY_SERVICE_URL": f"http://127.0.0.1:{memory_port}",
                  "COGNITION_SERVICE_URL": f"http://127.0.0.1:{cognition_port}",
                  "HEALTH_INTERVAL_SECONDS": "0.5", "BREAKER_RESET_SECONDS": "30", "BREAKER_FAIL_MAX": "3",
                  **(env or {})}
        self.memory = Service("memory_service.app:create_app()",
                              {**shared, "DATABASE_URL": f"sqlite:///{log_dir}/{name}.db"}, log_dir, f"{name}-memory")
        self.memory.port = memory_port
        self.cognition = Service("cognition_service.app:create_app()", shared, log_dir, f"{name}-cognition")
        self.cognition.port = cognition_port
        self.core = Service("core_app.app:create_app()", {
            **shared, "CORTEX_DISTRIBUTED_MODE": "true", "JWT_SECRET": JWT_SECRET, "SSE_HEARTBEAT_SECONDS": "15",
            # One benchmark user holds every stream (10,000 in the capacity run), and the benchmarks sign
            # hundreds of users up from one address.
            "STREAMS_PER_USER": "1000000",
            "AUTH_RATE_LIMIT_PER_ADDRESS": "100000/minute", "AUTH_RATE_LIMIT_PER_ACCOUNT": "100000/minute",
            **(core_env or {})}, log_dir, f"{name}-core")

    def start(self) -> Stack:
        self.memory.start()
        self.cognition.start()
        self.core.start()
        return self

    def stop(self) -> None:
        # Signal all three first, then wait: their graceful shutdowns overlap instead of adding up.
        for service in (self.core, self.cognition, self.memory):
            service.send_signal()
        for service in (self.core, self.cognition, self.memory):
            service.stop()


class User:
    """Registers, logs in and creates conversations through the Core App's public API."""

    def __init__(self, core_url: str) -> None:
        self.base = core_url
        self.email = f"bench-{uuid.uuid4().hex[:10]}@bench.local"
        requests.post(f"{core_url}/v1/auth/register", json={"email": self.email, "name": "Bench",
                                                           "password": "bench-password"}, timeout=10)
        login = requests.post(f"{core_url}/v1/auth/login", json={"email": self.email, "password": "bench-password"},
                              timeout=10).json()
        self.token = login["access_token"]
        self.user_id = login["user"]["id"]
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.workspace = requests.post(f"{core_url}/v1/workspace", json={"name": "bench"}, headers=self.headers,
                                       timeout=10).json()["workspace"]["id"]

    def conversation(self) -> str:
        created = requests.post(f"{self.base}/v1/conversation", json={"workspace_id": self.workspace, "topic": "b"},
                                headers=self.headers, timeout=10)
        return created.json()["conversation"]["id"]

    def stream_path(self, conversation_id: str) -> str:
        return f"/v1/conversation/{conversation_id}/messages/stream?access_token={self.token}"

    def message_path(self, conversation_id: str) -> str:
        return f"/v1/conversation/{conversation_id}/messages"


def content_of(data: str) -> str:
    try:
        return json.loads(data).get("content", "")
    except ValueError:
        return ""
