"""Workspaces and conversations through the Core App client API (SPEC §6): CRUD, pagination, deletes that
cascade, and who may see what (docs/DECISIONS.md "Who may do what": Memory's 403 becomes Core's 404)."""

from __future__ import annotations

import uuid

import pytest

from tests.core_app.accounts import sign_up
from tests.core_app.api_calls import (
    assert_error,
    history,
    new_conversation,
    new_workspace,
    post_message,
    wait_for_reply,
)
from tests.core_app.output_stream import stream_url

# --- workspaces ---------------------------------------------------------------------------------------


def test_create_read_update_a_workspace(client, alice):
    created = client.post("/v1/workspace", headers=alice.headers, json={
        "name": "Allotment", "description": "plot 7", "metadata": {"colour": "green"}})

    assert created.status_code == 201
    workspace = created.get_json()["workspace"]
    assert workspace["owner_id"] == alice.id
    assert (workspace["name"], workspace["description"], workspace["metadata"]) == (
        "Allotment", "plot 7", {"colour": "green"})

    updated = client.put(f"/v1/workspace/{workspace['id']}", headers=alice.headers,
                         json={"name": "Allotment 2", "metadata": {"colour": "red"}})

    assert updated.status_code == 200
    assert updated.get_json()["workspace"]["name"] == "Allotment 2"
    read = client.get(f"/v1/workspace/{workspace['id']}", headers=alice.headers).get_json()["workspace"]
    assert (read["name"], read["description"], read["metadata"]) == ("Allotment 2", "plot 7", {"colour": "red"})


def test_workspaces_are_paginated_newest_first_with_a_total(client):
    dave = sign_up(client, "Dave")
    ids = [new_workspace(client, dave, f"W{index}")["id"] for index in range(3)]

    pages = [client.get("/v1/workspace", headers=dave.headers, query_string={"limit": 2, "offset": offset})
             for offset in (0, 2, 4)]

    assert [page.status_code for page in pages] == [200, 200, 200]
    bodies = [page.get_json() for page in pages]
    assert [body["total"] for body in bodies] == [3, 3, 3]
    assert [(body["limit"], body["offset"]) for body in bodies] == [(2, 0), (2, 2), (2, 4)]
    seen = [workspace["id"] for body in bodies for workspace in body["workspaces"]]
    assert seen == ids[::-1]
    default = client.get("/v1/workspace", headers=dave.headers).get_json()
    assert [w["id"] for w in default["workspaces"]] == ids[::-1]


def test_a_user_lists_only_their_own_workspaces(client, alice, carol):
    mine = new_workspace(client, carol, "Carol's")

    listed = client.get("/v1/workspace", headers=alice.headers, query_string={"limit": 1000}).get_json()

    assert mine["id"] not in [workspace["id"] for workspace in listed["workspaces"]]


BAD_PAGES = [
    {"limit": "0"},
    {"limit": "-1"},
    {"limit": "abc"},
    {"limit": ""},
    {"limit": "1.5"},
    {"limit": "1001"},
    {"offset": "-1"},
    {"offset": "abc"},
    {"offset": "1e3"},
    {"page": "2"},
]


@pytest.mark.parametrize("query", BAD_PAGES, ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()))
def test_workspace_list_rejects_bad_query_parameters(client, alice, query):
    response = client.get("/v1/workspace", headers=alice.headers, query_string=query)

    error = assert_error(response, 400, "invalid_arguments")
    assert error["details"]["errors"][0]["field"] == next(iter(query))


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": 7}, "name"),
    ({"name": "ok", "description": "x" * 501}, "description"),
    ({"name": "ok", "metadata": ["a"]}, "metadata"),
    ({"name": "ok", "metadata": {str(i): i for i in range(101)}}, "metadata"),
    ({"name": "ok", "owner_id": "someone-else"}, "owner_id"),
], ids=lambda v: repr(v)[:40])
def test_workspace_create_rejects_bad_bodies(client, alice, body, field):
    error = assert_error(client.post("/v1/workspace", headers=alice.headers, json=body), 400, "invalid_arguments")

    assert field in [item["field"] for item in error["details"]["errors"]]


