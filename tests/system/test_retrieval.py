"""Retrieval by meaning across real processes: Memory stores message vectors and a queue of messages waiting
for one, each Cognition process's embedding worker drains it with the built-in MiniLM model, and
`get_context` is hybrid (words + meaning + neighbouring turns).

A message becomes findable by a query that shares no word with it once Memory's backlog drains; a Cognition
started after the messages backfills them; changed content drops its old vector at once and is embedded
again; nobody finds another user's messages by meaning, except through a conversation they joined, and not
after leaving it; with EMBEDDINGS=off, words alone still answer. On SQLite, and on PostgreSQL (a schema of
its own; skipped with the reason when no PostgreSQL answers, failed under CORTEX_REQUIRE_BACKENDS=1).

How long the backlog took to drain is printed (`pytest -s`) and recorded as test properties; it is reported,
never asserted on: every wait below is a bounded correctness wait.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from common.client import ClientSettings, RetryPolicy, ServiceClient
from tests.system.support.api import Api
from tests.system.support.harness import ServiceProcess
from tests.system.support.polling import wait_until
from tests.system.support.stack import SERVICE_TOKEN, Stack, start_stack

MEMORY_APP = "memory_service.app:create_app()"
COGNITION_APP = "cognition_service.app:create_app()"
MODEL = "all-MiniLM-L6-v2-int8"
DRAIN_TIMEOUT = 30.0
SERVICE_ENV = {"SERVICE_TOKEN": SERVICE_TOKEN, "HEALTH_INTERVAL_SECONDS": "0.5", "BREAKER_RESET_SECONDS": "1",
               "CLIENT_RETRIES": "1", "CLIENT_RETRY_MAX_SECONDS": "1"}

# The query shares no word (stop words included) with any message of its user; only the meaning matches.
VIOLIN = "My daughter started violin lessons last month"
INSTRUMENT_QUERY = "what instrument does her kid play?"
ERRANDS = ["The quarterly tax report is due on Friday", "Remember to renew the car insurance before June",
           "I booked a table at the Italian restaurant downtown",
           "Our flight to Lisbon leaves at seven in the morning"]

PUPPY = "We adopted a golden retriever puppy from the shelter"
MARATHON = "I am training for the Berlin marathon this autumn"
CAT = "My neighbour's cat keeps sleeping on our porch"
DENTIST = "The dentist appointment moved to Tuesday afternoon"
DOG_QUERY = "what kind of dog did they get?"
RACE_QUERY = "what running competition is coming up soon?"

DOCTOR = "Our family doctor says my blood pressure is far too high"
BOOTS = "I need to buy new hiking boots before the trip"
HEALTH_QUERY = "what did the physician tell them about their health?"

PLUMBER = "The plumber fixes the leaking kitchen sink on Monday"

DRAIN_TIMES: list[tuple[str, float]] = []


def make_client(name: str, url: str) -> ServiceClient:
    # No retries: each assertion sees the answer the service gave.
    return ServiceClient(name, url, token=SERVICE_TOKEN, settings=ClientSettings(retry=RetryPolicy(attempts=0)))


@dataclass
class World:
    """One Memory (on `backend`) with a Cognition whose worker embeds with the built-in model."""

    backend: str
    memory: ServiceProcess
    cognition: ServiceProcess
    mem: ServiceClient
    cog: ServiceClient


@pytest.fixture(scope="module")
def minilm():
    """The built-in model in the test process, to make query vectors for Memory's `search_similar`."""
    from cognition_service.embeddings import MiniLM

    model = MiniLM()
    model.load()
    return model


