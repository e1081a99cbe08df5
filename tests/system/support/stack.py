"""The three services as real processes on free loopback ports, wired together in distributed mode: one of
each (`start_stack`), or several Core and Memory processes on PostgreSQL and Redis (`start_scaled_stack`)."""

from __future__ import annotations

import signal
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.engines import redis_url, require_engine
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


@dataclass
class ScaledStack:
    """Core processes and Memory processes sharing one PostgreSQL schema and one Redis key prefix, with one
    Cognition. Core `i` calls Memory `i % len(memories)`; Cognition reads through the last Memory."""

    cores: list[ServiceProcess]
    memories: list[ServiceProcess]
    cognition: ServiceProcess
    schema: str
    redis_url: str
    redis_prefix: str

    def stop(self) -> None:
        """Stop every process (the Cores first, so nobody waits on their open connections; each kind
        signalled together), then drop the schema and delete the prefix's keys."""
        from tests.memory_service.backends import drop_schema

        for kind in (self.cores, [self.cognition, *self.memories]):
            for proc in kind:
                if proc.running():
                    proc.signal_group(signal.SIGTERM)
            for proc in kind:
                proc.stop()
        drop_schema(self.schema)
        delete_redis_keys(self.redis_url, self.redis_prefix)


def delete_redis_keys(url: str, prefix: str) -> int:
    """Delete every key under `prefix:`; the number deleted."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


def start_scaled_stack(tmp: Path, cores: int = 2, memories: int = 2, core_env: dict[str, str] | None = None,
                       memory_env: dict[str, str] | None = None, common_env: dict[str, str] | None = None,
                       ) -> ScaledStack:
    """Start `memories` Memory processes on a new PostgreSQL schema, one Cognition and `cores` Core processes
    on Redis under a new key prefix, each kind started together (skipped by `require_engine` when
    PostgreSQL or Redis is unreachable). Stop it with `ScaledStack.stop`."""
    # Imported here, so the callers of `start_stack` do not load the Memory store's code.
    from tests.memory_service.backends import create_schema, drop_schema

    redis = require_engine("Redis", redis_url())
    schema, database_url = create_schema("cortex_scaled")
    prefix = f"scaled-{uuid.uuid4().hex[:10]}"
    memory_ports = [free_port() for _ in range(memories)]
    shared = {"SERVICE_TOKEN": SERVICE_TOKEN, "HEALTH_INTERVAL_SECONDS": "0.5", "BREAKER_RESET_SECONDS": "1",
              "BREAKER_FAIL_MAX": "3", "CLIENT_RETRIES": "1", "CLIENT_RETRY_MAX_SECONDS": "1",
              **(common_env or {})}
    stack = ScaledStack([], [], None, schema, redis, prefix)  # type: ignore[arg-type] - filled below
    try:
        stack.memories = [ServiceProcess("memory_service.app:create_app()", {
            **shared, "DATABASE_URL": database_url, "DB_POOL_SIZE": "4", **(memory_env or {})},
            tmp / f"memory-{i + 1}.log", port=port).start(wait=False) for i, port in enumerate(memory_ports)]
        for proc in stack.memories:
            proc.wait_healthy()
        stack.cognition = ServiceProcess("cognition_service.app:create_app()", {
            **shared, "MEMORY_SERVICE_URL": stack.memories[-1].url}, tmp / "cognition.log").start(wait=False)
        stack.cores = [ServiceProcess("core_app.app:create_app()", {
            **shared, "CORTEX_DISTRIBUTED_MODE": "true", "JWT_SECRET": JWT_SECRET, "SSE_HEARTBEAT_SECONDS": "1",
            "MEMORY_SERVICE_URL": stack.memories[i % memories].url, "COGNITION_SERVICE_URL": stack.cognition.url,
            "REDIS_URL": redis, "REDIS_KEY_PREFIX": prefix, **GENEROUS_AUTH_LIMITS, **(core_env or {})},
            tmp / f"core-{chr(ord('a') + i)}.log").start(wait=False) for i in range(cores)]
        for proc in [stack.cognition, *stack.cores]:
            proc.wait_healthy()
    except BaseException:
        for proc in [*stack.cores, *stack.memories]:
            proc.stop()
        if stack.cognition is not None:
            stack.cognition.stop()
        drop_schema(schema)
        delete_redis_keys(redis, prefix)
        raise
    return stack