@pytest.mark.parametrize("body", [
    {"name": ""},
    {"name": "x" * 101},
    {"description": "x" * 501},
    {"metadata": "colour=green"},
    {"owner_id": "someone-else"},
], ids=lambda v: repr(v)[:40])
def test_workspace_update_rejects_bad_bodies(client, alice, body):
    workspace = new_workspace(client, alice)

    response = client.put(f"/v1/workspace/{workspace['id']}", headers=alice.headers, json=body)

    assert_error(response, 400, "invalid_arguments")
    unchanged = client.get(f"/v1/workspace/{workspace['id']}", headers=alice.headers).get_json()["workspace"]
    assert unchanged["name"] == workspace["name"]


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"data": "name=x", "content_type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ({"data": "{", "content_type": "application/json"}, 400, "invalid_request"),
    ({"json": ["x"]}, 400, "invalid_request"),
], ids=["form", "bad-json", "json-array"])
def test_workspace_create_needs_a_json_object(client, alice, kwargs, status, code):
    assert_error(client.post("/v1/workspace", headers=alice.headers, **kwargs), status, code)


def test_deleting_a_workspace_removes_its_conversations_and_messages(client, alice):
    workspace = new_workspace(client, alice)
    conversation = new_conversation(client, alice, workspace["id"])
    word = f"marrow{uuid.uuid4().hex[:8]}"
    wait_for_reply(client, alice, conversation["id"], post_message(client, alice, conversation["id"], word))
    assert client.post("/v1/search", headers=alice.headers, json={"query": word}).get_json()["count"] >= 1

    deleted = client.delete(f"/v1/workspace/{workspace['id']}", headers=alice.headers)

    assert deleted.status_code == 200
    assert deleted.get_json() == {"deleted": True, "id": workspace["id"]}
    assert_error(client.get(f"/v1/workspace/{workspace['id']}", headers=alice.headers), 404, "not_found")
    assert_error(client.get(f"/v1/conversation/{conversation['id']}", headers=alice.headers), 404, "not_found")
    assert_error(client.get(f"/v1/conversation/{conversation['id']}/messages", headers=alice.headers),
                 404, "not_found")
    assert client.post("/v1/search", headers=alice.headers, json={"query": word}).get_json()["count"] == 0
    assert_error(client.delete(f"/v1/workspace/{workspace['id']}", headers=alice.headers), 404, "not_found")


# --- conversations ------------------------------------------------------------------------------------


def test_create_read_update_a_conversation(client, alice, bob):
    workspace = new_workspace(client, alice)

    created = client.post("/v1/conversation", headers=alice.headers, json={
        "workspace_id": workspace["id"], "topic": "Seeds", "participant_ids": [bob.id], "metadata": {"n": 1}})

    assert created.status_code == 201
    conversation = created.get_json()["conversation"]
    assert conversation["workspace_id"] == workspace["id"]
    assert conversation["participant_ids"] == [alice.id]  # Bob is invited, and takes part once he accepts
    [invitation] = created.get_json()["invitations"]
    assert (invitation["invitee_id"], invitation["status"]) == (bob.id, "pending")
    assert (conversation["topic"], conversation["metadata"]) == ("Seeds", {"n": 1})
    accepted = client.post(f"/v1/invitations/{invitation['id']}/accept", headers=bob.headers)
    assert accepted.status_code == 200, accepted.get_json()

    updated = client.put(f"/v1/conversation/{conversation['id']}", headers=alice.headers,
                         json={"topic": "Seedlings", "metadata": {"n": 2}})

    assert updated.status_code == 200
    read = client.get(f"/v1/conversation/{conversation['id']}", headers=alice.headers).get_json()["conversation"]
    assert (read["topic"], read["metadata"], read["participant_ids"]) == ("Seedlings", {"n": 2}, [alice.id, bob.id])


def test_conversations_are_paginated_with_a_total(client, alice):
    workspace = new_workspace(client, alice)
    ids = [new_conversation(client, alice, workspace["id"], topic=f"T{index}")["id"] for index in range(3)]

    pages = [client.get("/v1/conversation", headers=alice.headers,
                        query_string={"workspace_id": workspace["id"], "limit": 2, "offset": offset}).get_json()
             for offset in (0, 2)]

    assert [page["total"] for page in pages] == [3, 3]
    assert [len(page["conversations"]) for page in pages] == [2, 1]
    seen = [conversation["id"] for page in pages for conversation in page["conversations"]]
    assert sorted(seen) == sorted(ids)
    assert seen == ids[::-1]  # most recently updated first


