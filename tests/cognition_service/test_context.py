"""get_context and search_history: ranking as plain functions, then through the tool with Memory mocked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from responses import matchers

from cognition_service.context import by_recency, candidate_count, rank, recency_scores
from tests.cognition_service.fake_memory import message
from tests.cognition_service.protocol_calls import result

DAY = timedelta(days=1)


def _arguments(**expected):
    return matchers.json_params_matcher({"arguments": {"user_id": "u1", **expected}})


def ids(items: list[dict]) -> list[str]:
    return [item["id"] for item in items]


def test_recency_halves_per_week_older_than_the_newest():
    found = recency_scores([message(1, "a"), message(2, "b", age=7 * DAY), message(3, "c", age=14 * DAY)])
    assert found == pytest.approx([1.0, 0.5, 0.25])
    assert recency_scores([{**message(1, "a"), "created_at": "not a time"}]) == [0.0]


def test_equally_relevant_hits_rank_the_newer_first():
    hits = [message(1, "old", age=30 * DAY, score=5.0), message(2, "new", score=5.0)]
    assert ids(rank(hits, 2)) == ["m2", "m1"]


def test_a_much_more_relevant_old_message_beats_a_weak_new_one():
    hits = [message(1, "old answer", age=365 * DAY, score=12.0), message(2, "new mention", score=3.0)]
    ranked = rank(hits, 2)
    assert ids(ranked) == ["m1", "m2"]
    assert ranked[0]["score"] == pytest.approx(0.8)  # full relevance, no recency left after a year
    assert ranked[1]["score"] == pytest.approx(0.8 * 3 / 12 + 0.2)


def test_rank_blends_and_keeps_the_best_limit():
    hits = [message(1, "a", age=30 * DAY, score=10.0), message(2, "b", score=9.5),
            message(3, "c", score=3.0), message(4, "d", age=60 * DAY, score=1.0)]
    ranked = rank(hits, 3)
    assert ids(ranked) == ["m2", "m1", "m3"]  # 0.96, 0.8 + 0.2 × 0.051, 0.44
    assert [item["score"] for item in ranked] == sorted((item["score"] for item in ranked), reverse=True)
    assert ranked[0]["content"] == "b" and ranked[0]["conversation_id"] == "c1"
    assert rank([], 3) == []


def test_by_recency_scores_newest_first_lists():
    scored = by_recency([message(3, "c"), message(2, "b", age=7 * DAY), message(1, "a", age=8 * DAY)])
    assert ids(scored) == ["m3", "m2", "m1"]
    assert scored[0]["score"] == 1.0 and scored[1]["score"] == pytest.approx(0.5)
    assert scored[0]["score"] > scored[1]["score"] > scored[2]["score"]


@pytest.mark.parametrize(("limit", "candidates"), [(1, 50), (10, 50), (11, 55), (100, 500), (200, 1000)])
def test_candidate_pool_is_five_times_the_limit_at_least_fifty(limit, candidates):
    assert candidate_count(limit) == candidates


def test_get_context_with_a_query_searches_the_whole_history_and_re_ranks(client, memory):
    memory.tool("search_messages", {"results": [
        message(1, "The falcon project launch code is amber-7", age=400 * DAY, score=14.0),
        message(480, "falcon team lunch", score=4.0),
        message(490, "project status", age=DAY, score=3.0),
    ], "count": 3, "query": "launch code falcon project"})
    found = result(client, "get_context", user_id="u1", query="What was the launch code for the falcon project?",
                   limit=2)
    assert ids(found["context"]) == ["m1", "m480"]  # the oldest message is found because it answers
    assert found["count"] == 2 and found["user_id"] == "u1"
    assert found["query"] == "What was the launch code for the falcon project?"
    assert memory.sent("search_messages") == [
        {"user_id": "u1", "query": "launch code falcon project", "limit": 50}]


def test_get_context_with_a_query_and_a_conversation_searches_only_there(client, memory):
    memory.tool("search_messages", {"results": [], "count": 0, "query": "lisbon"})
    found = result(client, "get_context", user_id="u1", query="Lisbon", conversation_id="c9", limit=20)
    assert found == {"context": [], "user_id": "u1", "query": "Lisbon", "count": 0}
    assert memory.sent("search_messages") == [
        {"user_id": "u1", "query": "lisbon", "limit": 100, "conversation_id": "c9"}]


@pytest.mark.parametrize("query", [None, "", "   "])
def test_get_context_without_a_query_returns_the_newest_history(client, memory, query):
    memory.resource("history/u1/limit/3", [message(9, "nine"), message(8, "eight", age=DAY),
                                           message(2, "two", age=20 * DAY)])
    arguments = {} if query is None else {"query": query}
    found = result(client, "get_context", user_id="u1", limit=3, **arguments)
    assert ids(found["context"]) == ["m9", "m8", "m2"] and found["query"] is None
    scores = [item["score"] for item in found["context"]]
    assert scores[0] == 1.0 and scores == sorted(scores, reverse=True) and scores[2] < 0.15
    assert memory.sent("search_messages") == []


def test_get_context_without_a_query_in_a_conversation_reads_its_latest_turns(client, memory):
    memory.tool("list_messages", {"messages": [message(4, "four", age=DAY), message(5, "five")],
                                  "count": 2, "conversation_id": "c1"})
    found = result(client, "get_context", user_id="u1", conversation_id="c1", limit=2)
    assert ids(found["context"]) == ["m5", "m4"]  # newest first, although Memory lists chronologically
    assert memory.sent("list_messages") == [
        {"user_id": "u1", "conversation_id": "c1", "limit": 2, "latest": True}]


def test_search_history_adds_each_conversations_topic_reading_it_once(client, memory):
    memory.tool("search_messages", {"results": [
        message(1, "train to Porto", conversation="c1", score=3.0),
        message(7, "Porto hotels", conversation="c2", score=2.5),
        message(2, "Porto again", conversation="c1", score=1.0),
    ], "count": 3, "query": "porto"})
    memory.mock.post("http://memory.test/tool/get_conversation", json={"result": {"conversation": {
        "id": "c1", "topic": "Trips"}}}, match=[_arguments(conversation_id="c1")])
    memory.mock.post("http://memory.test/tool/get_conversation", json={"result": {"conversation": {
        "id": "c2", "topic": "Hotels"}}}, match=[_arguments(conversation_id="c2")])
    found = result(client, "search_history", user_id="u1", query="the Porto")
    assert found["query"] == "the Porto" and found["count"] == 3
    assert [(hit["id"], hit["topic"], hit["score"]) for hit in found["results"]] == [
        ("m1", "Trips", 3.0), ("m7", "Hotels", 2.5), ("m2", "Trips", 1.0)]
    assert sorted(args["conversation_id"] for args in memory.sent("get_conversation")) == ["c1", "c2"]
    assert memory.sent("search_messages") == [{"user_id": "u1", "query": "porto", "limit": 10}]


def test_search_history_without_conversations_reads_no_topics(client, memory):
    memory.tool("search_messages", {"results": [message(1, "Porto", score=1.0)], "count": 1, "query": "Porto"})
    found = result(client, "search_history", user_id="u1", query="Porto", limit=5, include_conversations=False)
    assert "topic" not in found["results"][0]
    assert memory.sent("get_conversation") == []


def test_search_history_survives_a_conversation_deleted_meanwhile(client, memory):
    memory.tool("search_messages", {"results": [message(1, "Porto", score=1.0)], "count": 1, "query": "Porto"})
    memory.tool("get_conversation", status=404, code="not_found")
    assert result(client, "search_history", user_id="u1", query="Porto")["results"][0]["topic"] is None
