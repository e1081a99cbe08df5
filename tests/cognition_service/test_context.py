"""get_context and search_history: ranking as plain functions, then through the tool with Memory mocked."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from responses import matchers

from cognition_service.context import (
    Retriever,
    blend,
    by_recency,
    candidate_count,
    fuse,
    recency_scores,
    scaled,
    with_neighbours,
)
from cognition_service.memory import MemoryReader
from tests.cognition_service.fake_memory import message
from tests.cognition_service.protocol_calls import result

DAY = timedelta(days=1)


def rank(hits: list[dict], limit: int) -> list[dict]:
    """The recency blend over one list of hits, scored by their own `score`."""
    return blend({hit["id"]: hit["score"] for hit in hits}, {hit["id"]: hit for hit in hits}, limit)


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
    memory.tool("messages_around", {"messages": []})
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
        {"user_id": "u1", "query": "launch code falcon project", "limit": 50, "match": "stems"}]
    assert memory.sent("messages_around") == [{"user_id": "u1", "message_ids": ["m1", "m480", "m490"], "distance": 2}]


def test_get_context_with_a_query_and_a_conversation_searches_only_there(client, memory):
    memory.tool("search_messages", {"results": [], "count": 0, "query": "lisbon"})
    found = result(client, "get_context", user_id="u1", query="Lisbon", conversation_id="c9", limit=20)
    assert found == {"context": [], "user_id": "u1", "query": "Lisbon", "count": 0}
    assert memory.sent("search_messages") == [
        {"user_id": "u1", "query": "lisbon", "limit": 100, "conversation_id": "c9", "match": "stems"}]
    assert memory.sent("messages_around") == []  # nothing matched, so no neighbours to read


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


# --- the hybrid: fusion and neighbours as plain functions, then a Retriever with a fake embedder ---------------

def test_scaled_maps_each_list_onto_zero_to_one():
    hits = [message(1, "a", score=9.0), message(2, "b", score=5.0), message(3, "c", score=1.0)]
    assert scaled(hits) == {"m1": 1.0, "m2": 0.5, "m3": 0.0}
    assert scaled([message(1, "a", score=0.3), message(2, "b", score=0.3)]) == {"m1": 1.0, "m2": 1.0}
    assert scaled([]) == {}


def test_fuse_adds_the_weighted_scaled_scores_of_both_lists():
    lexical = [message(1, "a", score=8.0), message(2, "b", score=4.0), message(3, "c", score=0.0)]
    dense = [message(2, "b", score=0.9), message(4, "d", score=0.1)]
    assert fuse([(0.5, lexical), (0.5, dense)]) == pytest.approx({"m1": 0.5, "m2": 0.75, "m3": 0.0, "m4": 0.0})


def test_a_turn_next_to_a_good_hit_gains_from_it_by_distance():
    turns = {f"m{n}": message(n, f"turn {n}") for n in range(1, 8)}
    turns["x9"] = {**message(9, "another conversation"), "id": "x9", "conversation_id": "c2", "sequence": 5}
    smoothed = with_neighbours({"m4": 1.0, "m7": 0.2}, turns)
    assert smoothed["m4"] == pytest.approx(1.0)  # its neighbours scored nothing of their own
    assert smoothed["m3"] == pytest.approx(0.5)
    assert smoothed["m5"] == pytest.approx(0.5 + 0.25 * 0.2)  # one from m4, two from m7
    assert smoothed["m2"] == pytest.approx(0.25)
    assert smoothed["m6"] == pytest.approx(0.25 + 0.5 * 0.2)  # two from m4, one from m7: the better of each
    assert smoothed["m1"] == 0.0
    assert smoothed["x9"] == 0.0  # sequence 5 of another conversation is no neighbour of m4


class FakeEmbedder:
    name = "fake-3"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[list[str]] = []

    def encode(self, texts):
        self.seen.append(list(texts))
        if self.fail:
            raise RuntimeError("the model is broken")
        return np.array([[0.6, 0.8, 0.0] for _ in texts], dtype=np.float32)


@pytest.fixture
def retriever(app, memory):
    return lambda embedder: Retriever(MemoryReader(app.extensions["cortex.memory"]), embedder)


def test_the_hybrid_fuses_words_and_meaning_and_brings_in_the_reply_after_a_hit(retriever, memory):
    question = message(10, "Where should we go hiking this weekend?", score=6.0)
    memory.tool("search_messages", {"results": [question, message(30, "hiking boots on sale", score=5.0)],
                                    "count": 2, "query": "hiking"})
    memory.tool("search_similar", {"results": [message(31, "The trail above the lake is lovely", score=0.71),
                                               message(10, question["content"], score=0.62),
                                               message(50, "lake house rental", score=0.2)],
                                   "count": 3, "model": "fake-3"})
    answer = message(11, "Take the ridge path, it has the best views", role="assistant")
    memory.tool("messages_around", {"messages": [question, answer, message(9, "morning!")]})
    embedder = FakeEmbedder()
    found = retriever(embedder).get_context("u1", "hiking trip ideas?", None, 3)
    # m10: 0.5 lexical + 0.5 × (0.62 - 0.2) / 0.51 dense; the answer m11 gets half of that as m10's neighbour.
    assert ids(found["context"]) == ["m10", "m31", "m11"]
    assert embedder.seen == [["hiking trip ideas?"]]
    assert memory.sent("search_messages") == [{"user_id": "u1", "query": "hiking trip ideas", "limit": 50,
                                               "match": "stems"}]
    assert memory.sent("search_similar") == [{"user_id": "u1", "model": "fake-3", "limit": 50,
                                              "vector": pytest.approx([0.6, 0.8, 0.0])}]
    assert memory.sent("messages_around")[0]["message_ids"][:2] == ["m10", "m31"]
    scores = [item["score"] for item in found["context"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(1.0)


def test_a_failing_embedder_or_vector_search_leaves_the_words_to_answer(retriever, memory, caplog):
    memory.tool("search_messages", {"results": [message(1, "Porto trains", score=2.0)], "count": 1, "query": "porto"})
    memory.tool("messages_around", {"messages": []})
    found = retriever(FakeEmbedder(fail=True)).get_context("u1", "Porto", None, 5)
    assert ids(found["context"]) == ["m1"] and memory.sent("search_similar") == []
    memory.tool("search_similar", status=503, code="unavailable")
    found = retriever(FakeEmbedder()).get_context("u1", "Porto", None, 5)
    assert ids(found["context"]) == ["m1"] and len(memory.sent("search_similar")) == 1
    assert "the embedder failed: the model is broken" in caplog.text
    assert "get_context without dense retrieval" in caplog.text


def test_without_an_embedder_nothing_asks_for_vectors(retriever, memory):
    memory.tool("search_messages", {"results": [message(1, "Porto trains", score=2.0)], "count": 1, "query": "porto"})
    memory.tool("messages_around", status=503, code="unavailable")  # and neighbours are optional too
    found = retriever(None).get_context("u1", "Porto", None, 5)
    assert ids(found["context"]) == ["m1"] and memory.sent("search_similar") == []