@pytest.fixture(scope="module", autouse=True)
def drain_report():
    yield
    if DRAIN_TIMES:
        print("\n[retrieval backlog drain times]")
        for label, seconds in DRAIN_TIMES:
            print(f"  {label}: {seconds * 1000:.0f} ms")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """Memory on SQLite, Cognition with the built-in embedder, a Core in distributed mode."""
    stack = start_stack(tmp_path_factory.mktemp("retrieval"))
    yield stack
    stack.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory) -> Iterator[World]:
    if request.param == "sqlite":
        stack = request.getfixturevalue("stack")
        mem, cog = make_client("memory", stack.memory.url), make_client("cognition", stack.cognition.url)
        yield World("sqlite", stack.memory, stack.cognition, mem, cog)
        mem.close()
        cog.close()
        return
    from tests.memory_service.backends import create_schema, drop_schema

    schema, url = create_schema("cortex_retrieval")
    tmp = tmp_path_factory.mktemp("retrieval-pg")
    started: list[ServiceProcess] = []
    try:
        memory = ServiceProcess(MEMORY_APP, {**SERVICE_ENV, "DATABASE_URL": url, "DB_POOL_SIZE": "4"},
                                tmp / "memory.log")
        started.append(memory.start())
        cognition = ServiceProcess(COGNITION_APP, {**SERVICE_ENV, "MEMORY_SERVICE_URL": memory.url},
                                   tmp / "cognition.log")
        started.append(cognition.start())
        mem, cog = make_client("memory", memory.url), make_client("cognition", cognition.url)
        yield World("postgresql", memory, cognition, mem, cog)
        mem.close()
        cog.close()
    finally:
        for proc in reversed(started):  # Cognition first, then Memory, then the schema
            proc.stop()
        drop_schema(schema)


@dataclass
class Late:
    """A Memory on SQLite whose only Cognition has EMBEDDINGS=off: nothing embeds its messages."""

    memory: ServiceProcess
    lexical: ServiceProcess
    db_path: Path
    mem: ServiceClient
    cog: ServiceClient


@pytest.fixture(scope="module")
def late(tmp_path_factory) -> Iterator[Late]:
    tmp = tmp_path_factory.mktemp("retrieval-late")
    db_path = tmp / "late.db"
    memory = ServiceProcess(MEMORY_APP, {**SERVICE_ENV, "DATABASE_URL": f"sqlite:///{db_path}"},
                            tmp / "memory.log").start()
    lexical = ServiceProcess(COGNITION_APP, {**SERVICE_ENV, "MEMORY_SERVICE_URL": memory.url, "EMBEDDINGS": "off"},
                             tmp / "cognition-off.log")
    try:
        lexical.start()
        mem, cog = make_client("memory", memory.url), make_client("cognition", lexical.url)
        yield Late(memory, lexical, db_path, mem, cog)
        mem.close()
        cog.close()
    finally:
        lexical.stop()
        memory.stop()


def new_user(mem: ServiceClient, label: str, topics: list[str]) -> tuple[str, list[str]]:
    """A user with a workspace and one conversation per topic."""
    email = f"{label}-{uuid.uuid4().hex[:8]}@example.com"
    user_id = mem.call_tool("create_user", {"email": email, "name": label, "password": "password1"})["user"]["id"]
    workspace = mem.call_tool("create_workspace", {"user_id": user_id, "name": "Home"})["workspace"]["id"]
    return user_id, [mem.call_tool("create_conversation", {"user_id": user_id, "workspace_id": workspace,
                                                           "topic": topic})["conversation"]["id"]
                     for topic in topics]


def store(mem: ServiceClient, user_id: str, conversation_id: str, content: str) -> str:
    return mem.call_tool("store_input", {"user_id": user_id, "input_data": {
        "conversation_id": conversation_id, "content": content}})["item_id"]


def backlog(mem: ServiceClient) -> int:
    return mem.call_tool("embedding_backlog", {})["backlog"]


def wait_drained(mem: ServiceClient, label: str | None = None, record=None) -> float:
    """Poll Memory's backlog every 50 ms until nothing waits for a vector (at most 30 s); the seconds taken,
    reported (not asserted) under `label`."""
    started = time.monotonic()
    wait_until(lambda: backlog(mem) == 0, DRAIN_TIMEOUT, message="Memory's embedding backlog to drain")
    seconds = time.monotonic() - started
    if label:
        DRAIN_TIMES.append((label, seconds))
        print(f"\n[drain] {label}: {seconds * 1000:.0f} ms")
        if record is not None:
            record(label.replace(" ", "_"), round(seconds, 3))
    return seconds


def context(cog: ServiceClient, user_id: str, query: str | None, limit: int = 10) -> list[dict]:
    arguments = {"user_id": user_id, "limit": limit, **({"query": query} if query else {})}
    return cog.call_tool("get_context", arguments)["context"]


