"""`/v1/context`, `/v1/search` and `/v1/analyze` (SPEC §5–§6): the Cognition tools for the calling user,
over the real Cognition and Memory apps, never reaching into another user's messages."""

from __future__ import annotations

import uuid

import pytest

from tests.core_app.api_calls import assert_error, new_conversation, new_workspace, post_message, wait_for_reply

WORD = f"kohlrabi{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def garden(client, alice, bob, carol):
    """Alice's private and shared (with Bob) conversations, and Carol's own, all mentioning WORD."""
    workspace = new_workspace(client, alice)
    private = new_conversation(client, alice, workspace["id"], topic="Alice's notes")
    together = new_conversation(client, alice, workspace["id"], participants=(bob,), topic="Shared bed")
    carols = new_conversation(client, carol, topic="Carol's plot")
    sent = [
        (alice, private, f"My {WORD} seedlings are sulking, sadly. The frost was terrible."),
        (alice, private, "The greenhouse is finally warm and everything looks wonderful."),
        (bob, together, f"I planted {WORD} along the fence, great spot."),
        (carol, carols, f"Carol's secret {WORD} recipe with butter."),
    ]
    for author, conversation, text in sent:
        wait_for_reply(client, author, conversation["id"], post_message(client, author, conversation["id"], text))
    return {"private": private["id"], "together": together["id"], "carol": carols["id"]}


# --- context ------------------------------------------------------------------------------------------


def test_context_for_a_query_ranks_the_users_matching_messages(client, alice, garden):
    response = client.post("/v1/context", headers=alice.headers, json={"query": f"how are my {WORD}?", "limit": 5})

    assert response.status_code == 200
    body = response.get_json()
    assert (body["user_id"], body["count"]) == (alice.id, len(body["context"]))
    assert body["context"] and body["context"][0]["role"] == "user"
    assert WORD in body["context"][0]["content"]
    assert {item["conversation_id"] for item in body["context"]} <= {garden["private"], garden["together"]}
    scores = [item["score"] for item in body["context"]]
    assert scores == sorted(scores, reverse=True)


def test_context_without_a_query_is_the_newest_messages(client, alice, garden):
    response = client.post("/v1/context", headers=alice.headers, json={"limit": 3})

    assert response.status_code == 200
    body = response.get_json()
    assert body["count"] == len(body["context"]) == 3
    assert all("score" in item for item in body["context"])


def test_context_can_be_limited_to_one_conversation(client, alice, garden):
    response = client.post("/v1/context", headers=alice.headers,
                           json={"query": WORD, "conversation_id": garden["together"]})

    assert response.status_code == 200
    items = response.get_json()["context"]
    assert items and {item["conversation_id"] for item in items} == {garden["together"]}


@pytest.mark.parametrize(("body", "field"), [
    ({"limit": 0}, "limit"),
    ({"limit": 101}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"query": ""}, "query"),
    ({"query": "x" * 32_001}, "query"),
    ({"query": 5}, "query"),
    ({"conversation_id": "bad.id"}, "conversation_id"),
    ({"conversation_id": ""}, "conversation_id"),
    ({"user_id": "someone-else"}, "user_id"),
], ids=lambda v: repr(v)[:30])
def test_context_rejects_bad_arguments(client, alice, body, field):
    error = assert_error(client.post("/v1/context", headers=alice.headers, json=body), 400, "invalid_arguments")

    assert field in [item["field"] for item in error["details"]["errors"]]


def test_context_for_an_unknown_conversation_is_404(client, alice):
    response = client.post("/v1/context", headers=alice.headers, json={"conversation_id": str(uuid.uuid4())})

    assert_error(response, 404, "not_found")


# --- search -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "readable"), [
    ("alice", {"private", "together"}),
    ("bob", {"together"}),
    ("carol", {"carol"}),
])
def test_search_finds_only_messages_the_user_may_read(client, garden, who, readable, request):
    account = request.getfixturevalue(who)

    response = client.post("/v1/search", headers=account.headers, json={"query": WORD, "limit": 100})

    assert response.status_code == 200
    body = response.get_json()
    assert body["count"] == len(body["results"]) and body["query"] == WORD
    assert {hit["conversation_id"] for hit in body["results"]} == {garden[name] for name in readable}
    assert all("topic" in hit for hit in body["results"])