@pytest.mark.parametrize("query", [
    *BAD_PAGES,
    {},
    {"workspace_id": ""},
    {"workspace_id": "bad.id"},
    {"workspace_id": "x" * 65},
], ids=lambda q: "&".join(f"{k}={v[:10]}" for k, v in q.items()) or "no-workspace")
def test_conversation_list_rejects_bad_query_parameters(client, alice, query):
    workspace = new_workspace(client, alice)
    if query:
        query = {"workspace_id": workspace["id"], **query}

    response = client.get("/v1/conversation", headers=alice.headers, query_string=query)

    assert_error(response, 400, "invalid_arguments")


@pytest.mark.parametrize(("changes", "field"), [
    ({"topic": ""}, "topic"),
    ({"topic": "  "}, "topic"),
    ({"topic": "x" * 201}, "topic"),
    ({"topic": None}, "topic"),
    ({"workspace_id": "bad.id"}, "workspace_id"),
    ({"workspace_id": None}, "workspace_id"),
    ({"participant_ids": "someone"}, "participant_ids"),
    ({"participant_ids": [1]}, "participant_ids.0"),
    ({"participant_ids": ["bad id"]}, "participant_ids.0"),
    ({"participant_ids": [f"u{i}" for i in range(101)]}, "participant_ids"),
    ({"metadata": 3}, "metadata"),
    ({"title": "extra"}, "title"),
], ids=lambda v: repr(v)[:40])
def test_conversation_create_rejects_bad_bodies(client, alice, changes, field):
    workspace = new_workspace(client, alice)
    body = {"workspace_id": workspace["id"], "topic": "Seeds", **changes}
    body = {key: value for key, value in body.items() if value is not None}

    error = assert_error(client.post("/v1/conversation", headers=alice.headers, json=body), 400, "invalid_arguments")

    assert field in [item["field"] for item in error["details"]["errors"]]


@pytest.mark.parametrize("body", [
    {"topic": ""},
    {"topic": "x" * 201},
    {"participant_ids": "bob"},
    {"workspace_id": "elsewhere"},
], ids=lambda v: repr(v)[:40])
def test_conversation_update_rejects_bad_bodies(client, alice, body):
    conversation = new_conversation(client, alice)

    response = client.put(f"/v1/conversation/{conversation['id']}", headers=alice.headers, json=body)

    assert_error(response, 400, "invalid_arguments")


def test_a_conversation_cannot_name_an_unknown_participant(client, alice):
    workspace = new_workspace(client, alice)

    response = client.post("/v1/conversation", headers=alice.headers, json={
        "workspace_id": workspace["id"], "topic": "Seeds", "participant_ids": [str(uuid.uuid4())]})

    assert_error(response, 404, "not_found")
    listed = client.get("/v1/conversation", headers=alice.headers, query_string={"workspace_id": workspace["id"]})
    assert listed.get_json()["total"] == 0