def similar(mem: ServiceClient, user_id: str, vector: np.ndarray, limit: int = 10) -> list[dict]:
    return mem.call_tool("search_similar", {"user_id": user_id, "model": MODEL, "vector": [float(x) for x in vector],
                                            "limit": limit})["results"]


def lexical_hits(mem: ServiceClient, user_id: str, query: str) -> list[dict]:
    """Memory's full-text search for `query`, by exact words and by stems."""
    return [hit for match in ("words", "stems") for hit in mem.call_tool("search_messages", {
        "user_id": user_id, "query": query, "limit": 100, "match": match})["results"]]


def ids(items: list[dict]) -> list[str]:
    return [item["id"] for item in items]


# 1 and 6: a stored message is found by meaning, on SQLite and on PostgreSQL.

def test_a_stored_message_is_found_by_meaning_and_not_by_its_words(world, minilm, record_property):
    user, (family, errands) = new_user(world.mem, "meaning", ["Family", "Errands"])
    distractors = [store(world.mem, user, errands, text) for text in ERRANDS]
    wait_drained(world.mem, f"{world.backend}: a user's first {len(ERRANDS)} messages",
                 record_property)

    violin = store(world.mem, user, family, VIOLIN)
    wait_drained(world.mem, f"{world.backend}: one message", record_property)

    found = context(world.cog, user, INSTRUMENT_QUERY, limit=5)
    assert found and found[0]["id"] == violin, [item["content"] for item in found]
    assert set(ids(found)) <= {violin, *distractors}
    assert [item["score"] for item in found] == sorted((item["score"] for item in found), reverse=True)
    # Words alone do not find it: the query shares none with any of the user's messages.
    assert lexical_hits(world.mem, user, INSTRUMENT_QUERY) == []
    assert world.cog.call_tool("search_history", {"user_id": user, "query": INSTRUMENT_QUERY,
                                                  "limit": 50})["results"] == []  # stays lexical
    # Memory's own vector search, with the same model's vector made here, agrees.
    nearest = similar(world.mem, user, minilm.encode([INSTRUMENT_QUERY])[0], limit=5)
    assert ids(nearest)[0] == violin and -1 <= nearest[-1]["score"] <= nearest[0]["score"] <= 1
    # Words still count: an exact word finds its message first.
    assert context(world.cog, user, "insurance renewal", limit=3)[0]["id"] == distractors[1]
    # Asked within one conversation, the meaning is looked for there only.
    scoped = world.cog.call_tool("get_context", {"user_id": user, "query": INSTRUMENT_QUERY,
                                                 "conversation_id": errands, "limit": 10})["context"]
    assert scoped and {item["conversation_id"] for item in scoped} == {errands}


# 3: changed content.

def test_changed_content_drops_the_old_vector_at_once_and_is_embedded_again(world, minilm):
    user, (talk,) = new_user(world.mem, "changer", ["News"])
    pet = store(world.mem, user, talk, PUPPY)
    cat = store(world.mem, user, talk, CAT)
    store(world.mem, user, talk, DENTIST)
    wait_drained(world.mem)
    assert context(world.cog, user, DOG_QUERY)[0]["id"] == pet
    old_vector, new_vector = minilm.encode([PUPPY, MARATHON])
    before = similar(world.mem, user, old_vector)
    assert before[0]["id"] == pet and before[0]["score"] > 0.95  # the stored vector is the content's

    world.mem.call_tool("update_message", {"user_id": user, "message_id": pet, "content": MARATHON})
    # At once, before or after the worker re-embeds it: the old content's vector is never found again.
    at_once = similar(world.mem, user, old_vector)
    assert not [hit for hit in at_once if hit["id"] == pet and hit["score"] > 0.9], at_once

    wait_drained(world.mem)
    after = similar(world.mem, user, new_vector)
    assert after[0]["id"] == pet and after[0]["score"] > 0.95 and after[0]["content"] == MARATHON
    assert context(world.cog, user, RACE_QUERY)[0]["id"] == pet
    by_old_meaning = context(world.cog, user, DOG_QUERY)
    assert by_old_meaning[0]["id"] == cat, [item["content"] for item in by_old_meaning]

    world.mem.call_tool("delete_message", {"user_id": user, "message_id": pet})
    assert pet not in ids(similar(world.mem, user, new_vector))
    assert pet not in ids(context(world.cog, user, RACE_QUERY))


# 4: access, on both backends through Memory's tools, then end to end through the Core.

