"""Deployed carelessly, the services refuse to start instead of running open: no SERVICE_TOKEN when bound
beyond loopback or in production, or a weak secret in production, stops the process with one line naming
the variable. In the open localhost mode, a request whose Host is not this machine (a DNS-rebinding web
page) is refused on every route."""

from __future__ import annotations

import sys

import pytest
import requests

from tests.system.support.harness import Process, ServiceProcess, free_port, run
from tests.system.support.polling import wait_until

STRONG = "Zq3-vT9pL0xW8mNc4RbY7sKd2Hf6Ju1A"
JWT = "system-test-secret-0123456789-abcdefghij"


@pytest.mark.parametrize("module, env, variable", [
    ("memory_service", {"HOST": "0.0.0.0"}, "SERVICE_TOKEN"),
    ("cognition_service", {"HOST": "0.0.0.0"}, "SERVICE_TOKEN"),
    ("memory_service", {"CORTEX_ENV": "production"}, "SERVICE_TOKEN"),
    ("cognition_service", {"CORTEX_ENV": "production"}, "SERVICE_TOKEN"),
    ("memory_service", {"CORTEX_ENV": "production", "SERVICE_TOKEN": "a"}, "SERVICE_TOKEN"),
    ("cognition_service", {"HOST": "0.0.0.0", "SERVICE_TOKEN": "a" * 32}, "SERVICE_TOKEN"),
    ("core_app", {"CORTEX_ENV": "production", "JWT_SECRET": "a" * 32}, "JWT_SECRET"),
    ("core_app", {"CORTEX_ENV": "production", "JWT_SECRET": JWT, "CORTEX_DISTRIBUTED_MODE": "true"},
     "SERVICE_TOKEN"),
    ("core_app", {"CORTEX_ENV": "production", "JWT_SECRET": JWT, "CORTEX_DISTRIBUTED_MODE": "true",
                  "SERVICE_TOKEN": "ab" * 16}, "SERVICE_TOKEN"),
], ids=lambda value: value if isinstance(value, str) else "-".join(f"{k}={v[:8]}" for k, v in value.items()))
def test_an_unguarded_or_weakly_guarded_deployment_does_not_start(tmp_path, module, env, variable):
    ports = {"PORT": str(free_port()), "MEMORY_SERVICE_PORT": str(free_port()),
             "COGNITION_SERVICE_PORT": str(free_port()), "DATABASE_URL": f"sqlite:///{tmp_path}/m.db"}
    done = run([sys.executable, "-m", module], {**ports, **env},
               unset=("SERVICE_TOKEN", "JWT_SECRET", "HOST", "CORTEX_ENV"), timeout=20)
    assert done.returncode == 3
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and variable in lines[0] and "Traceback" not in done.stderr, done.stderr


def test_production_with_strong_secrets_starts(tmp_path):
    memory = ServiceProcess("memory_service.app:create_app()", {
        "CORTEX_ENV": "production", "SERVICE_TOKEN": STRONG, "DATABASE_URL": f"sqlite:///{tmp_path}/m.db"},
        tmp_path / "memory.log")
    try:
        memory.start()
        assert requests.get(f"{memory.url}/health", timeout=5, headers={"Host": "memory:9000"}).status_code == 200
    finally:
        memory.stop()


def test_the_single_process_image_starts_on_all_interfaces_without_a_service_token(tmp_path):
    # The Dockerfile's default: HOST=0.0.0.0 and `python -m core_app`. The embedded Memory and Cognition have
    # no port of their own, so they need no SERVICE_TOKEN; only the Core listens, behind user tokens.
    port = free_port()
    core = Process([sys.executable, "-m", "core_app"], {
        "HOST": "0.0.0.0", "PORT": str(port), "CORTEX_DISTRIBUTED_MODE": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path}/m.db", "HEALTH_INTERVAL_SECONDS": "0"}, tmp_path / "core.log",
        unset=("SERVICE_TOKEN", "JWT_SECRET", "CORTEX_ENV")).start()

    def healthy() -> bool:
        assert core.running(), core.log_text()
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=1).json()["status"] == "healthy"
        except (requests.RequestException, ValueError):
            return False

    try:
        wait_until(healthy, 20, interval=0.2, message="the single-process Core on 0.0.0.0 to be healthy")
    finally:
        core.stop()


@pytest.fixture(scope="module")
def open_memory(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("open")
    proc = ServiceProcess("memory_service.app:create_app()", {
        "SERVICE_TOKEN": "", "DATABASE_URL": f"sqlite:///{tmp}/m.db", "ALLOWED_HOSTS": "memory.internal"},
        tmp / "memory.log").start()
    yield proc
    proc.stop()


ROUTES = [("GET", "/health", None), ("GET", "/tools", None), ("GET", "/resources", None),
          ("POST", "/tool/list_conversations", {"arguments": {"user_id": "u"}}),
          ("GET", "/resource/history/u/limit/5", None),
          ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})]


@pytest.mark.parametrize("method, path, body", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_an_open_memory_refuses_a_foreign_host_name_on_every_route(open_memory, method, path, body):
    headers = {"Accept": "application/json, text/event-stream"}
    foreign = requests.request(method, f"{open_memory.url}{path}", json=body, timeout=5,
                               headers={**headers, "Host": f"rebound.attacker.example:{open_memory.port}"})
    assert foreign.status_code == 421, foreign.text
    assert foreign.json()["error"]["code"] == "misdirected_request"
    for host in (f"127.0.0.1:{open_memory.port}", f"localhost:{open_memory.port}", "[::1]", "memory.internal"):
        local = requests.request(method, f"{open_memory.url}{path}", json=body, timeout=5,
                                 headers={**headers, "Host": host})
        assert local.status_code != 421, (host, local.text)
