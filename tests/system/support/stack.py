"""The three services as real processes, wired together, plus small API helpers for system tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import requests

from tests.system.support.harness import ServiceProcess, free_port

JWT_SECRET = "system-test-secret-0123456789-abcdefghij"
# Every test signs its users up from 127.0.0.1: sign-in limits far above what any test sends.
GENEROUS_AUTH_LIMITS = {"AUTH_RATE_LIMIT_PER_ADDRESS": "100000/minute", "AUTH_RATE_LIMIT_PER_ACCOUNT": "100000/minute"}


@dataclass
class Stack:
    memory: ServiceProcess
    cognition: ServiceProcess
    core: ServiceProcess

    def all(self) -> list[ServiceProcess]:
        return [self.core, self.cognition, self.memory]

    def stop(self) -> None:
        for proc in self.all():
            proc.stop()


def start_stack(tmp: Path, core_env: dict[str, str] | None = None, common_env: dict[str, str] | None = None,
                ) -> Stack:
    memory_port, cognition_port = free_port(), free_port()
    shared = {"SERVICE_TOKEN": "stack-token-0001", "HEALTH_INTERVAL_SECONDS": "0.5", "BREAKER_RESET_SECONDS": "1",
              "BREAKER_FAIL_MAX": "3", "CLIENT_RETRIES": "1", "CLIENT_RETRY_MAX_SECONDS": "1",
              "MEMORY_SERVICE_URL": f"http://127.0.0.1:{memory_port}",
              "COGNITION_SERVICE_URL": f"http://127.0.0.1:{cognition_port}", **(common_env or {})}
    memory = ServiceProcess("memory_service.app:create_app()", {**shared, "DATABASE_URL": f"sqlite:///{tmp}/m.db"},
                            tmp / "memory.log", port=memory_port).start()
    cognition = ServiceProcess("cognition_service.app:create_app()", shared, tmp / "cognition.log",
                               port=cognition_port).start()
    core = ServiceProcess("core_app.app:create_app()", {
        **shared, "CORTEX_DISTRIBUTED_MODE": "true", "JWT_SECRET": JWT_SECRET, "SSE_HEARTBEAT_SECONDS": "1",
        **GENEROUS_AUTH_LIMITS, **(core_env or {})}, tmp / "core.log").start()
    return Stack(memory, cognition, core)


class Api:
    """A signed-in user of the Core App."""

    def __init__(self, base: str, email: str, password: str = "password-123", name: str = "Tester") -> None:
        self.base = base
        registered = requests.post(f"{base}/v1/auth/register", json={"email": email, "name": name,
                                                                     "password": password}, timeout=10)
        assert registered.status_code == 201, registered.text
        login = requests.post(f"{base}/v1/auth/login", json={"email": email, "password": password}, timeout=10)
        assert login.status_code == 200, login.text
        self.token = login.json()["access_token"]
        self.user = login.json()["user"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 15)
        return requests.request(method, f"{self.base}{path}", headers={**self.headers, **kwargs.pop("headers", {})},
                                **kwargs)

    def conversation(self, topic: str = "Talk") -> str:
        ws = self.request("POST", "/v1/workspace", json={"name": "Space"}).json()["workspace"]
        conv = self.request("POST", "/v1/conversation", json={"workspace_id": ws["id"], "topic": topic})
        assert conv.status_code == 201, conv.text
        return conv.json()["conversation"]["id"]

    def stream_url(self, conversation_id: str) -> str:
        return f"{self.base}/v1/conversation/{conversation_id}/messages/stream"
