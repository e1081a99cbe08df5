"""Every 429 the Core App gives for one of its limits is counted in `cortex_rate_limit_refusals{service="core"}`
under the lower-case name of the setting that sets the limit, and nothing else is."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from core_app.app import create_app
from tests.core_app.accounts import Account, sign_up
from tests.core_app.api_calls import assert_error, new_conversation
from tests.core_app.embedded_config import core_config
from tests.core_app.output_stream import listening, stream_url
from tests.core_app.test_api_auth_limits import limited_client, login, register

REFUSALS = "cortex_rate_limit_refusals_total"
LIMITS = ("auth_rate_limit_per_address", "auth_rate_limit_per_account", "sign_in_concurrency",
          "search_concurrency_per_user", "streams_per_user", "replies_per_user", "reply_queue")


def refusals() -> dict[str, float]:
    return {limit: REGISTRY.get_sample_value(REFUSALS, {"service": "core", "limit": limit}) or 0.0
            for limit in LIMITS}


def counted_since(before: dict[str, float]) -> dict[str, float]:
    """The refusals counted since `before`, by limit, leaving out the limits that counted none."""
    return {limit: count - before[limit] for limit, count in refusals().items() if count != before[limit]}


# --- sign-in limits --------------------------------------------------------------------------------------


def test_a_login_flood_from_one_address_is_counted_per_refusal(tmp_path):
    client = limited_client(tmp_path, AUTH_RATE_LIMIT_PER_ADDRESS="3/minute")
    email = register(client, "10.7.0.1")
    before = refusals()

    statuses = [login(client, email, "10.7.0.2").status_code for _ in range(8)]

    assert statuses == [401] * 3 + [429] * 5
    assert counted_since(before) == {"auth_rate_limit_per_address": 5}


def test_a_login_flood_on_one_account_from_many_addresses_is_counted_per_account(tmp_path):
    client = limited_client(tmp_path, AUTH_RATE_LIMIT_PER_ACCOUNT="2/minute")
    email = register(client, "10.7.1.1")
    before = refusals()

    statuses = [login(client, email, f"10.7.1.{n}").status_code for n in range(10, 16)]

    assert statuses == [401] * 2 + [429] * 4
    assert counted_since(before) == {"auth_rate_limit_per_account": 4}


# --- one system with every other limit at 1 --------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return create_app(core_config(tmp_path_factory.mktemp("metrics-limits"), SIGN_IN_CONCURRENCY="1",
                                  SEARCH_CONCURRENCY_PER_USER="1", STREAMS_PER_USER="1", REPLIES_PER_USER="1"))


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def rita(client: FlaskClient) -> Account:
    return sign_up(client, "Rita")


def test_a_sign_in_with_every_sign_in_slot_busy_is_counted(app, client, rita):
    before = refusals()

    with app.extensions["cortex.sign_ins"].hold():  # another sign-in is being checked
        refused = client.post("/v1/auth/login", json={"email": rita.email, "password": "whatever it is"})

    assert_error(refused, 429, "too_many_requests")
    assert counted_since(before) == {"sign_in_concurrency": 1}


@pytest.mark.parametrize("path", ["/v1/search", "/v1/context"])
def test_a_search_beyond_the_users_bound_is_counted(app, client, rita, path):
    before = refusals()
    release = app.extensions["cortex.searches"].take(rita.id)  # the user's only search is running
    try:
        refused = client.post(path, json={"query": "anything"}, headers=rita.headers)
    finally:
        release()
    allowed = client.post(path, json={"query": "anything"}, headers=rita.headers)

    assert_error(refused, 429, "too_many_requests")
    assert allowed.status_code == 200
    assert counted_since(before) == {"search_concurrency_per_user": 1}


def test_a_stream_beyond_the_users_bound_is_counted(client, rita):
    conversation = new_conversation(client, rita)
    before = refusals()

    with listening(client, conversation["id"], headers=rita.headers) as stream:
        stream.event()
        refused = client.get(stream_url(conversation["id"]), headers=rita.headers, buffered=False)
        refused.close()

    assert_error(refused, 429, "too_many_requests")
    assert counted_since(before) == {"streams_per_user": 1}


def test_a_message_beyond_the_users_replies_in_progress_is_counted(app, client, rita):
    conversation = new_conversation(client, rita)
    url = f"/v1/conversation/{conversation['id']}/messages"
    before = refusals()

    with app.extensions["cortex"].replier.admit(rita.id):  # the user's only reply is in progress
        refused = client.post(url, json={"content": "One more thing"}, headers=rita.headers)

    error = assert_error(refused, 429, "too_many_requests")
    assert error["details"]["limit"] == "replies_per_user"
    assert counted_since(before) == {"replies_per_user": 1}


def test_answers_that_are_no_refusal_count_nothing(client, rita):
    conversation = new_conversation(client, rita)
    before = refusals()

    assert client.post("/v1/auth/login", json={"email": rita.email, "password": "not the password"}).status_code == 401
    assert client.post("/v1/search", json={"query": "anything"}, headers=rita.headers).status_code == 200
    assert client.get(f"/v1/conversation/{conversation['id']}/messages", headers=rita.headers).status_code == 200

    assert counted_since(before) == {}