def test_membership_decides_whose_messages_are_found_by_meaning(world, minilm):
    owner, (shared,) = new_user(world.mem, "owner", ["Checkup"])
    guest, (own,) = new_user(world.mem, "guest", ["Outdoors"])
    secret = store(world.mem, owner, shared, DOCTOR)
    store(world.mem, guest, own, BOOTS)
    wait_drained(world.mem)
    doctor_vector = minilm.encode([DOCTOR])[0]

    def guest_finds_it() -> tuple[bool, bool]:
        """Whether the guest's get_context (by meaning) and Memory's vector search (by the message's own
        vector) return the owner's message."""
        return (secret in ids(context(world.cog, guest, HEALTH_QUERY, limit=50)),
                secret in ids(similar(world.mem, guest, doctor_vector, limit=50)))

    def invited_and_accepted() -> None:
        world.mem.call_tool("invite_participant", {"user_id": owner, "conversation_id": shared,
                                                   "participant_id": guest})
        assert guest_finds_it() == (False, False)  # invited is not joined
        [invitation] = world.mem.call_tool("list_invitations", {"user_id": guest})["invitations"]
        world.mem.call_tool("respond_invitation", {"user_id": guest, "invitation_id": invitation["id"],
                                                   "accept": True})

    assert secret in ids(context(world.cog, owner, HEALTH_QUERY))
    assert guest_finds_it() == (False, False)
    invited_and_accepted()
    assert guest_finds_it() == (True, True)
    assert context(world.cog, guest, HEALTH_QUERY)[0]["id"] == secret
    world.mem.call_tool("leave_conversation", {"user_id": guest, "conversation_id": shared})
    assert guest_finds_it() == (False, False)
    invited_and_accepted()
    assert guest_finds_it() == (True, True)
    world.mem.call_tool("remove_participant", {"user_id": owner, "conversation_id": shared,
                                               "participant_id": guest})
    assert guest_finds_it() == (False, False)


def posted(user: Api, conversation_id: str, content: str) -> str:
    """Post through the Core and wait (at most 20 s) until the assistant's reply to it is stored."""
    answer = user.request("POST", f"/v1/conversation/{conversation_id}/messages", json={"content": content})
    assert answer.status_code == 202, answer.text
    message_id = answer.json()["message"]["id"]

    def replied() -> bool:
        messages = user.request("GET", f"/v1/conversation/{conversation_id}/messages").json()["messages"]
        return any(m["role"] == "assistant" and m["metadata"].get("in_reply_to") == message_id for m in messages)

    wait_until(replied, 20, message="the assistant's reply to be stored")
    return message_id


def core_context(user: Api, query: str, limit: int = 20) -> list[dict]:
    answer = user.request("POST", "/v1/context", json={"query": query, "limit": limit})
    assert answer.status_code == 200, answer.text
    return answer.json()["context"]


def test_nobody_finds_another_users_messages_by_meaning_unless_they_joined_the_conversation(stack, minilm):
    ann = Api(stack.core.url, f"ann-{uuid.uuid4().hex[:8]}@example.com", name="Ann")
    ben = Api(stack.core.url, f"ben-{uuid.uuid4().hex[:8]}@example.com", name="Ben")
    health = ann.conversation("Health")
    secret = posted(ann, health, DOCTOR)
    own = ben.conversation("Outdoors")
    boots = posted(ben, own, BOOTS)
    mem = make_client("memory", stack.memory.url)
    try:
        wait_drained(mem)

        def anns_in(items: list[dict]) -> list[dict]:
            return [item for item in items if item["conversation_id"] == health]

        # Ann herself finds it by meaning: the vectors are there.
        assert secret in ids(core_context(ann, HEALTH_QUERY)[:2])
        for query in (HEALTH_QUERY, "family doctor blood pressure", "anything at all"):
            assert anns_in(core_context(ben, query, limit=100)) == [], query
        assert anns_in(similar(mem, ben.user["id"], minilm.encode([DOCTOR])[0], limit=100)) == []
        # Nor does Ben's assistant quote it to him.
        reply_to_ben = posted(ben, own, "How is everybody's health these days?")
        wait_drained(mem)
        replies = [m["content"] for m in ben.request("GET", f"/v1/conversation/{own}/messages").json()["messages"]
                   if m["metadata"].get("in_reply_to") == reply_to_ben]
        assert replies and "blood pressure" not in replies[0]

        invited = ann.request("POST", f"/v1/conversation/{health}/participants", json={"user_id": ben.user["id"]})
        assert invited.status_code == 202, invited.text
        assert anns_in(core_context(ben, HEALTH_QUERY)) == []  # invited is not joined
        [invitation] = ben.request("GET", "/v1/invitations").json()["invitations"]
        assert ben.request("POST", f"/v1/invitations/{invitation['id']}/accept").status_code == 200
        joined = ids(core_context(ben, HEALTH_QUERY))
        # Found by meaning only: the query's words (physician, tell, health) are not in it.
        assert secret in joined and joined.index(secret) < joined.index(boots), joined
        assert ids(similar(mem, ben.user["id"], minilm.encode([DOCTOR])[0], limit=1)) == [secret]

        left = ben.request("DELETE", f"/v1/conversation/{health}/participants/me")
        assert left.status_code == 200, left.text
        for query in (HEALTH_QUERY, "family doctor blood pressure"):
            assert anns_in(core_context(ben, query, limit=100)) == [], query
        assert anns_in(similar(mem, ben.user["id"], minilm.encode([DOCTOR])[0], limit=100)) == []
    finally:
        mem.close()


