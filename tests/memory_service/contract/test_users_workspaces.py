"""The storage contract: users, workspaces and conversations."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import Conflict, Forbidden, InvalidArguments, InvalidCredentials, NotFound
from memory_service import accounts
from memory_service.store import IdempotencyKey, Store
from tests.memory_service.backends import BACKENDS, open_test_store


def make_user(store: Store, name: str) -> str:
    return accounts.create_user(store, f"{name}@example.com", name.title(), "correct horse")["user"]["id"]


@pytest.fixture
def world(store: Store) -> dict[str, str]:
    """ann owns a workspace with one conversation that bob takes part in; cat is a stranger."""
    ann, bob, cat = (make_user(store, name) for name in ("ann", "bob", "cat"))
    ws = store.create_workspace(ann, "Home")["workspace"]["id"]
    created = store.create_conversation(ann, ws, "Plans", [bob])
    store.respond_invitation(bob, created["invitations"][0]["id"], accept=True)
    conv = created["conversation"]["id"]
    return {"ann": ann, "bob": bob, "cat": cat, "ws": ws, "conv": conv}


# --- users ----------------------------------------------------------------------------------------------

def test_create_user_returns_public_fields_only(store: Store) -> None:
    user = accounts.create_user(store, "  Ann@Example.com ", "Ann", "correct horse")["user"]
    assert set(user) == {"id", "email", "name", "created_at"}
    assert user["email"] == "ann@example.com" and user["created_at"].endswith("+00:00")
    assert store.get_user(user["id"]) == {"user": user}


@pytest.mark.parametrize("email", ["ann@example.com", "ANN@EXAMPLE.COM", "  Ann@example.com  "])
def test_email_is_unique_regardless_of_case(store: Store, email: str) -> None:
    make_user(store, "ann")
    with pytest.raises(Conflict, match="email already registered"):
        accounts.create_user(store, email, "Other", "another password")


def test_create_user_replays_with_the_same_idempotency_key(store: Store) -> None:
    key = IdempotencyKey("k", "create_user", "fp")
    first = accounts.create_user(store, "ann@example.com", "Ann", "pw", idempotency=key)
    assert accounts.create_user(store, "ann@example.com", "Ann", "pw", idempotency=key) == first


@pytest.mark.parametrize("backend", BACKENDS)
def test_authenticate_user_with_real_hashing(tmp_path: Path, backend: str) -> None:
    store = open_test_store(backend, tmp_path)
    created = accounts.create_user(store, "ann@example.com", "Ann", "correct horse")["user"]
    assert accounts.authenticate_user(store, " ANN@example.com", "correct horse") == {"user": created}
    store.close()


@pytest.mark.parametrize("email, password", [
    ("ann@example.com", "wrong horse"),
    ("nobody@example.com", "correct horse"),
    ("ann@example.com", ""),
])
def test_authenticate_user_rejects_with_one_message(store: Store, email: str, password: str) -> None:
    make_user(store, "ann")
    with pytest.raises(InvalidCredentials) as caught:
        accounts.authenticate_user(store, email, password)
    assert caught.value.message == "email or password is wrong"


def test_get_unknown_user_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="user not found"):
        store.get_user("no-such-user")


# --- acting user that does not exist ----------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda store, w: store.create_workspace("ghost", "W"),
    lambda store, w: store.list_workspaces("ghost", 10, 0),
    lambda store, w: store.get_workspace("ghost", w["ws"]),
    lambda store, w: store.update_workspace("ghost", w["ws"], name="X"),
    lambda store, w: store.delete_workspace("ghost", w["ws"]),
    lambda store, w: store.create_conversation("ghost", w["ws"], "T"),
    lambda store, w: store.list_conversations("ghost", w["ws"], 10, 0),
    lambda store, w: store.get_conversation("ghost", w["conv"]),
    lambda store, w: store.update_conversation("ghost", w["conv"], topic="X"),
    lambda store, w: store.delete_conversation("ghost", w["conv"]),
    lambda store, w: store.store_input("ghost", w["conv"], "hi"),
    lambda store, w: store.list_messages("ghost", w["conv"]),
    lambda store, w: store.iter_conversation("ghost", w["conv"]),
    lambda store, w: store.iter_history("ghost"),
    lambda store, w: store.count_history("ghost"),
    lambda store, w: store.search_messages("ghost", "hello"),
])
def test_unknown_acting_user_is_not_found(store: Store, world: dict[str, str], call) -> None:
    with pytest.raises(NotFound, match="user not found"):
        call(store, world)


# --- workspaces ------------------------------------------------------------------------------------------

def test_create_and_get_workspace(store: Store, world: dict[str, str]) -> None:
    created = store.create_workspace(world["ann"], "Work", "desc", {"color": "red"})["workspace"]
    assert created["owner_id"] == world["ann"] and created["metadata"] == {"color": "red"}
    assert created["created_at"] == created["updated_at"] and created["created_at"].endswith("+00:00")
    assert store.get_workspace(world["ann"], created["id"]) == {"workspace": created}


@pytest.mark.parametrize("reader, allowed", [("ann", True), ("bob", True), ("cat", False)])
def test_workspace_is_readable_by_owner_and_participants(store: Store, world: dict[str, str],
                                                         reader: str, allowed: bool) -> None:
    if allowed:
        assert store.get_workspace(world[reader], world["ws"])["workspace"]["id"] == world["ws"]
    else:
        with pytest.raises(Forbidden):
            store.get_workspace(world[reader], world["ws"])


def test_missing_workspace_is_not_found(store: Store, world: dict[str, str]) -> None:
    with pytest.raises(NotFound, match="workspace not found"):
        store.get_workspace(world["ann"], "no-such-workspace")


def test_list_workspaces_pages_own_workspaces_newest_first(store: Store, world: dict[str, str]) -> None:
    for name in ("B", "C", "D"):
        store.create_workspace(world["ann"], name)
    store.create_workspace(world["bob"], "Bob's")
    page = store.list_workspaces(world["ann"], 2, 1)
    assert [w["name"] for w in page["workspaces"]] == ["C", "B"]
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)


@pytest.mark.parametrize("limit, offset, expected", [(0, -5, (1, 0)), (5000, 0, (1000, 0)), (3, 2, (3, 2))])
def test_list_limits_are_clamped(store: Store, world: dict[str, str], limit: int, offset: int,
                                 expected: tuple[int, int]) -> None:
    page = store.list_workspaces(world["ann"], limit, offset)
    assert (page["limit"], page["offset"]) == expected


def test_update_workspace_changes_only_given_fields(store: Store, world: dict[str, str]) -> None:
    before = store.get_workspace(world["ann"], world["ws"])["workspace"]
    after = store.update_workspace(world["ann"], world["ws"], description="new")["workspace"]
    assert (after["name"], after["description"], after["metadata"]) == ("Home", "new", {})
    assert after["updated_at"] >= before["updated_at"] and after["created_at"] == before["created_at"]


@pytest.mark.parametrize("call", [
    lambda store, w, who: store.update_workspace(w[who], w["ws"], name="Mine"),
    lambda store, w, who: store.delete_workspace(w[who], w["ws"]),
    lambda store, w, who: store.create_conversation(w[who], w["ws"], "Sneaky"),
    lambda store, w, who: store.update_conversation(w[who], w["conv"], topic="Mine"),
    lambda store, w, who: store.delete_conversation(w[who], w["conv"]),
])
@pytest.mark.parametrize("who", ["bob", "cat"])
def test_only_the_owner_manages_a_workspace(store: Store, world: dict[str, str], call, who: str) -> None:
    with pytest.raises(Forbidden):
        call(store, world, who)


@pytest.mark.parametrize("metadata", [["not", "a", "dict"], {"bad": object()}])
def test_invalid_metadata_is_rejected(store: Store, world: dict[str, str], metadata: object) -> None:
    with pytest.raises(InvalidArguments):
        store.create_workspace(world["ann"], "W", metadata=metadata)  # type: ignore[arg-type]


def test_delete_workspace_cascades_to_conversations_messages_and_index(store: Store,
                                                                       world: dict[str, str]) -> None:
    store.store_input(world["bob"], world["conv"], "remember the zebra")
    assert store.delete_workspace(world["ann"], world["ws"]) == {"deleted": True, "id": world["ws"]}
    with pytest.raises(NotFound, match="conversation not found"):
        store.get_conversation(world["ann"], world["conv"])
    assert store.search_messages(world["ann"], "zebra")["count"] == 0
    # The tables and the index themselves: tests/memory_service/sqlite/test_messages_search.py.


# --- conversations ----------------------------------------------------------------------------------------

def test_named_participants_are_invited_once_each_and_only_the_creator_takes_part(
        store: Store, world: dict[str, str]) -> None:
    created = store.create_conversation(
        world["ann"], world["ws"], "Team", [world["cat"], world["ann"], world["bob"], world["cat"]], {"k": 1})
    conv = created["conversation"]
    assert conv["participant_ids"] == [world["ann"]] and conv["created_at"] == conv["updated_at"]
    assert [i["invitee_id"] for i in created["invitations"]] == [world["cat"], world["bob"]]
    assert {i["status"] for i in created["invitations"]} == {"pending"}
    assert conv["metadata"] == {"k": 1} and conv["workspace_id"] == world["ws"]
    with pytest.raises(Forbidden):
        store.get_conversation(world["cat"], conv["id"])


def test_unknown_participant_is_not_found_and_nothing_is_stored(store: Store, world: dict[str, str]) -> None:
    with pytest.raises(NotFound, match="participant not found"):
        store.create_conversation(world["ann"], world["ws"], "T", ["ghost"])
    assert store.list_conversations(world["ann"], world["ws"], 10, 0)["total"] == 1


@pytest.mark.parametrize("reader, allowed", [("ann", True), ("bob", True), ("cat", False)])
def test_conversation_is_readable_by_owner_and_participants(store: Store, world: dict[str, str],
                                                            reader: str, allowed: bool) -> None:
    if allowed:
        conversation = store.get_conversation(world[reader], world["conv"])["conversation"]
        assert conversation["topic"] == "Plans"
    else:
        with pytest.raises(Forbidden):
            store.get_conversation(world[reader], world["conv"])


def test_missing_conversation_is_not_found(store: Store, world: dict[str, str]) -> None:
    with pytest.raises(NotFound, match="conversation not found"):
        store.get_conversation(world["ann"], "no-such-conversation")


def test_list_conversations_by_access_most_recently_updated_first(store: Store,
                                                                   world: dict[str, str]) -> None:
    private = store.create_conversation(world["ann"], world["ws"], "Private")["conversation"]
    store.store_input(world["ann"], world["conv"], "bump")
    owner_view = store.list_conversations(world["ann"], world["ws"], 10, 0)
    assert [c["id"] for c in owner_view["conversations"]] == [world["conv"], private["id"]]
    assert owner_view["total"] == 2
    bob_view = store.list_conversations(world["bob"], world["ws"], 10, 0)
    assert [c["id"] for c in bob_view["conversations"]] == [world["conv"]] and bob_view["total"] == 1
    with pytest.raises(Forbidden):
        store.list_conversations(world["cat"], world["ws"], 10, 0)


def test_update_conversation_removes_the_left_out_and_invites_the_new_keeping_the_creator(
        store: Store, world: dict[str, str]) -> None:
    result = store.update_conversation(
        world["ann"], world["conv"], participant_ids=[world["cat"]], metadata={"x": 1})
    updated = result["conversation"]
    assert updated["participant_ids"] == [world["ann"]]
    assert [i["invitee_id"] for i in result["invitations"]] == [world["cat"]]
    assert (updated["topic"], updated["metadata"]) == ("Plans", {"x": 1})
    for outsider in ("bob", "cat"):
        with pytest.raises(Forbidden):
            store.get_conversation(world[outsider], world["conv"])
    store.respond_invitation(world["cat"], result["invitations"][0]["id"], accept=True)
    assert store.get_conversation(world["cat"], world["conv"])["conversation"]["participant_ids"] == [
        world["ann"], world["cat"]]


def test_delete_conversation(store: Store, world: dict[str, str]) -> None:
    result = store.delete_conversation(world["ann"], world["conv"])
    assert result == {"deleted": True, "id": world["conv"]}
    with pytest.raises(NotFound):
        store.get_conversation(world["ann"], world["conv"])
