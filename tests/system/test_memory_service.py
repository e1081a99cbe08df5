"""The Memory Service as a real gunicorn + gevent process, driven through the `common` client."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from common.client import ClientSettings, RetryPolicy, ServiceClient
from common.errors import ServiceUnavailable, Unauthorized
from tests.system.support.polling import wait_until

APP = "memory_service.app:create_app()"


@pytest.fixture
def memory(spawn, tmp_path):
    return spawn(APP, {"DATABASE_URL": f"sqlite:///{tmp_path}/memory.db", "SERVICE_TOKEN": ""}, "memory")


def make_client(url: str, token: str | None = None, **settings) -> ServiceClient:
    retry = RetryPolicy(attempts=2, backoff_factor=0.05, jitter=0.0, max_elapsed=2.0)
    return ServiceClient("memory", url, token=token, settings=ClientSettings(retry=retry, **settings))


def seed(client: ServiceClient) -> tuple[str, str]:
    user = client.call_tool("create_user", {"email": "sys@example.com", "name": "Sys", "password": "password1"})
    user_id = user["user"]["id"]
    ws = client.call_tool("create_workspace", {"user_id": user_id, "name": "System"})["workspace"]
    conv = client.call_tool("create_conversation", {"user_id": user_id, "workspace_id": ws["id"],
                                                    "topic": "Two hundred"})["conversation"]
    return user_id, conv["id"]


def store(client: ServiceClient, user_id: str, conv_id: str, content: str, key: str | None = None) -> dict:
    return client.call_tool("store_input", {"user_id": user_id, "input_data": {
        "conversation_id": conv_id, "content": content}}, idempotency_key=key)


def test_store_and_stream_two_hundred_messages(memory):
    client = make_client(memory.url)
    user_id, conv_id = seed(client)
    # Ten concurrent writers: the per-conversation sequence must still be gap-free and unique.
    with ThreadPoolExecutor(10) as pool:
        stored = list(pool.map(lambda i: store(client, user_id, conv_id, f"message number {i}"), range(200)))
    assert sorted(s["sequence"] for s in stored) == list(range(1, 201))

    chronological = list(client.read_resource(f"conversation/{conv_id}", {"user_id": user_id}))
    assert [m["sequence"] for m in chronological] == list(range(1, 201))
    by_sequence = {s["sequence"]: s["item_id"] for s in stored}
    assert [m["id"] for m in chronological] == [by_sequence[n] for n in range(1, 201)]

    newest = list(client.read_resource(f"history/{user_id}/limit/50"))
    assert [m["sequence"] for m in newest] == list(range(200, 150, -1))
    assert len(list(client.read_resource(f"history/{user_id}"))) == 200


def test_retried_store_input_stores_once(memory):
    client = make_client(memory.url)
    user_id, conv_id = seed(client)
    first = store(client, user_id, conv_id, "exactly once", key="retry-key-0001")
    second = store(client, user_id, conv_id, "exactly once", key="retry-key-0001")
    assert second["item_id"] == first["item_id"] and second["sequence"] == first["sequence"]
    listed = client.call_tool("list_messages", {"user_id": user_id, "conversation_id": conv_id})
    assert [m["content"] for m in listed["messages"]] == ["exactly once"]


def test_data_survives_a_restart(memory):
    client = make_client(memory.url)
    user_id, conv_id = seed(client)
    for i in range(5):
        store(client, user_id, conv_id, f"durable {i}")
    assert memory.stop() is not None
    memory.start()
    restarted = make_client(memory.url)
    listed = restarted.call_tool("list_messages", {"user_id": user_id, "conversation_id": conv_id})
    assert [m["content"] for m in listed["messages"]] == [f"durable {i}" for i in range(5)]
    assert store(restarted, user_id, conv_id, "after restart")["sequence"] == 6
    found = restarted.call_tool("search_messages", {"user_id": user_id, "query": "durable"})
    assert found["count"] == 5


def test_service_token_is_enforced(spawn, tmp_path):
    proc = spawn(APP, {"DATABASE_URL": f"sqlite:///{tmp_path}/m.db", "SERVICE_TOKEN": "sys-token-123"}, "memory")
    with pytest.raises(Unauthorized):
        make_client(proc.url).call_tool("get_user", {"user_id": "nobody"})
    with pytest.raises(Unauthorized):
        make_client(proc.url, token="wrong-token").list_tools()
    with pytest.raises(Unauthorized):
        list(make_client(proc.url).read_resource("history/nobody"))
    good = make_client(proc.url, token="sys-token-123")
    assert {t["name"] for t in good.list_tools()} >= {"store_input", "search_messages", "create_user"}


def test_circuit_opens_on_a_dead_service_and_closes_after_it_returns(memory):
    # The reset timeout must outlast Memory's restart below (over a second on a loaded machine).
    client = make_client(memory.url, fail_max=3, reset_timeout=4.0)
    user_id, _ = seed(client)
    memory.kill()
    for _ in range(3):
        with pytest.raises(ServiceUnavailable):
            client.call_tool("get_user", {"user_id": user_id})
    assert client.circuit == "open"
    opened_at = started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as refused:
        client.call_tool("get_user", {"user_id": user_id})
    assert time.monotonic() - started < 0.05
    assert "memory" in refused.value.message and refused.value.details["service"] == "memory"

    memory.start()
    # Until the reset timeout has passed, the open circuit refuses even though Memory is back.
    assert time.monotonic() - opened_at < 4.0, "Memory took longer to restart than the reset timeout"
    with pytest.raises(ServiceUnavailable):
        client.call_tool("get_user", {"user_id": user_id})

    def trial_call_succeeds() -> bool:
        try:
            return client.call_tool("get_user", {"user_id": user_id})["user"]["id"] == user_id
        except ServiceUnavailable:
            return False

    wait_until(trial_call_succeeds, 10, interval=0.1, message="a trial call after the reset timeout")
    assert time.monotonic() - opened_at >= 4.0
    assert client.circuit == "closed"
