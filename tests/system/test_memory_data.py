"""What Memory stores and hands out, through the real processes: private files, bounded metadata and
pages, and search results that another user's messages cannot change."""

from __future__ import annotations

import os
import sqlite3
import stat
import uuid
from contextlib import closing

import pytest

from common.client import ServiceClient
from tests.system.support.api import Api
from tests.system.support.polling import wait_until
from tests.system.support.stack import SERVICE_TOKEN, start_stack

PAGE_BYTES = 512 * 1024
MEMORY_METADATA_BYTES = 8 * 1024  # below the Core's own early check (16 KiB), so Memory's 413 is seen
CORE_METADATA_BYTES = 16 * 1024


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data")
    started = start_stack(tmp, common_env={
        "MAX_PAGE_BYTES": str(PAGE_BYTES), "MAX_METADATA_BYTES": str(MEMORY_METADATA_BYTES)},
        # One user posts dozens of large messages back to back: lift the per-user reply bound.
        core_env={"REPLIES_PER_USER": "1000"})
    started.db_path = tmp / "m.db"  # type: ignore[attr-defined]
    yield started
    started.stop()


def new_user(stack) -> Api:
    return Api(stack.core.url, f"data-{uuid.uuid4().hex[:10]}@example.com")


def metadata_of(size: int) -> dict[str, str]:
    """An object whose JSON is exactly `size` bytes."""
    return {"k": "x" * (size - len('{"k": ""}'))}


def post(api: Api, conv: str, content: str, metadata: dict | None = None):
    return api.request("POST", f"/v1/conversation/{conv}/messages",
                       json={"content": content, "metadata": metadata or {}})


def wait_for_replies(api: Api, conv: str, posted: int) -> None:
    """Every posted message has its assistant reply stored, so the conversation no longer changes."""
    wait_until(lambda: api.request("GET", f"/v1/conversation/{conv}/messages",
                                   params={"after_sequence": 2 * posted - 1}).json()["count"] >= 1,
               30, message="the assistant's replies")


def test_search_and_context_do_not_change_when_another_user_adds_matching_messages(stack):
    ann = new_user(stack)
    conv = ann.conversation()
    texts = ["The harbour at dawn was quiet", "Harbour lights and a harbour wall",
             "A lantern by the harbour", "Nothing to see here"]
    for text in texts:
        assert post(ann, conv, text).status_code == 202
    wait_for_replies(ann, conv, len(texts))
    memory = ServiceClient("memory", stack.memory.url, token=SERVICE_TOKEN)

    def embedded() -> None:  # context by meaning settles once Cognition's worker has embedded everything
        wait_until(lambda: memory.call_tool("embedding_backlog", {})["backlog"] == 0, 30,
                   message="the messages to be embedded")

    def ann_sees() -> list[dict]:
        return [ann.request("POST", path, json={"query": query, "limit": 20}).json()
                for path in ("/v1/search", "/v1/context") for query in ("harbour", "harbour lantern dawn")]

    embedded()
    before = ann_sees()
    assert before[0]["count"] >= 3 and all(hit["score"] > 0 for hit in before[0]["results"])
    # Another user fills their own conversations with the same words, straight into Memory.
    bob = new_user(stack)
    bob_conv = bob.conversation()
    for n in range(80):
        memory.call_tool("store_input", {"user_id": bob.user["id"], "input_data": {
            "conversation_id": bob_conv, "content": "harbour " * (n % 5 + 1) + "lantern dawn" * (n % 2)}})
    embedded()
    assert ann_sees() == before


def test_metadata_is_bounded_early_by_the_core_and_by_memory(stack):
    api = new_user(stack)
    conv = api.conversation()
    too_big_for_core = post(api, conv, "hi", metadata_of(CORE_METADATA_BYTES + 1))
    assert too_big_for_core.status_code == 400
    assert too_big_for_core.json()["error"]["code"] == "invalid_arguments"
    too_big_for_memory = post(api, conv, "hi", metadata_of(MEMORY_METADATA_BYTES + 1))
    assert too_big_for_memory.status_code == 413
    assert too_big_for_memory.json()["error"]["code"] == "payload_too_large"
    assert post(api, conv, "hi", metadata_of(MEMORY_METADATA_BYTES)).status_code == 202


def test_message_pages_stay_under_the_byte_budget_and_page_through_everything_once(stack):
    api = new_user(stack)
    conv = api.conversation()
    for n in range(14):  # ~40 KB each with their metadata: about 560 KB, more than one page
        assert post(api, conv, f"note {n} " + "n" * 31_000, metadata_of(MEMORY_METADATA_BYTES)).status_code == 202
    wait_for_replies(api, conv, 14)
    seen, after, pages = [], 0, 0
    while True:
        response = api.request("GET", f"/v1/conversation/{conv}/messages",
                               params={"after_sequence": after, "limit": 1000})
        assert response.status_code == 200 and len(response.content) <= PAGE_BYTES
        page = response.json()
        seen += [message["sequence"] for message in page["messages"]]
        pages += 1
        if not page["has_more"]:
            break
        after = page["next_after_sequence"]
    assert seen == list(range(1, len(seen) + 1)) and len(seen) >= 28 and pages >= 2


def test_deleting_a_conversation_deletes_the_replay_copies_of_its_messages(stack):
    api = new_user(stack)
    conv = api.conversation()
    secret = f"secret-{uuid.uuid4().hex}"
    client_key = f"key-{uuid.uuid4().hex[:16]}"
    key = {"Idempotency-Key": client_key}
    first = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": secret}, headers=key)
    retried = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": secret}, headers=key)
    assert first.status_code == retried.status_code == 202
    assert retried.json()["message"]["id"] == first.json()["message"]["id"]

    def copies(under: str = "%") -> int:
        with closing(sqlite3.connect(f"file:{stack.db_path}?mode=ro", uri=True)) as conn:
            return conn.execute("SELECT COUNT(*) FROM idempotency_keys WHERE result_json LIKE ? AND key LIKE ?",
                                (f"%{secret}%", under)).fetchone()[0]

    # The user's write and its retry: one copy (the reply, stored under a key of its own, may quote it too).
    assert copies(under=f"%:{client_key}") == 1
    assert api.request("DELETE", f"/v1/conversation/{conv}").status_code == 200
    assert copies() == 0


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_database_files_are_private_after_a_real_start(spawn, tmp_path):
    db_path = tmp_path / "var" / "memory.db"
    memory = spawn("memory_service.app:create_app()", {"DATABASE_URL": f"sqlite:///{db_path}",
                                                      "SERVICE_TOKEN": ""}, "memory")
    client = ServiceClient("memory", memory.url)
    user = client.call_tool("create_user", {"email": "files@example.com", "name": "F", "password": "password1"})
    assert user["user"]["id"]  # a write went through, so the WAL and its index exist
    modes = {suffix: mode(f"{db_path}{suffix}") for suffix in ("", "-wal", "-shm")}
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    assert mode(tmp_path / "var") == 0o700
