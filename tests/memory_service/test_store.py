"""The Memory Service store: the Database wrapper, users, workspaces and conversations."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from common.errors import Conflict, Forbidden, InvalidArguments, InvalidCredentials, NotFound
from memory_service import conversations, messages, participants, search, users, workspaces
from memory_service.db import Database, IdempotencyKey

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path, fast_hashing: None):
    database = Database(str(tmp_path / "nested" / "memory.db"))
    yield database
    database.close()


def make_user(db: Database, name: str) -> str:
    return users.create_user(db, f"{name}@example.com", name.title(), "correct horse")["user"]["id"]


@pytest.fixture
def world(db: Database) -> dict[str, str]:
    """ann owns a workspace with one conversation that bob takes part in; cat is a stranger."""
    ann, bob, cat = (make_user(db, name) for name in ("ann", "bob", "cat"))
    ws = workspaces.create_workspace(db, ann, "Home")["workspace"]["id"]
    created = conversations.create_conversation(db, ann, ws, "Plans", [bob])
    participants.respond_invitation(db, bob, created["invitations"][0]["id"], accept=True)
    conv = created["conversation"]["id"]
    return {"ann": ann, "bob": bob, "cat": cat, "ws": ws, "conv": conv}


# --- Database -------------------------------------------------------------------------------------------

def test_new_database_uses_wal_and_foreign_keys(db: Database, tmp_path: Path) -> None:
    assert (tmp_path / "nested" / "memory.db").exists()
    assert db.read(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert db.read(lambda conn: conn.execute("PRAGMA foreign_keys").fetchone()[0]) == 1
    assert db.ping() is True


def test_reopening_keeps_existing_data(db: Database) -> None:
    user_id = make_user(db, "ann")
    db.close()
    assert db.ping() is False
    reopened = Database(db.path)
    assert users.get_user(reopened, user_id)["user"]["email"] == "ann@example.com"
    reopened.close()


def test_write_rolls_back_when_fn_raises(db: Database) -> None:
    def insert_then_fail(conn):
        conn.execute("INSERT INTO users VALUES ('u1', 'x@example.com', 'X', 'h', 'now')")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        db.write(insert_then_fail)
    assert db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]) == 0
    # The connection went back to the pool clean: the next write commits normally.
    db.write(lambda conn: conn.execute("INSERT INTO users VALUES ('u2', 'y@example.com', 'Y', 'h', 'now')"))
    assert db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]) == 1


def test_idempotent_write_replays_stored_result_without_running_again(db: Database) -> None:
    calls = []

    def counted(conn):
        calls.append(1)
        return {"n": len(calls), "items": [1, 2]}

    key = IdempotencyKey("k1", "tool_a", "fp1")
    assert db.write(counted, idempotency=key) == {"n": 1, "items": [1, 2]}
    assert db.write(counted, idempotency=key) == {"n": 1, "items": [1, 2]}
    assert len(calls) == 1


@pytest.mark.parametrize("tool, fingerprint", [("tool_b", "fp1"), ("tool_a", "fp2")])
def test_idempotency_key_reused_for_another_request_conflicts(db: Database, tool: str,
                                                              fingerprint: str) -> None:
    db.write(lambda conn: {"ok": True}, idempotency=IdempotencyKey("k1", "tool_a", "fp1"))
    with pytest.raises(Conflict, match="idempotency key reused"):
        db.write(lambda conn: {"ok": False}, idempotency=IdempotencyKey("k1", tool, fingerprint))


def test_failed_idempotent_write_stores_no_key(db: Database) -> None:
    key = IdempotencyKey("k1", "tool_a", "fp1")

    def fail(conn):
        raise NotFound("nope")

    with pytest.raises(NotFound):
        db.write(fail, idempotency=key)
    assert db.write(lambda conn: {"ok": True}, idempotency=key) == {"ok": True}


def test_pool_never_opens_more_connections_than_its_size(tmp_path: Path) -> None:
    database = Database(str(tmp_path / "pool.db"), pool_size=2)
    lock, active, seen = threading.Lock(), [0], {"max": 0, "conns": set()}
    release = threading.Event()

    def hold(conn):
        with lock:
            active[0] += 1
            seen["max"] = max(seen["max"], active[0])
            seen["conns"].add(id(conn))
            if active[0] == 2:
                release.set()
        release.wait(timeout=5)
        with lock:
            active[0] -= 1

    threads = [threading.Thread(target=database.read, args=(hold,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen["max"] == 2 and len(seen["conns"]) == 2
    database.close()


GEVENT_SCRIPT = """
import gevent.monkey; gevent.monkey.patch_all()
import json, sys, time, gevent
from common.errors import NotFound
from memory_service.db import Database
from memory_service import users
main_thread = gevent.monkey.get_original("threading", "get_ident")()
db = Database(sys.argv[1], pool_size=4)
threads = set()
def write(i):
    def fn(conn):
        threads.add(gevent.monkey.get_original("threading", "get_ident")())
        conn.execute("INSERT INTO users VALUES (?, ?, 'n', 'h', 'now')", (f"u{i}", f"u{i}@x.org"))
        return i
    return db.write(fn)