def test_deleting_a_conversation_removes_its_messages(client, alice):
    workspace = new_workspace(client, alice)
    conversation = new_conversation(client, alice, workspace["id"])
    kept = new_conversation(client, alice, workspace["id"])
    word = f"squash{uuid.uuid4().hex[:8]}"
    wait_for_reply(client, alice, conversation["id"], post_message(client, alice, conversation["id"], word))
    wait_for_reply(client, alice, kept["id"], post_message(client, alice, kept["id"], f"{word} kept"))

    deleted = client.delete(f"/v1/conversation/{conversation['id']}", headers=alice.headers)

    assert deleted.status_code == 200
    assert deleted.get_json() == {"deleted": True, "id": conversation["id"]}
    assert_error(client.get(f"/v1/conversation/{conversation['id']}", headers=alice.headers), 404, "not_found")
    assert_error(client.get(f"/v1/conversation/{conversation['id']}/messages", headers=alice.headers),
                 404, "not_found")
    found = client.post("/v1/search", headers=alice.headers, json={"query": word}).get_json()["results"]
    assert found and {hit["conversation_id"] for hit in found} == {kept["id"]}
    listed = client.get("/v1/conversation", headers=alice.headers,
                        query_string={"workspace_id": workspace["id"]}).get_json()
    assert [c["id"] for c in listed["conversations"]] == [kept["id"]]
    assert listed["total"] == 1


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/v1/workspace/bad.id"),
    ("put", "/v1/workspace/bad.id"),
    ("delete", "/v1/workspace/bad.id"),
    ("get", "/v1/workspace/bad%20id"),
    ("get", "/v1/workspace/" + "x" * 65),
    ("get", "/v1/workspace/caf%C3%A9"),
    ("get", "/v1/conversation/bad.id"),
    ("put", "/v1/conversation/bad.id"),
    ("delete", "/v1/conversation/bad.id"),
    ("get", "/v1/conversation/%2E%2E"),
    ("get", "/v1/conversation/a%2Fb"),
    ("get", "/v1/conversation/bad.id/messages"),
    ("post", "/v1/conversation/bad.id/messages"),
    ("get", "/v1/conversation/bad.id/messages/stream"),
    ("get", "/v1/conversation/" + "x" * 65 + "/messages"),
], ids=lambda v: v[:40])
def test_ids_with_bad_characters_are_not_routes(client, alice, method, path):
    response = getattr(client, method)(path, headers=alice.headers, json={"content": "hi", "name": "x"})

    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/v1/workspace/{id}", None),
    ("put", "/v1/workspace/{id}", {"name": "x"}),
    ("delete", "/v1/workspace/{id}", None),
    ("get", "/v1/conversation/{id}", None),
    ("put", "/v1/conversation/{id}", {"topic": "x"}),
    ("delete", "/v1/conversation/{id}", None),
    ("get", "/v1/conversation/{id}/messages", None),
    ("post", "/v1/conversation/{id}/messages", {"content": "hi"}),
    ("get", "/v1/conversation/{id}/messages/stream", None),
    ("post", "/v1/conversation", {"workspace_id": "{id}", "topic": "x"}),
    ("get", "/v1/conversation?workspace_id={id}", None),
], ids=lambda v: v if isinstance(v, str) else "")
def test_unknown_ids_are_404(client, alice, method, path, body):
    ids = {"id": str(uuid.uuid4())}

    response = getattr(client, method)(path.format(**ids), headers=alice.headers, json=fill(body, ids))

    assert_error(response, 404, "not_found")


# --- participants and strangers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(client, alice, bob):
    """Alice's workspace with a conversation Bob takes part in and one he does not."""
    workspace = new_workspace(client, alice, "Shared garden")
    together = new_conversation(client, alice, workspace["id"], participants=(bob,), topic="Together")
    private = new_conversation(client, alice, workspace["id"], topic="Alice only")
    message = post_message(client, alice, together["id"], "Bob, the beans need water")
    wait_for_reply(client, alice, together["id"], message)
    return {"workspace": workspace["id"], "conversation": together["id"], "private": private["id"]}


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/v1/conversation/{conversation}", None),
    ("get", "/v1/conversation/{conversation}/messages", None),
    ("get", "/v1/workspace/{workspace}", None),
    ("post", "/v1/analyze", {"conversation_id": "{conversation}", "analysis_type": "summary"}),
    ("post", "/v1/context", {"conversation_id": "{conversation}"}),
    ("post", "/v1/context", {"conversation_id": "{conversation}", "query": "beans"}),
], ids=lambda v: v if isinstance(v, str) else repr(v)[:30])
def test_a_participant_may_read_the_conversation(client, bob, shared, method, path, body):
    response = getattr(client, method)(path.format(**shared), headers=bob.headers, json=fill(body, shared))

    assert response.status_code == 200, response.get_json()


def test_a_participant_may_post_and_sees_the_conversation_in_the_workspace(client, alice, bob, shared):
    message = post_message(client, bob, shared["conversation"], "Watered the beans")

    assert message["sender_id"] == bob.id
    assert message["id"] in [m["id"] for m in history(client, alice, shared["conversation"])]
    listed = client.get("/v1/conversation", headers=bob.headers, query_string={"workspace_id": shared["workspace"]})
    assert listed.status_code == 200
    assert [c["id"] for c in listed.get_json()["conversations"]] == [shared["conversation"]]
    wait_for_reply(client, bob, shared["conversation"], message)


def test_a_participant_may_open_the_stream(client, bob, shared):
    response = client.get(stream_url(shared["conversation"]), headers=bob.headers, buffered=False)
    try:
        assert response.status_code == 200
    finally:
        response.close()


