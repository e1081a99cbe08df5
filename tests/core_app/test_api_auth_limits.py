"""Sign-in limits of the Core App (/v1/auth/*): per client address, per account, and which address is the
client's when proxies are (not) trusted. Each test builds its own app with low limits."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from core_app.app import create_app
from tests.core_app.accounts import PASSWORD, unique_email
from tests.core_app.api_calls import assert_error
from tests.core_app.embedded_config import core_config

GENEROUS = "100000/minute"


def limited_client(tmp_path: Path, **limits: str) -> FlaskClient:
    settings = {"AUTH_RATE_LIMIT_PER_ADDRESS": GENEROUS, "AUTH_RATE_LIMIT_PER_ACCOUNT": GENEROUS, **limits}
    return create_app(core_config(tmp_path, **settings)).test_client()


def register(client: FlaskClient, address: str = "10.9.9.9") -> str:
    email = unique_email("Ida")
    response = client.post("/v1/auth/register", json={"email": email, "name": "Ida", "password": PASSWORD},
                           environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 201, response.get_json()
    return email


def login(client: FlaskClient, email: str, address: str, password: str = "wrong password!",
          headers: dict[str, str] | None = None):
    return client.post("/v1/auth/login", json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address}, headers=headers or {})


def assert_limited(response, per: str, window_seconds: int) -> None:
    error = assert_error(response, 429, "too_many_requests")
    assert error["details"]["per"] == per
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window_seconds
    assert error["details"]["retry_after"] == retry_after


def test_one_address_is_limited_and_others_are_not(tmp_path):
    client = limited_client(tmp_path, AUTH_RATE_LIMIT_PER_ADDRESS="3/minute")
    email = register(client)

    assert [login(client, email, "10.0.0.1").status_code for _ in range(3)] == [401, 401, 401]
    assert_limited(login(client, email, "10.0.0.1"), "address", 60)
    # Even the right password waits: the limit is on requests from the address, before any check.
    assert_limited(login(client, email, "10.0.0.1", password=PASSWORD), "address", 60)
    assert login(client, email, "10.0.0.2", password=PASSWORD).status_code == 200


def test_every_auth_route_is_limited_per_address(tmp_path):
    client = limited_client(tmp_path, AUTH_RATE_LIMIT_PER_ADDRESS="2/minute")
    address = {"REMOTE_ADDR": "10.0.0.3"}
    for _ in range(2):
        client.get("/v1/auth/verify", environ_base=address)
        client.post("/v1/auth/register", json={}, environ_base=address)

    assert_limited(client.get("/v1/auth/verify", environ_base=address), "address", 60)
    assert_limited(client.post("/v1/auth/register", json={}, environ_base=address), "address", 60)


def test_x_forwarded_for_is_not_trusted_by_default(tmp_path):
    client = limited_client(tmp_path, AUTH_RATE_LIMIT_PER_ADDRESS="2/minute")
    email = register(client)

    statuses = [login(client, email, "10.0.0.4", headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
                for n in range(3)]

    assert statuses == [401, 401, 429]


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(tmp_path):
    client = limited_client(tmp_path, AUTH_RATE_LIMIT_PER_ADDRESS="2/minute", TRUSTED_PROXIES="1")
    email = register(client)
    proxy = "10.0.0.5"

    def via_proxy(client_address: str, forwarded: str | None = None):
        return login(client, email, proxy, headers={"X-Forwarded-For": forwarded or client_address})

    assert [via_proxy("203.0.113.1").status_code for _ in range(2)] == [401, 401]
    assert_limited(via_proxy("203.0.113.1"), "address", 60)
    assert via_proxy("203.0.113.2").status_code == 401
    # A client cannot pick its address by prepending one: only the address the proxy appended counts.
    assert_limited(via_proxy("x", forwarded="198.51.100.7, 203.0.113.1"), "address", 60)


def test_one_account_is_limited_from_any_address_and_in_any_spelling(tmp_path):
    client = limited_client(tmp_path, AUTH_RATE_LIMIT_PER_ACCOUNT="4/hour")
    email = register(client)
    local, domain = email.split("@")
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in local)
    spellings = [email, email.upper(), f"  {email}", f"{fullwidth}@{domain}"]

    statuses = [login(client, spelling, f"10.1.0.{n}").status_code for n, spelling in enumerate(spellings)]

    assert statuses == [401, 401, 401, 401]
    assert_limited(login(client, email, "10.1.0.99"), "account", 3600)
    assert_limited(login(client, email, "10.1.0.98", password=PASSWORD), "account", 3600)
    other = register(client)
    assert login(client, other, "10.1.0.1", password=PASSWORD).status_code == 200


def test_form_logins_count_against_the_same_account(tmp_path):
    client = limited_client(tmp_path, AUTH_RATE_LIMIT_PER_ACCOUNT="2/minute")
    email = register(client)
    form = {"username": email.upper(), "password": "wrong password!"}

    assert login(client, email, "10.2.0.1").status_code == 401
    assert client.post("/v1/auth/login", data=form, environ_base={"REMOTE_ADDR": "10.2.0.2"}).status_code == 401
    limited = client.post("/v1/auth/login", data=form, environ_base={"REMOTE_ADDR": "10.2.0.3"})
    assert_limited(limited, "account", 60)


@pytest.mark.parametrize("body", [{}, {"email": 42, "password": "x"}, {"password": "x"}])
def test_logins_naming_no_account_are_refused_as_bad_requests_not_counted(tmp_path, body):
    client = limited_client(tmp_path, AUTH_RATE_LIMIT_PER_ACCOUNT="1/minute")

    for _ in range(3):
        assert_error(client.post("/v1/auth/login", json=body), 400, "invalid_arguments")


@pytest.mark.parametrize(("name", "value"), [
    ("AUTH_RATE_LIMIT_PER_ADDRESS", "ten per minute"),
    ("AUTH_RATE_LIMIT_PER_ACCOUNT", "5/fortnight"),
    ("RATELIMIT_STORAGE_URI", "bogus://nowhere"),
    ("TRUSTED_PROXIES", "-1"),
    ("SEARCH_CONCURRENCY_PER_USER", "0"),
    ("SIGN_IN_CONCURRENCY", "0"),
    ("SIGN_IN_WAIT_SECONDS", "forever"),
])
def test_bad_limit_settings_stop_the_app_naming_the_variable(tmp_path, capsys, name, value):
    with pytest.raises(SystemExit):
        create_app(core_config(tmp_path, **{name: value}))
    assert name in capsys.readouterr().err


def test_sign_ins_in_progress_are_bounded_so_they_cannot_take_every_connection(tmp_path):
    app = create_app(core_config(tmp_path, SIGN_IN_CONCURRENCY="2", SIGN_IN_WAIT_SECONDS="0.2"))
    client = app.test_client()
    email = register(client)
    memory = app.extensions["cortex"].memory.client
    real_call, release = memory.call_tool, threading.Event()

    def slow_logins(tool: str, arguments: dict, **kwargs):
        if tool == "authenticate_user":
            release.wait(10)
        return real_call(tool, arguments, **kwargs)

    memory.call_tool = slow_logins
    holders = [threading.Thread(target=login, args=(app.test_client(), email, f"10.3.0.{n}", PASSWORD))
               for n in range(2)]
    for holder in holders:
        holder.start()
    slots = app.extensions["cortex.sign_ins"]
    deadline = time.monotonic() + 5
    while slots.running < 2:
        assert time.monotonic() < deadline, "the two logins never started"
        time.sleep(0.01)
    try:
        started = time.monotonic()
        refused = login(client, email, "10.3.0.9", PASSWORD)
        assert 0.2 <= time.monotonic() - started < 5  # it waited its turn, briefly, then gave up
        assert_error(refused, 429, "too_many_requests")
        assert refused.headers["Retry-After"] == "1"
        assert_error(client.post("/v1/auth/register", json={"email": unique_email("Late"), "name": "Late",
                                                            "password": PASSWORD}), 429, "too_many_requests")
    finally:
        release.set()
        for holder in holders:
            holder.join(10)
    assert slots.running == 0
    assert login(client, email, "10.3.0.9", PASSWORD).status_code == 200