def test_search_can_leave_out_conversation_topics(client, alice, garden):
    response = client.post("/v1/search", headers=alice.headers, json={"query": WORD, "include_conversations": False})

    assert response.status_code == 200
    assert response.get_json()["results"]
    assert all("topic" not in hit for hit in response.get_json()["results"])


@pytest.mark.parametrize("query", ['"', "*", "NEAR(", "a AND b OR", "content:x", "((", "!!!", "\u00e9t\u00e9"])
def test_search_takes_any_text_as_plain_words(client, alice, garden, query):
    response = client.post("/v1/search", headers=alice.headers, json={"query": query})

    assert response.status_code == 200
    assert response.get_json()["count"] == len(response.get_json()["results"])


@pytest.mark.parametrize(("body", "field"), [
    ({}, "query"),
    ({"query": ""}, "query"),
    ({"query": "   "}, "query"),
    ({"query": "\t\n"}, "query"),
    ({"query": None}, "query"),
    ({"query": "x" * 32_001}, "query"),
    ({"query": "beans", "limit": 0}, "limit"),
    ({"query": "beans", "limit": 101}, "limit"),
    ({"query": "beans", "include_conversations": "sometimes"}, "include_conversations"),
    ({"query": "beans", "user_id": "someone-else"}, "user_id"),
], ids=lambda v: repr(v)[:30])
def test_search_rejects_bad_arguments(client, alice, body, field):
    error = assert_error(client.post("/v1/search", headers=alice.headers, json=body), 400, "invalid_arguments")

    assert field in [item["field"] for item in error["details"]["errors"]]


@pytest.mark.parametrize("path", ["/v1/context", "/v1/search", "/v1/analyze"])
def test_cognition_endpoints_need_a_json_object(client, alice, path):
    assert_error(client.post(path, headers=alice.headers, data="query=x", content_type="text/plain"),
                 415, "unsupported_media_type")
    assert_error(client.post(path, headers=alice.headers, json=["x"]), 400, "invalid_request")


# --- analyze ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("analysis_type", ["summary", "topics", "sentiment", "activity"])
def test_each_analysis_of_a_conversation(client, alice, garden, analysis_type):
    response = client.post("/v1/analyze", headers=alice.headers,
                           json={"conversation_id": garden["private"], "analysis_type": analysis_type})

    assert response.status_code == 200
    body = response.get_json()
    assert (body["type"], body["conversation_id"]) == (analysis_type, garden["private"])
    assert isinstance(body["results"], dict) and body["results"]


@pytest.mark.parametrize(("body", "field"), [
    ({"analysis_type": "mood"}, "analysis_type"),
    ({"analysis_type": "SUMMARY"}, "analysis_type"),
    ({"analysis_type": ""}, "analysis_type"),
    ({"analysis_type": None}, "analysis_type"),
    ({"analysis_type": ["summary"]}, "analysis_type"),
    ({"conversation_id": "bad.id"}, "conversation_id"),
    ({"conversation_id": None}, "conversation_id"),
    ({"depth": 3}, "depth"),
], ids=lambda v: repr(v)[:30])
def test_analyze_rejects_bad_arguments(client, alice, garden, body, field):
    request = {"conversation_id": garden["private"], "analysis_type": "summary", **body}
    request = {key: value for key, value in request.items() if value is not None}

    error = assert_error(client.post("/v1/analyze", headers=alice.headers, json=request), 400, "invalid_arguments")

    assert field in [item["field"] for item in error["details"]["errors"]]


def test_analyzing_an_unknown_conversation_is_404(client, alice):
    response = client.post("/v1/analyze", headers=alice.headers,
                           json={"conversation_id": str(uuid.uuid4()), "analysis_type": "topics"})

    assert_error(response, 404, "not_found")