jobs = [gevent.spawn(write, i) for i in range(10)]
gevent.joinall(jobs, raise_error=True)
try:
    users.get_user(db, "missing")
    error = None
except NotFound as exc:
    error = exc.message
count = db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])
# A greenlet killed mid-query must not hand its connection to the next caller while the thread still uses it.
single, busy = Database(sys.argv[1], pool_size=1), []
def slow(conn):
    busy.append(1)
    gevent.monkey.get_original("time", "sleep")(0.3)
    busy.pop()
victim = gevent.spawn(single.read, slow)
deadline = time.monotonic() + 5
while not busy and time.monotonic() < deadline:
    gevent.sleep(0.001)
victim.kill()
overlapped = single.read(lambda conn: len(busy))
print(json.dumps({"count": count, "offloaded": main_thread not in threads, "error": error,
                  "overlapped": overlapped}))
"""


def test_under_gevent_transactions_run_in_the_threadpool(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", GEVENT_SCRIPT, str(tmp_path / "g.db")], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == {"count": 10, "offloaded": True, "error": "user not found",
                                      "overlapped": 0}
    assert out.stderr == ""  # an ordinary NotFound is not logged as a crashed pool thread


# --- users ----------------------------------------------------------------------------------------------

def test_create_user_returns_public_fields_only(db: Database) -> None:
    user = users.create_user(db, "  Ann@Example.com ", "Ann", "correct horse")["user"]
    assert set(user) == {"id", "email", "name", "created_at"}
    assert user["email"] == "ann@example.com" and user["created_at"].endswith("+00:00")
    assert users.get_user(db, user["id"]) == {"user": user}


@pytest.mark.parametrize("email", ["ann@example.com", "ANN@EXAMPLE.COM", "  Ann@example.com  "])
def test_email_is_unique_regardless_of_case(db: Database, email: str) -> None:
    make_user(db, "ann")
    with pytest.raises(Conflict, match="email already registered"):
        users.create_user(db, email, "Other", "another password")


def test_create_user_replays_with_the_same_idempotency_key(db: Database) -> None:
    key = IdempotencyKey("k", "create_user", "fp")
    first = users.create_user(db, "ann@example.com", "Ann", "pw", idempotency=key)
    assert users.create_user(db, "ann@example.com", "Ann", "pw", idempotency=key) == first


def test_authenticate_user_with_real_hashing(tmp_path: Path) -> None:
    database = Database(str(tmp_path / "auth.db"))
    created = users.create_user(database, "ann@example.com", "Ann", "correct horse")["user"]
    assert users.authenticate_user(database, " ANN@example.com", "correct horse") == {"user": created}
    database.close()


@pytest.mark.parametrize("email, password", [
    ("ann@example.com", "wrong horse"),
    ("nobody@example.com", "correct horse"),
    ("ann@example.com", ""),
])
def test_authenticate_user_rejects_with_one_message(db: Database, email: str, password: str) -> None:
    make_user(db, "ann")
    with pytest.raises(InvalidCredentials) as caught:
        users.authenticate_user(db, email, password)
    assert caught.value.message == "email or password is wrong"


def test_get_unknown_user_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound, match="user not found"):
        users.get_user(db, "no-such-user")


# --- acting user that does not exist ----------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda db, w: workspaces.create_workspace(db, "ghost", "W"),
    lambda db, w: workspaces.list_workspaces(db, "ghost", 10, 0),
    lambda db, w: workspaces.get_workspace(db, "ghost", w["ws"]),
    lambda db, w: workspaces.update_workspace(db, "ghost", w["ws"], name="X"),
    lambda db, w: workspaces.delete_workspace(db, "ghost", w["ws"]),
    lambda db, w: conversations.create_conversation(db, "ghost", w["ws"], "T"),
    lambda db, w: conversations.list_conversations(db, "ghost", w["ws"], 10, 0),
    lambda db, w: conversations.get_conversation(db, "ghost", w["conv"]),
    lambda db, w: conversations.update_conversation(db, "ghost", w["conv"], topic="X"),
    lambda db, w: conversations.delete_conversation(db, "ghost", w["conv"]),
    lambda db, w: messages.store_input(db, "ghost", w["conv"], "hi"),
    lambda db, w: messages.list_messages(db, "ghost", w["conv"]),
    lambda db, w: messages.iter_conversation(db, "ghost", w["conv"]),
    lambda db, w: messages.iter_history(db, "ghost"),
    lambda db, w: messages.count_history(db, "ghost"),
    lambda db, w: search.search_messages(db, "ghost", "hello"),
])
def test_unknown_acting_user_is_not_found(db: Database, world: dict[str, str], call) -> None:
    with pytest.raises(NotFound, match="user not found"):
        call(db, world)


# --- workspaces ------------------------------------------------------------------------------------------

def test_create_and_get_workspace(db: Database, world: dict[str, str]) -> None:
    created = workspaces.create_workspace(db, world["ann"], "Work", "desc", {"color": "red"})["workspace"]
    assert created["owner_id"] == world["ann"] and created["metadata"] == {"color": "red"}
    assert created["created_at"] == created["updated_at"] and created["created_at"].endswith("+00:00")
    assert workspaces.get_workspace(db, world["ann"], created["id"]) == {"workspace": created}


@pytest.mark.parametrize("reader, allowed", [("ann", True), ("bob", True), ("cat", False)])
def test_workspace_is_readable_by_owner_and_participants(db: Database, world: dict[str, str],
                                                         reader: str, allowed: bool) -> None:
    if allowed:
        assert workspaces.get_workspace(db, world[reader], world["ws"])["workspace"]["id"] == world["ws"]
    else:
        with pytest.raises(Forbidden):
            workspaces.get_workspace(db, world[reader], world["ws"])


def test_missing_workspace_is_not_found(db: Database, world: dict[str, str]) -> None:
    with pytest.raises(NotFound, match="workspace not found"):
        workspaces.get_workspace(db, world["ann"], "no-such-workspace")


def test_list_workspaces_pages_own_workspaces_newest_first(db: Database, world: dict[str, str]) -> None:
    for name in ("B", "C", "D"):
        workspaces.create_workspace(db, world["ann"], name)
    workspaces.create_workspace(db, world["bob"], "Bob's")
    page = workspaces.list_workspaces(db, world["ann"], 2, 1)
    assert [w["name"] for w in page["workspaces"]] == ["C", "B"]
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)


@pytest.mark.parametrize("limit, offset, expected", [(0, -5, (1, 0)), (5000, 0, (1000, 0)), (3, 2, (3, 2))])
def test_list_limits_are_clamped(db: Database, world: dict[str, str], limit: int, offset: int,
                                 expected: tuple[int, int]) -> None:
    page = workspaces.list_workspaces(db, world["ann"], limit, offset)
    assert (page["limit"], page["offset"]) == expected


def test_update_workspace_changes_only_given_fields(db: Database, world: dict[str, str]) -> None:
    before = workspaces.get_workspace(db, world["ann"], world["ws"])["workspace"]
    after = workspaces.update_workspace(db, world["ann"], world["ws"], description="new")["workspace"]
    assert (after["name"], after["description"], after["metadata"]) == ("Home", "new", {})
    assert after["updated_at"] >= before["updated_at"] and after["created_at"] == before["created_at"]


@pytest.mark.parametrize("call", [
    lambda db, w, who: workspaces.update_workspace(db, w[who], w["ws"], name="Mine"),
    lambda db, w, who: workspaces.delete_workspace(db, w[who], w["ws"]),
    lambda db, w, who: conversations.create_conversation(db, w[who], w["ws"], "Sneaky"),
    lambda db, w, who: conversations.update_conversation(db, w[who], w["conv"], topic="Mine"),
    lambda db, w, who: conversations.delete_conversation(db, w[who], w["conv"]),
])
@pytest.mark.parametrize("who", ["bob", "cat"])
def test_only_the_owner_manages_a_workspace(db: Database, world: dict[str, str], call, who: str) -> None:
    with pytest.raises(Forbidden):
        call(db, world, who)


@pytest.mark.parametrize("metadata", [["not", "a", "dict"], {"bad": object()}])
def test_invalid_metadata_is_rejected(db: Database, world: dict[str, str], metadata: object) -> None:
    with pytest.raises(InvalidArguments):
        workspaces.create_workspace(db, world["ann"], "W", metadata=metadata)  # type: ignore[arg-type]


def test_delete_workspace_cascades_to_conversations_messages_and_index(db: Database,
                                                                       world: dict[str, str]) -> None:
    messages.store_input(db, world["bob"], world["conv"], "remember the zebra")
    assert workspaces.delete_workspace(db, world["ann"], world["ws"]) == {"deleted": True, "id": world["ws"]}
    with pytest.raises(NotFound, match="conversation not found"):
        conversations.get_conversation(db, world["ann"], world["conv"])
    assert search.search_messages(db, world["ann"], "zebra")["count"] == 0
    assert db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]) == 0
    # The external-content FTS index must agree with the (now empty) messages table.
    db.write(lambda conn: conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')"))


# --- conversations ----------------------------------------------------------------------------------------

def test_named_participants_are_invited_once_each_and_only_the_creator_takes_part(
        db: Database, world: dict[str, str]) -> None:
    created = conversations.create_conversation(
        db, world["ann"], world["ws"], "Team", [world["cat"], world["ann"], world["bob"], world["cat"]], {"k": 1})
    conv = created["conversation"]
    assert conv["participant_ids"] == [world["ann"]] and conv["created_at"] == conv["updated_at"]
    assert [i["invitee_id"] for i in created["invitations"]] == [world["cat"], world["bob"]]
    assert {i["status"] for i in created["invitations"]} == {"pending"}
    assert conv["metadata"] == {"k": 1} and conv["workspace_id"] == world["ws"]
    with pytest.raises(Forbidden):
        conversations.get_conversation(db, world["cat"], conv["id"])


def test_unknown_participant_is_not_found_and_nothing_is_stored(db: Database, world: dict[str, str]) -> None:
    with pytest.raises(NotFound, match="participant not found"):
        conversations.create_conversation(db, world["ann"], world["ws"], "T", ["ghost"])
    assert conversations.list_conversations(db, world["ann"], world["ws"], 10, 0)["total"] == 1


@pytest.mark.parametrize("reader, allowed", [("ann", True), ("bob", True), ("cat", False)])
def test_conversation_is_readable_by_owner_and_participants(db: Database, world: dict[str, str],
                                                            reader: str, allowed: bool) -> None:
    if allowed:
        conversation = conversations.get_conversation(db, world[reader], world["conv"])["conversation"]
        assert conversation["topic"] == "Plans"
    else:
        with pytest.raises(Forbidden):
            conversations.get_conversation(db, world[reader], world["conv"])


def test_missing_conversation_is_not_found(db: Database, world: dict[str, str]) -> None:
    with pytest.raises(NotFound, match="conversation not found"):
        conversations.get_conversation(db, world["ann"], "no-such-conversation")


def test_list_conversations_by_access_most_recently_updated_first(db: Database,
                                                                   world: dict[str, str]) -> None:
    private = conversations.create_conversation(db, world["ann"], world["ws"], "Private")["conversation"]
    messages.store_input(db, world["ann"], world["conv"], "bump")
    owner_view = conversations.list_conversations(db, world["ann"], world["ws"], 10, 0)
    assert [c["id"] for c in owner_view["conversations"]] == [world["conv"], private["id"]]
    assert owner_view["total"] == 2
    bob_view = conversations.list_conversations(db, world["bob"], world["ws"], 10, 0)
    assert [c["id"] for c in bob_view["conversations"]] == [world["conv"]] and bob_view["total"] == 1
    with pytest.raises(Forbidden):
        conversations.list_conversations(db, world["cat"], world["ws"], 10, 0)


def test_update_conversation_removes_the_left_out_and_invites_the_new_keeping_the_creator(
        db: Database, world: dict[str, str]) -> None:
    result = conversations.update_conversation(
        db, world["ann"], world["conv"], participant_ids=[world["cat"]], metadata={"x": 1})
    updated = result["conversation"]
    assert updated["participant_ids"] == [world["ann"]]
    assert [i["invitee_id"] for i in result["invitations"]] == [world["cat"]]
    assert (updated["topic"], updated["metadata"]) == ("Plans", {"x": 1})
    for outsider in ("bob", "cat"):
        with pytest.raises(Forbidden):
            conversations.get_conversation(db, world[outsider], world["conv"])
    participants.respond_invitation(db, world["cat"], result["invitations"][0]["id"], accept=True)
    assert conversations.get_conversation(db, world["cat"], world["conv"])["conversation"]["participant_ids"] == [
        world["ann"], world["cat"]]


def test_delete_conversation(db: Database, world: dict[str, str]) -> None:
    result = conversations.delete_conversation(db, world["ann"], world["conv"])
    assert result == {"deleted": True, "id": world["conv"]}
    with pytest.raises(NotFound):
        conversations.get_conversation(db, world["ann"], world["conv"])
