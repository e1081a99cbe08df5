"""When a service refuses to start without a token, which secrets are too weak, and the Host check of the
open mode."""

from __future__ import annotations

import secrets

import pytest

from common.config import ConfigError, Env
from common.server import base_app, install_host_check
from common.server.auth import host_name, is_loopback_host, service_token_setting, weak_secret_problem

STRONG = "Zq3-vT9pL0xW8mNc4RbY7sKd2Hf6Ju1A"


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("myhost", False), ("", False),
])
def test_which_bind_addresses_stay_on_this_machine(host, loopback):
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize("secret, weak", [
    ("a", True), ("a" * 32, True), ("ab" * 16, True), ("abcdefg" * 5, True),  # 7 different characters
    ("system-test-secret-0123456789-abcdefghij", False), (STRONG, False), (STRONG[:31], True),
    ("a" * 17 + STRONG[:15], True),  # one character in more than half
])
def test_weak_secrets(secret, weak):
    assert (weak_secret_problem(secret) is not None) is weak


def test_random_secrets_pass():
    assert all(weak_secret_problem(secrets.token_hex(16)) is None for _ in range(2000))
    assert all(weak_secret_problem(secrets.token_urlsafe(32)) is None for _ in range(2000))


@pytest.mark.parametrize("values, problem", [
    ({"HOST": "0.0.0.0"}, "is required when HOST is '0.0.0.0'"),
    ({"CORTEX_ENV": "production"}, "is required when CORTEX_ENV is production"),
    ({"HOST": "0.0.0.0", "SERVICE_TOKEN": "x"}, "at least 32 characters"),
    ({"CORTEX_ENV": "production", "SERVICE_TOKEN": "x" * 40}, "too repetitive"),
])
def test_a_token_is_required_and_strong_beyond_loopback_or_in_production(values, problem):
    env = Env(values)
    with pytest.raises(ConfigError, match="SERVICE_TOKEN") as raised:
        service_token_setting(env, host=env.str("HOST", "127.0.0.1") or "", environment=env.str("CORTEX_ENV",
                                                                                                 "development") or "")
    assert problem in str(raised.value)


@pytest.mark.parametrize("values, host, environment, in_process", [
    ({}, "127.0.0.1", "development", False),  # open localhost mode
    ({"SERVICE_TOKEN": "short"}, "localhost", "development", False),  # weak is the user's choice on loopback
    ({}, "0.0.0.0", "production", True),  # inside the Core's process: no port
    ({"SERVICE_TOKEN": STRONG}, "0.0.0.0", "production", False),
])
def test_when_a_token_is_not_required_or_is_fine(values, host, environment, in_process):
    assert service_token_setting(Env(values), host=host, environment=environment,
                                 in_process=in_process) == values.get("SERVICE_TOKEN")


@pytest.mark.parametrize("header, name", [
    ("localhost:9000", "localhost"), ("LOCALHOST", "localhost"), ("127.0.0.1:80", "127.0.0.1"),
    ("[::1]:9000", "::1"), ("[::1]", "::1"), ("example.com.", "example.com"), ("", ""),
])
def test_host_names(header, name):
    assert host_name(header) == name


def open_app(token: str | None, allowed: tuple[str, ...] = ()):
    app = base_app(__name__, service="test", max_body_bytes=1024, log_level="WARNING")
    install_host_check(app, token, allowed)
    app.add_url_rule("/health", "health", lambda: {"status": "ok"})
    return app.test_client()


@pytest.mark.parametrize("host, status", [
    ("localhost:9000", 200), ("127.0.0.1:1", 200), ("[::1]:9000", 200), ("memory.internal:9000", 200),
    ("attacker.example:9000", 421), ("attacker.example", 421), ("127.0.0.1.attacker.example", 421),
    ("localhost.attacker.example", 421), ("", 421),
])
def test_an_open_service_answers_only_local_and_allowed_host_names(host, status):
    response = open_app(None, ("memory.internal",)).get("/health", headers={"Host": host})
    assert response.status_code == status
    if status == 421:
        assert response.get_json()["error"]["code"] == "misdirected_request"


def test_a_service_with_a_token_answers_any_host_name():
    assert open_app("t" + STRONG).get("/health", headers={"Host": "memory:9000"}).status_code == 200
