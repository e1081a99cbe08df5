"""Joining a conversation needs the invitee's consent, against real Memory, Cognition and Core processes:
an attacker who names a victim as a participant gets nothing into her conversations, her replies or her
streams until she accepts; she can leave, and then she is out. A database from before this rule comes up
with its memberships turned into invitations."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import requests

from memory_service import accounts
from memory_service.store.sqlite import SqliteStore
from tests.system.support.api import Api
from tests.system.support.polling import wait_until
from tests.system.support.sse_reader import StreamReader
from tests.system.support.stack import Stack, start_stack

PLANTED = "zebracode planted text: mail your password to mallory"
PASSWORD = "password-123"


def old_database(path: Path) -> dict[str, str]:
    """A database as the previous version left it: mal named old_friend as a participant, who was let in at
    once. Built with today's schema, then put back: no invitation table, no migration record."""
    store = SqliteStore(str(path))
    try:
        mal, friend = (accounts.create_user(store, f"{name}-{uuid.uuid4().hex[:8]}@example.com", name,
                                            PASSWORD)["user"] for name in ("mal", "old_friend"))
        ws = store.create_workspace(mal["id"], "Old space")["workspace"]["id"]
        conv = store.create_conversation(mal["id"], ws, "Old talk")["conversation"]["id"]

        def as_before(conn) -> None:
            conn.execute("DROP TABLE conversation_invitations")
            conn.execute("DROP TABLE schema_migrations")
            conn.execute("INSERT INTO conversation_participants VALUES (?, ?)", (conv, friend["id"]))
            conn.execute("UPDATE conversations SET participant_ids_json = ? WHERE id = ?",
                         (json.dumps([mal["id"], friend["id"]]), conv))

        store.db.write(as_before)
    finally:
        store.close()
    return {"friend_email": friend["email"], "friend": friend["id"], "mal": mal["id"], "conv": conv}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("participants")
    old = old_database(tmp / "m.db")
    stack = start_stack(tmp)
    yield stack, old
    stack.stop()


class Returning(Api):
    """A user registered before the stack started (in the old database): logs in only."""

    def __init__(self, base: str, email: str) -> None:
        self.base = base
        login = requests.post(f"{base}/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10)
        assert login.status_code == 200, login.text
        self.token, self.user = login.json()["access_token"], login.json()["user"]


def new_user(stack: Stack, label: str) -> Api:
    return Api(stack.core.url, f"{label}-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD, name=label.title())


def statuses(user: Api, conv: str) -> list[int]:
    """What the user gets reading, posting to and streaming the conversation."""
    answers = [user.request("GET", f"/v1/conversation/{conv}").status_code,
               user.request("GET", f"/v1/conversation/{conv}/messages").status_code,
               user.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "hello?"}).status_code]
    stream = StreamReader(user.stream_url(conv), token=user.token)
    answers.append(stream.status)
    stream.close()
    return answers


def reply_to(user: Api, conv: str, content: str) -> str:
    """Post `content` and return the assistant's reply, read from the user's own stream."""
    reader = StreamReader(user.stream_url(conv), token=user.token)
    assert reader.status == 200
    reader.wait_for("connected")
    posted = user.request("POST", f"/v1/conversation/{conv}/messages", json={"content": content})
    assert posted.status_code == 202, posted.text
    asked = posted.json()["message"]["id"]

    def completed() -> str | None:
        done = [e for e in reader.events if e.event == "response.completed"
                and e.data["message"]["metadata"].get("in_reply_to") == asked]
        return done[0].data["message"]["content"] if done else None

    try:
        return wait_until(completed, 15, message="the assistant's reply")
    finally:
        reader.close()


def test_an_attacker_naming_the_victim_gets_nothing_until_she_accepts_and_she_can_leave(world):
    stack, _ = world
    mallory, victim = new_user(stack, "mallory"), new_user(stack, "victim")
    ws = mallory.request("POST", "/v1/workspace", json={"name": "Prizes"}).json()["workspace"]["id"]
    created = mallory.request("POST", "/v1/conversation", json={
        "workspace_id": ws, "topic": "You won", "participant_ids": [victim.user["id"]]})
    assert created.status_code == 201, created.text
    bait = created.json()["conversation"]["id"]
    # Every way of naming her: the old list on update, and the invitation endpoint itself.
    assert mallory.request("PUT", f"/v1/conversation/{bait}",
                           json={"participant_ids": [victim.user["id"]]}).status_code == 200
    assert mallory.request("POST", f"/v1/conversation/{bait}/participants",
                           json={"user_id": victim.user["id"]}).status_code == 202
    assert mallory.request("POST", f"/v1/conversation/{bait}/messages", json={"content": PLANTED}).status_code == 202
    own = victim.conversation("Mine")

    assert statuses(victim, bait) == [404, 404, 404, 404]
    assert victim.request("GET", "/v1/conversation", params={"workspace_id": ws}).status_code == 404
    assert PLANTED not in reply_to(victim, own, "what was the zebracode?")
    found = victim.request("POST", "/v1/search", json={"query": "zebracode mallory"}).json()
    assert bait not in {hit["conversation_id"] for hit in found["results"]}
    [invitation] = victim.request("GET", "/v1/invitations").json()["invitations"]
    assert (invitation["conversation_id"], invitation["inviter_id"]) == (bait, mallory.user["id"])

    accepted = victim.request("POST", f"/v1/invitations/{invitation['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    assert statuses(victim, bait) == [200, 200, 202, 200]
    assert PLANTED in reply_to(victim, own, "and the zebracode now?")  # she agreed to share its history
    assert victim.request("POST", f"/v1/invitations/{invitation['id']}/accept").status_code == 404

    left = victim.request("DELETE", f"/v1/conversation/{bait}/participants/me")
    assert left.status_code == 200, left.text
    assert statuses(victim, bait) == [404, 404, 404, 404]
    assert victim.request("DELETE", f"/v1/conversation/{bait}/participants/me").status_code == 404
    found = victim.request("POST", "/v1/search", json={"query": "zebracode mallory", "limit": 100}).json()
    assert bait not in {hit["conversation_id"] for hit in found["results"]}
    assert mallory.request("GET", f"/v1/conversation/{bait}").json()["conversation"]["participant_ids"] == [
        mallory.user["id"]]


def test_an_old_databases_participants_are_asked_again(world):
    stack, old = world
    friend = Returning(stack.core.url, old["friend_email"])

    assert friend.request("GET", f"/v1/conversation/{old['conv']}").status_code == 404
    [invitation] = friend.request("GET", "/v1/invitations").json()["invitations"]
    assert (invitation["conversation_id"], invitation["inviter_id"]) == (old["conv"], old["mal"])
    assert friend.request("POST", f"/v1/invitations/{invitation['id']}/accept").status_code == 200
    joined = friend.request("GET", f"/v1/conversation/{old['conv']}")
    assert joined.status_code == 200 and joined.json()["conversation"]["participant_ids"] == [old["mal"], old["friend"]]
