"""The three services as real processes on free loopback ports, wired together in distributed mode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.system.support.harness import ServiceProcess, free_port

JWT_SECRET = "system-test-secret-0123456789-abcdefghij"
SERVICE_TOKEN = "stack-token-0001"
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
    shared = {"SERVICE_TOKEN": SERVICE_TOKEN, "HEALTH_INTERVAL_SECONDS": "0.5", "BREAKER_RESET_SECONDS": "1",
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