# 5: EMBEDDINGS=off.

def test_with_embeddings_off_get_context_answers_by_words(late):
    queued_before = backlog(late.mem)
    user, (home,) = new_user(late.mem, "words", ["Home"])
    plumber = store(late.mem, user, home, PLUMBER)
    store(late.mem, user, home, VIOLIN)

    by_words = context(late.cog, user, "When is the kitchen sink fixed?")
    assert by_words and by_words[0]["id"] == plumber and by_words[0]["content"] == PLUMBER
    assert context(late.cog, user, INSTRUMENT_QUERY) == []  # nothing by meaning, and no error
    assert len(context(late.cog, user, None)) == 2  # the newest, without a query
    # No worker runs in this Cognition: its messages still wait for a vector.
    assert backlog(late.mem) == queued_before + 2


# 2: backfill of messages stored before any vector existed.

def test_a_cognition_started_later_backfills_messages_stored_before_vectors(late, spawn, minilm, record_property):
    user, (family, errands) = new_user(late.mem, "backfill", ["Family", "Errands"])
    distractors = [store(late.mem, user, errands, text) for text in ERRANDS]
    violin = store(late.mem, user, family, VIOLIN)
    # As a database from before the feature: no vectors, and nothing queued for one.
    with sqlite3.connect(late.db_path, timeout=10) as conn:
        conn.execute("DELETE FROM message_vectors")
        conn.execute("DELETE FROM embedding_queue")
        messages = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    conn.close()
    assert backlog(late.mem) == 0
    assert similar(late.mem, user, minilm.encode([INSTRUMENT_QUERY])[0]) == []

    started = time.monotonic()
    builtin = spawn(COGNITION_APP, {**SERVICE_ENV, "MEMORY_SERVICE_URL": late.memory.url}, "cognition-builtin")

    def vectors() -> int:
        with sqlite3.connect(late.db_path, timeout=10) as conn:
            count = conn.execute("SELECT COUNT(*) FROM message_vectors WHERE model = ?", (MODEL,)).fetchone()[0]
        conn.close()
        return count

    wait_until(lambda: vectors() == messages and backlog(late.mem) == 0, DRAIN_TIMEOUT,
               message=f"all {messages} messages to get a {MODEL} vector")
    seconds = time.monotonic() - started
    DRAIN_TIMES.append((f"sqlite: backfill of {messages} messages (from the Cognition's start)", seconds))
    print(f"\n[drain] backfill of {messages} messages: {seconds * 1000:.0f} ms")
    record_property("backfill_seconds", round(seconds, 3))

    nearest = similar(late.mem, user, minilm.encode([INSTRUMENT_QUERY])[0], limit=len(ERRANDS) + 1)
    assert ids(nearest)[0] == violin and set(ids(nearest)) == {violin, *distractors}
    cog = make_client("cognition", builtin.url)
    try:
        assert context(cog, user, INSTRUMENT_QUERY, limit=3)[0]["id"] == violin
    finally:
        cog.close()
