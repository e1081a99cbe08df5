"""The Memory Service's tools and resources through the Flask test client (SPEC §3.1, §4)."""

from __future__ import annotations

import json

import pytest

from memory_service.app import create_app


@pytest.fixture
def app(tmp_path):
    return create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/memory.db", "MAX_BODY_BYTES": "65536",
                       "SERVICE_TOKEN": ""})


@pytest.fixture
def client(app):
    return app.test_client()


def call(client, tool, key=None, **arguments):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/tool/{tool}", json={"arguments": arguments}, headers=headers)


def result(client, tool, **arguments):
    response = call(client, tool, **arguments)
    assert response.status_code == 200, response.json
    return response.json["result"]


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.json["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.fixture
def world(client):
    """Two users; alice owns a workspace with a conversation holding two messages."""
    alice = result(client, "create_user", email="alice@example.com", name="Alice", password="password1")["user"]
    bob = result(client, "create_user", email="bob@example.com", name="Bob", password="password2")["user"]
    ws = result(client, "create_workspace", user_id=alice["id"], name="Home")["workspace"]
    conv = result(client, "create_conversation", user_id=alice["id"], workspace_id=ws["id"],
                  topic="Trips")["conversation"]
    msgs = [result(client, "store_input", user_id=alice["id"],
                   input_data={"conversation_id": conv["id"], "content": text})
            for text in ("We should visit Lisbon in spring", "Book the train to Porto")]
    return {"alice": alice, "bob": bob, "ws": ws, "conv": conv, "msgs": msgs}


def sse_events(response) -> list[tuple[str, dict]]:
    events = []
    for block in response.get_data(as_text=True).strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


def test_a_conversation_round_trip(client, world):
    alice, conv = world["alice"], world["conv"]
    stored = world["msgs"][1]
    assert stored["status"] == "stored" and stored["sequence"] == 2 and stored["user_id"] == alice["id"]
    listed = result(client, "list_messages", user_id=alice["id"], conversation_id=conv["id"])
    assert [m["content"] for m in listed["messages"]] == ["We should visit Lisbon in spring",
                                                          "Book the train to Porto"]
    assert [m["sequence"] for m in listed["messages"]] == [1, 2]
    after = result(client, "list_messages", user_id=alice["id"], conversation_id=conv["id"], after_sequence=1)
    assert [m["sequence"] for m in after["messages"]] == [2]
    result(client, "store_input", user_id=alice["id"], input_data={"conversation_id": conv["id"], "content": "3rd"})
    latest = result(client, "list_messages", user_id=alice["id"], conversation_id=conv["id"], limit=2, latest=True)
    assert [m["sequence"] for m in latest["messages"]] == [2, 3]
    assert result(client, "authenticate_user", email="ALICE@example.com", password="password1")["user"]["id"] \
        == alice["id"]


def test_search_ranks_the_matching_message(client, world):
    found = result(client, "search_messages", user_id=world["alice"]["id"], query="train to Porto?")
    assert found["results"][0]["content"] == "Book the train to Porto"
    assert found["results"][0]["score"] > 0


@pytest.mark.parametrize("query", ['"', "*", "NEAR(", "AND", "(unbalanced", "content:x", "a OR b", "Lisbon)",
                                   "x" * 10_000, "porto " * 2000])
def test_search_takes_any_text(client, world, query):
    response = call(client, "search_messages", user_id=world["alice"]["id"], query=query)
    assert response.status_code == 200, response.json
    assert isinstance(response.json["result"]["results"], list)


def test_search_treats_operators_as_words(client, world):
    alice = world["alice"]["id"]
    conv = world["conv"]["id"]
    result(client, "store_input", user_id=alice, input_data={"conversation_id": conv, "content": "salt AND pepper"})
    found = result(client, "search_messages", user_id=alice, query='AND "pepper')
    assert [r["content"] for r in found["results"]] == ["salt AND pepper"]


def test_idempotency_key_stores_once(client, world):
    alice, conv = world["alice"]["id"], world["conv"]["id"]
    args = {"user_id": alice, "input_data": {"conversation_id": conv, "content": "only once"}}
    first = call(client, "store_input", key="key-0001-store", **args).json["result"]
    again = call(client, "store_input", key="key-0001-store", **args).json["result"]
    # Compared without `replayed`, the one key a replay changes.
    assert {k: v for k, v in again.items() if k != "replayed"} == {k: v for k, v in first.items() if k != "replayed"}
    assert (first["replayed"], again["replayed"]) == (False, True)
    listed = result(client, "list_messages", user_id=alice, conversation_id=conv)
    assert [m["content"] for m in listed["messages"]].count("only once") == 1
    other = call(client, "store_input", key="key-0001-store",
                 user_id=alice, input_data={"conversation_id": conv, "content": "different"})
    assert_error(other, 409, "conflict")


def test_claim_reply_through_the_tool_wins_once_and_replays_on_retry(client, world):
    alice, conv = world["alice"]["id"], world["conv"]["id"]
    stored = result(client, "store_input", user_id=alice, input_data={"conversation_id": conv, "content": "hi"})
    message_id = stored["message"]["id"]
    first = call(client, "claim_reply", key="key-0001-claim", user_id=alice, message_id=message_id)
    assert first.json["result"] == {"claimed": True, "message_id": message_id}
    retry = call(client, "claim_reply", key="key-0001-claim", user_id=alice, message_id=message_id)
    assert retry.json["result"] == {"claimed": True, "message_id": message_id}
    later = call(client, "claim_reply", key="key-0002-claim", user_id=alice, message_id=message_id)
    assert later.json["result"] == {"claimed": False, "message_id": message_id}
    assert_error(call(client, "claim_reply", user_id=alice, message_id="no-such-message"), 404, "not_found")


def test_a_won_claim_brings_the_turns_before_its_message_and_a_lost_one_none(client, world):
    alice, conv = world["alice"]["id"], world["conv"]["id"]
    posted = [result(client, "store_input", user_id=alice, input_data={"conversation_id": conv, "content": text})
              ["message"] for text in ("one", "two", "three", "four")]
    claimed = result(client, "claim_reply", key="key-0003-claim", user_id=alice, message_id=posted[2]["id"],
                     recent=2)
    assert claimed["claimed"] is True
    assert [m["id"] for m in claimed["recent"]] == [posted[0]["id"], posted[1]["id"]]  # before it, in order
    # A retry whose first answer was lost: the remembered claim, the turns read again.
    again = result(client, "claim_reply", key="key-0003-claim", user_id=alice, message_id=posted[2]["id"], recent=2)
    assert again == claimed
    lost = result(client, "claim_reply", key="key-0004-claim", user_id=alice, message_id=posted[2]["id"], recent=2)
    assert lost == {"claimed": False, "message_id": posted[2]["id"]}
    assert_error(call(client, "claim_reply", user_id=alice, message_id=posted[3]["id"], recent=101),
                 400, "invalid_arguments")


def test_resources_stream_in_order(client, world):
    alice, conv = world["alice"]["id"], world["conv"]["id"]
    response = client.get(f"/resource/conversation/{conv}?user_id={alice}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.mimetype == "text/event-stream"
    events = sse_events(response)
    assert [data["sequence"] for _, data in events[:-1]] == [1, 2]
    assert events[-1] == ("end", {"count": 2})
    newest = sse_events(client.get(f"/resource/history/{alice}/limit/1"))
    assert newest[0][1]["content"] == "Book the train to Porto" and newest[-1] == ("end", {"count": 1})
    one = sse_events(client.get(f"/resource/message/{world['msgs'][0]['item_id']}?user_id={alice}"))
    assert one[0][1]["content"] == "We should visit Lisbon in spring"


def test_delete_workspace_cascades(client, world):
    alice = world["alice"]["id"]
    assert result(client, "delete_workspace", user_id=alice, workspace_id=world["ws"]["id"])["deleted"] is True
    assert_error(call(client, "get_conversation", user_id=alice, conversation_id=world["conv"]["id"]),
                 404, "not_found")
    assert result(client, "search_messages", user_id=alice, query="Lisbon")["count"] == 0


def test_health(client):
    body = client.get("/health").json
    assert body["status"] == "healthy" and body["service"] == "memory"


BAD_BODIES = [
    ("malformed json", b'{"arguments": {', "application/json", 400, "invalid_request"),
    ("json list", b"[1, 2]", "application/json", 400, "invalid_request"),
    ("no arguments", b"{}", "application/json", 400, "invalid_request"),
    ("arguments not object", b'{"arguments": [1]}', "application/json", 400, "invalid_request"),
    ("extra top-level key", b'{"arguments": {}, "x": 1}', "application/json", 400, "invalid_request"),
    ("invalid utf-8", b'{"arguments": {"user_id": "\xff\xfe"}}', "application/json", 400, "invalid_request"),
    ("deep nesting", b"[" * 20_000 + b"]" * 20_000, "application/json", 400, "invalid_request"),
    ("wrong content type", b'{"arguments": {}}', "text/plain", 415, "unsupported_media_type"),
    ("oversize body", b'{"arguments": {"q": "' + b"x" * 70_000 + b'"}}', "application/json", 413,
     "payload_too_large"),
]


@pytest.mark.parametrize("name,body,content_type,status,code", BAD_BODIES, ids=[row[0] for row in BAD_BODIES])
def test_bad_bodies(client, name, body, content_type, status, code):
    response = client.post("/tool/get_user", data=body, content_type=content_type)
    assert_error(response, status, code)


def bad_argument_rows():
    long = "x" * 32_001
    return [
        ("missing argument", "get_user", {}),
        ("extra argument", "get_user", {"user_id": "u1", "admin": True}),
        ("wrong type", "list_workspaces", {"user_id": "u1", "limit": "many"}),
        ("negative limit", "list_workspaces", {"user_id": "u1", "limit": -1}),
        ("huge limit", "list_workspaces", {"user_id": "u1", "limit": 10**9}),
        ("negative offset", "list_workspaces", {"user_id": "u1", "offset": -5}),
        ("id with slash", "get_user", {"user_id": "../etc/passwd"}),
        ("id not a string", "get_user", {"user_id": 42}),
        ("bad email", "create_user", {"email": "nope", "name": "N", "password": "password1"}),
        ("short password", "create_user", {"email": "n@example.com", "name": "N", "password": "short"}),
        ("empty name", "create_workspace", {"user_id": "u1", "name": "  "}),
        ("long description", "create_workspace", {"user_id": "u1", "name": "n", "description": "d" * 501}),
        ("empty content", "store_input", {"user_id": "u1", "input_data": {"conversation_id": "c", "content": ""}}),
        ("oversize content", "store_input", {"user_id": "u1", "input_data": {"conversation_id": "c",
                                                                              "content": long}}),
        ("unknown role", "store_input", {"user_id": "u1", "input_data": {"conversation_id": "c", "content": "x",
                                                                          "role": "root"}}),
        ("extra input field", "store_input", {"user_id": "u1", "input_data": {"conversation_id": "c",
                                                                               "content": "x", "x": 1}}),
        ("empty query", "search_messages", {"user_id": "u1", "query": ""}),
        ("oversize query", "search_messages", {"user_id": "u1", "query": long}),
        ("null argument", "get_user", {"user_id": None}),
        ("invite nobody", "invite_participant", {"user_id": "u1", "conversation_id": "c"}),
        ("invite a bad id", "invite_participant", {"user_id": "u1", "conversation_id": "c", "participant_id": "a b"}),
        ("answer without a yes or no", "respond_invitation", {"user_id": "u1", "invitation_id": "i"}),
        ("answer maybe", "respond_invitation", {"user_id": "u1", "invitation_id": "i", "accept": "maybe"}),
        ("invitations of a bad conversation id", "list_invitations", {"user_id": "u1", "conversation_id": "../c"}),
        ("remove nobody", "remove_participant", {"user_id": "u1", "conversation_id": "c"}),
    ]


@pytest.mark.parametrize("name,tool,arguments", bad_argument_rows(), ids=[r[0] for r in bad_argument_rows()])
def test_bad_arguments(app, name, tool, arguments):
    client = app.test_client()
    response = client.post(f"/tool/{tool}", json={"arguments": arguments})
    assert_error(response, 400, "invalid_arguments")
    assert response.json["error"]["details"]["errors"]


def test_unknown_tool_and_resource(client):
    assert_error(call(client, "drop_tables"), 404, "tool_not_found")
    assert_error(client.get("/resource/secrets/all"), 404, "not_found")
    assert_error(client.get("/resource/../../etc/passwd"), 404, "not_found")


def test_bad_idempotency_key(client, world):
    response = call(client, "get_user", key="short", user_id=world["alice"]["id"])
    assert_error(response, 400, "invalid_request")


def another_users_object_rows():
    return [
        ("get workspace", "get_workspace", lambda w: {"workspace_id": w["ws"]["id"]}),
        ("update workspace", "update_workspace", lambda w: {"workspace_id": w["ws"]["id"], "name": "mine"}),
        ("delete workspace", "delete_workspace", lambda w: {"workspace_id": w["ws"]["id"]}),
        ("list conversations", "list_conversations", lambda w: {"workspace_id": w["ws"]["id"]}),
        ("create conversation", "create_conversation", lambda w: {"workspace_id": w["ws"]["id"], "topic": "x"}),
        ("get conversation", "get_conversation", lambda w: {"conversation_id": w["conv"]["id"]}),
        ("update conversation", "update_conversation", lambda w: {"conversation_id": w["conv"]["id"], "topic": "y"}),
        ("delete conversation", "delete_conversation", lambda w: {"conversation_id": w["conv"]["id"]}),
        ("post message", "store_input", lambda w: {"input_data": {"conversation_id": w["conv"]["id"],
                                                                   "content": "hi"}}),
        ("list messages", "list_messages", lambda w: {"conversation_id": w["conv"]["id"]}),
        ("get message", "get_message", lambda w: {"message_id": w["msgs"][0]["item_id"]}),
        ("update message", "update_message", lambda w: {"message_id": w["msgs"][0]["item_id"], "content": "z"}),
        ("delete message", "delete_message", lambda w: {"message_id": w["msgs"][0]["item_id"]}),
        ("claim a reply", "claim_reply", lambda w: {"message_id": w["msgs"][0]["item_id"]}),
        ("search in conversation", "search_messages", lambda w: {"conversation_id": w["conv"]["id"],
                                                                 "query": "Lisbon"}),
        ("invite oneself", "invite_participant", lambda w: {"conversation_id": w["conv"]["id"],
                                                            "participant_id": w["bob"]["id"]}),
        ("remove the owner", "remove_participant", lambda w: {"conversation_id": w["conv"]["id"],
                                                              "participant_id": w["alice"]["id"]}),
        ("leave", "leave_conversation", lambda w: {"conversation_id": w["conv"]["id"]}),
        ("list the conversation's invitations", "list_invitations", lambda w: {"conversation_id": w["conv"]["id"]}),
    ]


@pytest.mark.parametrize("name,tool,arguments", another_users_object_rows(),
                         ids=[r[0] for r in another_users_object_rows()])
def test_another_users_object_is_refused(client, world, name, tool, arguments):
    response = call(client, tool, user_id=world["bob"]["id"], **arguments(world))
    assert_error(response, 403, "forbidden")
    # Nothing of alice's changed.
    listed = result(client, "list_messages", user_id=world["alice"]["id"], conversation_id=world["conv"]["id"])
    assert [m["content"] for m in listed["messages"]] == ["We should visit Lisbon in spring",
                                                          "Book the train to Porto"]


def test_another_users_history_is_not_searchable(client, world):
    assert result(client, "search_messages", user_id=world["bob"]["id"], query="Lisbon")["count"] == 0


@pytest.mark.parametrize("path", ["conversation/{conv}?user_id={bob}", "message/{msg}?user_id={bob}"])
def test_another_users_resource_is_refused_before_streaming(client, world, path):
    url = "/resource/" + path.format(conv=world["conv"]["id"], bob=world["bob"]["id"],
                                     msg=world["msgs"][0]["item_id"])
    assert_error(client.get(url), 403, "forbidden")


def test_duplicate_email_conflicts(client, world):
    response = call(client, "create_user", email="Alice@Example.com", name="A2", password="password9")
    assert_error(response, 409, "conflict")


def test_wrong_password(client, world):
    response = call(client, "authenticate_user", email="alice@example.com", password="wrong-one")
    assert_error(response, 401, "invalid_credentials")


def test_service_token_required_when_set(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/m.db", "SERVICE_TOKEN": "s3cret-token"})
    client = app.test_client()
    assert_error(client.get("/tools"), 401, "unauthorized")
    assert_error(client.post("/tool/get_user", json={"arguments": {"user_id": "x"}},
                             headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    assert client.get("/tools", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert client.get("/health").status_code == 200


def test_an_invitation_round_trip_through_the_tools(client, world):
    alice, bob, conv = world["alice"]["id"], world["bob"]["id"], world["conv"]["id"]
    invited = call(client, "invite_participant", key="invite-bob-0001", user_id=alice, conversation_id=conv,
                   participant_id=bob)
    replayed = call(client, "invite_participant", key="invite-bob-0001", user_id=alice, conversation_id=conv,
                    participant_id=bob)
    assert invited.status_code == replayed.status_code == 200 and invited.json == replayed.json
    invitation = invited.json["result"]["invitation"]
    assert result(client, "list_invitations", user_id=bob)["invitations"] == [invitation]

    joined = result(client, "respond_invitation", user_id=bob, invitation_id=invitation["id"], accept=True)

    assert joined["conversation"]["participant_ids"] == [alice, bob]
    assert result(client, "search_messages", user_id=bob, query="Lisbon")["count"] == 1
    assert result(client, "leave_conversation", user_id=bob, conversation_id=conv)["removed"] is True
    assert result(client, "search_messages", user_id=bob, query="Lisbon")["count"] == 0
    assert_error(call(client, "leave_conversation", user_id=bob, conversation_id=conv), 403, "forbidden")



def test_the_tool_answers_413_in_the_one_error_shape_and_the_limit_is_a_setting(tmp_path) -> None:
    client = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/m.db", "SERVICE_TOKEN": "",
                         "MAX_METADATA_BYTES": "100"}).test_client()

    def metadata_of(size: int) -> dict[str, str]:  # an object whose JSON is exactly `size` bytes
        return {"k": "x" * (size - len('{"k": ""}'))}

    def call(tool: str, **arguments):
        return client.post(f"/tool/{tool}", json={"arguments": arguments})

    user = call("create_user", email="a@example.com", name="A", password="password1").json["result"]["user"]
    assert call("create_workspace", user_id=user["id"], name="W", metadata=metadata_of(100)).status_code == 200
    response = call("create_workspace", user_id=user["id"], name="W", metadata=metadata_of(101))
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"
    assert response.json["error"]["details"] == {"field": "metadata", "bytes": 101, "max_bytes": 100}