@pytest.mark.parametrize(("method", "path", "body"), [
    ("put", "/v1/conversation/{conversation}", {"topic": "Bob's now"}),
    ("put", "/v1/conversation/{conversation}", {"participant_ids": []}),
    ("delete", "/v1/conversation/{conversation}", None),
    ("put", "/v1/workspace/{workspace}", {"name": "Bob's now"}),
    ("delete", "/v1/workspace/{workspace}", None),
    ("post", "/v1/conversation", {"workspace_id": "{workspace}", "topic": "Bob's own"}),
    ("get", "/v1/conversation/{private}", None),
    ("get", "/v1/conversation/{private}/messages", None),
], ids=lambda v: v if isinstance(v, str) else repr(v)[:30])
def test_a_participant_may_not_manage_the_conversation_and_is_told_404(client, alice, bob, shared,
                                                                      method, path, body):
    """Only the workspace owner may change or delete; Memory's 403 is a 404 here (docs/DECISIONS.md)."""
    response = getattr(client, method)(path.format(**shared), headers=bob.headers, json=fill(body, shared))

    assert_error(response, 404, "not_found")
    kept = client.get(f"/v1/conversation/{shared['conversation']}", headers=alice.headers)
    assert kept.status_code == 200
    assert kept.get_json()["conversation"]["topic"] == "Together"
    assert kept.get_json()["conversation"]["participant_ids"] == [alice.id, bob.id]
    assert client.get(f"/v1/workspace/{shared['workspace']}", headers=alice.headers).get_json()[
        "workspace"]["name"] == "Shared garden"


STRANGER_REQUESTS = [
    ("get", "/v1/conversation/{conversation}", None),
    ("put", "/v1/conversation/{conversation}", {"topic": "Mine now"}),
    ("delete", "/v1/conversation/{conversation}", None),
    ("get", "/v1/conversation/{conversation}/messages", None),
    ("post", "/v1/conversation/{conversation}/messages", {"content": "let me in"}),
    ("get", "/v1/conversation/{conversation}/messages/stream", None),
    ("post", "/v1/analyze", {"conversation_id": "{conversation}", "analysis_type": "summary"}),
    ("post", "/v1/analyze", {"conversation_id": "{conversation}", "analysis_type": "activity"}),
    ("post", "/v1/context", {"conversation_id": "{conversation}"}),
    ("post", "/v1/context", {"conversation_id": "{conversation}", "query": "beans"}),
    ("get", "/v1/workspace/{workspace}", None),
    ("put", "/v1/workspace/{workspace}", {"name": "Mine now"}),
    ("delete", "/v1/workspace/{workspace}", None),
    ("get", "/v1/conversation?workspace_id={workspace}", None),
    ("post", "/v1/conversation", {"workspace_id": "{workspace}", "topic": "Squatting"}),
]


def fill(body: dict | None, ids: dict) -> dict | None:
    if body is None:
        return None
    return {key: value.format(**ids) if isinstance(value, str) else value for key, value in body.items()}


@pytest.mark.parametrize(("method", "path", "body"), STRANGER_REQUESTS,
                         ids=lambda v: v if isinstance(v, str) else repr(v)[:30])
def test_a_stranger_gets_404_exactly_as_for_a_missing_object(client, alice, carol, shared, method, path, body):
    missing = {"workspace": str(uuid.uuid4()), "conversation": str(uuid.uuid4())}

    foreign = getattr(client, method)(path.format(**shared), headers=carol.headers, json=fill(body, shared),
                                      buffered=False)
    absent = getattr(client, method)(path.format(**missing), headers=carol.headers, json=fill(body, missing),
                                     buffered=False)
    try:
        foreign_error = assert_error(foreign, 404, "not_found")
        assert foreign_error == assert_error(absent, 404, "not_found")
    finally:
        foreign.close()
        absent.close()
    assert client.get(f"/v1/conversation/{shared['conversation']}", headers=alice.headers).status_code == 200
    assert client.get(f"/v1/workspace/{shared['workspace']}", headers=alice.headers).status_code == 200


def test_removing_a_participant_takes_their_access_away(client, alice, bob):
    conversation = new_conversation(client, alice, participants=(bob,))
    assert client.get(f"/v1/conversation/{conversation['id']}", headers=bob.headers).status_code == 200

    updated = client.put(f"/v1/conversation/{conversation['id']}", headers=alice.headers, json={"participant_ids": []})

    assert updated.status_code == 200
    assert updated.get_json()["conversation"]["participant_ids"] == [alice.id]
    assert_error(client.get(f"/v1/conversation/{conversation['id']}", headers=bob.headers), 404, "not_found")
