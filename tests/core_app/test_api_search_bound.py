"""Searches, context and analysis cost the whole database whatever the caller owns: each user may have
only SEARCH_CONCURRENCY_PER_USER of them running at once, and the next is refused at once (429)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from core_app.app import create_app
from tests.core_app.accounts import sign_up
from tests.core_app.api_calls import assert_error
from tests.core_app.embedded_config import core_config

COSTLY = [("/v1/search", {"query": "anything"}), ("/v1/context", {"query": "anything"}),
          ("/v1/analyze", {"conversation_id": "c1", "analysis_type": "summary"})]


def test_a_users_searches_beyond_the_bound_are_refused_and_others_are_not(tmp_path, monkeypatch):
    app = create_app(core_config(tmp_path, SEARCH_CONCURRENCY_PER_USER="2"))
    client = app.test_client()
    greedy, other = sign_up(client, "Greedy"), sign_up(client, "Other")
    release = threading.Event()

    def slow_for_greedy(tool: str, arguments: dict, **kwargs: Any) -> Any:
        if arguments["user_id"] == greedy.id:
            release.wait(10)
        return {"results": [], "count": 0, "query": arguments["query"]}

    monkeypatch.setattr(app.extensions["cortex"].cognition.client, "call_tool", slow_for_greedy)
    answers: list[int] = []
    holders = [threading.Thread(target=lambda: answers.append(
        app.test_client().post("/v1/search", json={"query": "q"}, headers=greedy.headers).status_code))
        for _ in range(2)]
    for holder in holders:
        holder.start()
    slots = app.extensions["cortex.searches"]
    deadline = time.monotonic() + 5
    while slots.held(greedy.id) < 2:
        assert time.monotonic() < deadline, "the two searches never started"
        time.sleep(0.01)

    try:
        for path, body in COSTLY:
            refused = client.post(path, json=body, headers=greedy.headers)
            error = assert_error(refused, 429, "too_many_requests")
            assert refused.headers["Retry-After"] == "1" and error["details"]["limit"] == 2
        assert client.post("/v1/search", json={"query": "q"}, headers=other.headers).status_code == 200
    finally:
        release.set()
        for holder in holders:
            holder.join(10)

    assert answers == [200, 200]
    assert slots.held(greedy.id) == 0
    assert client.post("/v1/search", json={"query": "q"}, headers=greedy.headers).status_code == 200


def test_a_failing_search_gives_its_slot_back(tmp_path, monkeypatch):
    app = create_app(core_config(tmp_path, SEARCH_CONCURRENCY_PER_USER="1"))
    client = app.test_client()
    user = sign_up(client, "Unlucky")

    def broken(tool: str, arguments: dict, **kwargs: Any) -> Any:
        raise RuntimeError("cognition exploded")

    monkeypatch.setattr(app.extensions["cortex"].cognition.client, "call_tool", broken)
    for _ in range(3):
        assert_error(client.post("/v1/search", json={"query": "q"}, headers=user.headers), 500, "tool_execution_error")
    assert app.extensions["cortex.searches"].held(user.id) == 0


@pytest.mark.parametrize("path", ["/v1/search", "/v1/context", "/v1/analyze"])
def test_bad_requests_do_not_take_a_slot(tmp_path, path):
    app = create_app(core_config(tmp_path, SEARCH_CONCURRENCY_PER_USER="1"))
    client = app.test_client()
    user = sign_up(client, "Sloppy")

    release = app.extensions["cortex.searches"].take(user.id)  # the user's only slot is busy
    try:
        # Validated first: a bad request is its own 400, never the 429 of a slot it would have needed.
        assert_error(client.post(path, json={"nonsense": 1}, headers=user.headers), 400, "invalid_arguments")
    finally:
        release()
    assert app.extensions["cortex.searches"].held(user.id) == 0
