"""Settings for the whole system run in-process: the Core App with the real Memory and Cognition apps behind
the requests adapter (`CORTEX_DISTRIBUTED_MODE=false`), each test module on its own SQLite file."""

from __future__ import annotations

from pathlib import Path

JWT_SECRET = "core-api-tests-secret-" + "0123456789abcdef" * 3  # 64+ bytes: fine for HS512 too
GENEROUS_AUTH_LIMITS = {"AUTH_RATE_LIMIT_PER_ADDRESS": "100000/minute", "AUTH_RATE_LIMIT_PER_ACCOUNT": "100000/minute"}


def core_config(directory: Path, **overrides: str) -> dict[str, str]:
    """Settings for an embedded Core App on its own SQLite file; no background health probes."""
    return {
        "DATABASE_URL": f"sqlite:///{directory}/m.db",
        "HEALTH_INTERVAL_SECONDS": "0",
        # No embedding worker in the test process, and context by words only: retrieval by meaning is
        # tested in tests/cognition_service and tests/system/test_retrieval*.py.
        "EMBEDDINGS": "off",
        "JWT_SECRET": JWT_SECRET,
        "SSE_HEARTBEAT_SECONDS": "0.2",
        "SERVICE_TOKEN": "",
        "CORTEX_DISTRIBUTED_MODE": "false",
        "LLM_PROVIDER": "builtin",
        "REGISTRATION_ENABLED": "true",
        # Every test signs users up from one address: limits far above what the tests send.
        **GENEROUS_AUTH_LIMITS,
        "SIGN_IN_WAIT_SECONDS": "0",  # refusals at once: the tests of limits need no pacing
        **overrides,
    }
