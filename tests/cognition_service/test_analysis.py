"""The four analyses on a seeded conversation: as plain functions, then through the tool and resource."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cognition_service.analysis import AnalysisLimits, activity, latest_within, sentiment, summary, topics
from cognition_service.app import create_app
from cognition_service.text import STOP_WORDS
from tests.cognition_service.fake_memory import BASE_CONFIG, message
from tests.cognition_service.protocol_calls import assert_error, call, result, sse_events

START = timedelta(days=2)  # the conversation starts two days before NOW, at noon UTC
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)

CONVERSATION = [
    message(1, "I want to plan a trip to Lisbon in spring. The food there is great!", age=START),
    message(2, "Lisbon in spring is lovely. Book the train to Porto early, trains fill up fast.",
            role="assistant", sender="bot", age=START - 30 * SECOND),
    message(3, "I dislike crowded trains. Is the Lisbon train station easy to reach?", age=START - DAY),
    message(4, "Yes, the Lisbon station is easy to reach by metro. It is not bad at all.",
            role="assistant", sender="bot", age=START - DAY - 10 * SECOND),
    message(5, "Thanks, this trip plan is not good for my budget though.", sender="u2",
            age=START - DAY - 60 * SECOND),
]

SHAPES = {
    "summary": {"topic", "message_count", "participant_count", "participants", "by_role", "first_message_at",
                "last_message_at", "key_points", "summary"},
    "topics": {"topics", "term_count", "distinct_terms"},
    "sentiment": {"score", "label", "positive", "negative", "by_role", "by_message"},
    "activity": {"message_count", "by_role", "participants", "word_count", "average_words_per_message",
                 "first_message_at", "last_message_at", "duration_seconds", "by_day", "average_reply_seconds"},
}


def test_summary_counts_and_picks_central_sentences_in_order():
    found = summary(CONVERSATION, topic="Trips")
    assert found["topic"] == "Trips" and found["message_count"] == 5
    assert found["participants"] == ["u1", "bot", "u2"] and found["participant_count"] == 3
    assert found["by_role"] == {"user": 3, "assistant": 2, "system": 0}
    assert found["first_message_at"] == CONVERSATION[0]["created_at"]
    assert found["last_message_at"] == CONVERSATION[-1]["created_at"]
    assert len(found["key_points"]) == 3
    assert found["summary"] == " ".join(point["text"] for point in found["key_points"])

    central = summary([
        message(1, "We compare train tickets from Lisbon to Porto."),
        message(2, "My cat sleeps all afternoon on the sofa."),
        message(3, "Train tickets to Porto are cheaper in the morning."),
        message(4, "Lisbon to Porto train tickets sell out on Fridays."),
        message(5, "Great, thanks!"),
    ])
    assert [point["sequence"] for point in central["key_points"]] == [1, 3, 4]  # no cat, no small talk
    assert central["key_points"][0] == {"message_id": "m1", "sequence": 1, "role": "user",
                                        "text": "We compare train tickets from Lisbon to Porto."}


def test_summary_clips_long_sentences_and_skips_repeats():
    found = summary([message(1, "word " * 200), message(2, "ok thanks"), message(3, "Ok thanks")])
    assert [len(point["text"]) for point in found["key_points"]] == [280, 9]
    assert found["key_points"][0]["text"].endswith("\u2026")


def test_topics_rank_content_words_and_ignore_stop_words():
    found = topics(CONVERSATION)
    assert found["topics"][0] == {"term": "lisbon", "count": 4, "message_count": 4,
                                  "weight": round(4 / found["term_count"], 4)}
    terms = [topic["term"] for topic in found["topics"]]
    assert len(terms) == 10 and not set(terms) & STOP_WORDS
    assert {"the", "is", "in", "to", "i"}.isdisjoint(terms)
    counts = [(topic["count"], topic["message_count"]) for topic in found["topics"]]
    assert counts == sorted(counts, reverse=True)

    stop_heavy = topics([message(1, "The the THE and and it is what it is: weather in Lisbon, Lisbon weather!")])
    assert [(t["term"], t["count"]) for t in stop_heavy["topics"]] == [("lisbon", 2), ("weather", 2)]
    assert stop_heavy["term_count"] == 4 and stop_heavy["distinct_terms"] == 2


def test_sentiment_of_the_conversation_each_role_and_each_message():
    found = sentiment(CONVERSATION)
    # +great | +lovely +fast | -dislike +easy | +easy +"not bad" | +thanks -"not good"
    assert (found["positive"], found["negative"]) == (7, 2)
    assert found["score"] == round(5 / 9, 4) and found["label"] == "positive"
    assert found["by_role"]["user"] == {"score": 0.2, "label": "positive", "positive": 3, "negative": 2}
    assert found["by_role"]["assistant"]["score"] == 1.0
    assert found["by_role"]["system"] == {"score": 0.0, "label": "neutral", "positive": 0, "negative": 0}
    assert [(entry["sequence"], entry["label"]) for entry in found["by_message"]] == [
        (1, "positive"), (2, "positive"), (3, "neutral"), (4, "positive"), (5, "neutral")]
    assert all(-1 <= entry["score"] <= 1 for entry in found["by_message"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [("I like this plan", "positive"), ("I dislike this plan", "negative"), ("this is not good", "negative"),
     ("not bad, not bad at all", "positive"), ("The meeting is at noon", "neutral")],
)
def test_sentiment_label_of_one_message(content, expected):
    assert sentiment([message(1, content)])["label"] == expected


def test_activity_counts_senders_days_and_reply_times():
    found = activity(CONVERSATION)
    assert found["message_count"] == 5
    assert found["by_role"] == {"user": 3, "assistant": 2, "system": 0}
    assert [(p["sender_id"], p["messages"]) for p in found["participants"]] == [("u1", 2), ("bot", 2), ("u2", 1)]
    assert found["word_count"] == sum(p["words"] for p in found["participants"]) == 15 + 15 + 12 + 16 + 11
    assert found["average_words_per_message"] == 13.8
    assert found["duration_seconds"] == 86_460.0
    assert found["by_day"] == [{"date": "2024-04-29", "messages": 2}, {"date": "2024-04-30", "messages": 3}]
    assert found["average_reply_seconds"] == 20.0  # 30 s and 10 s; an answer to the assistant is no reply


@pytest.mark.parametrize(("name", "analyse"), [("summary", summary), ("topics", topics),
                                                ("sentiment", sentiment), ("activity", activity)])
def test_every_analysis_has_its_documented_shape_even_when_empty(name, analyse):
    assert set(analyse(CONVERSATION)) == SHAPES[name]
    assert set(analyse([])) == SHAPES[name]


def test_empty_conversation_values():
    assert summary([])["key_points"] == [] and summary([])["summary"] == ""
    assert topics([])["topics"] == []
    assert sentiment([])["label"] == "neutral" and sentiment([])["score"] == 0.0
    assert activity([])["average_reply_seconds"] is None and activity([])["duration_seconds"] == 0.0


@pytest.fixture
def seeded(memory):
    memory.tool("list_messages", {"messages": CONVERSATION, "count": len(CONVERSATION), "conversation_id": "c1"})
    memory.tool("get_conversation", {"conversation": {"id": "c1", "topic": "Trips"}})
    return memory


@pytest.mark.parametrize("analysis_type", sorted(SHAPES))
def test_analyze_conversation_tool_returns_each_shape(client, seeded, analysis_type):
    found = result(client, "analyze_conversation", user_id="u1", conversation_id="c1", analysis_type=analysis_type)
    assert found["type"] == analysis_type and found["conversation_id"] == "c1"
    assert set(found["results"]) == SHAPES[analysis_type]
    assert found["truncated"] is False and found["analyzed_messages"] == len(CONVERSATION)
    # The latest messages, one more than the limit (500 by default) to learn whether older ones exist.
    assert seeded.sent("list_messages") == [{"user_id": "u1", "conversation_id": "c1", "limit": 501,
                                             "latest": True}]


def test_summary_through_the_tool_carries_the_topic(client, seeded):
    found = result(client, "analyze_conversation", user_id="u1", conversation_id="c1", analysis_type="summary")
    assert found["results"]["topic"] == "Trips"
    assert seeded.sent("get_conversation") == [{"user_id": "u1", "conversation_id": "c1"}]


@pytest.mark.parametrize("analysis_type", ["mood", "SUMMARY", "", 3, None])
def test_unknown_analysis_type_is_invalid_arguments(client, seeded, analysis_type):
    response = call(client, "analyze_conversation", user_id="u1", conversation_id="c1", analysis_type=analysis_type)
    error = assert_error(response, 400, "invalid_arguments")
    assert [e["field"] for e in error["details"]["errors"]] == ["analysis_type"]
    assert len(seeded.mock.calls) == 0  # refused before Memory is asked


def test_conversation_analysis_resource_streams_one_item(client, seeded):
    events = sse_events(client.get("/resource/conversation_analysis/c1/sentiment?user_id=u1"))
    assert [kind for kind, _ in events] == ["message", "end"]
    assert events[0][1] == result(client, "analyze_conversation", user_id="u1", conversation_id="c1",
                                  analysis_type="sentiment")
    assert events[1][1] == {"count": 1}


def test_conversation_analysis_resource_refuses_an_unknown_type(client, seeded):
    error = assert_error(client.get("/resource/conversation_analysis/c1/mood?user_id=u1"), 400, "invalid_arguments")
    assert [e["field"] for e in error["details"]["errors"]] == ["type"]


# --- the input bound: the latest messages within ANALYSIS_MAX_MESSAGES and ANALYSIS_MAX_CHARS ---------------

NEWEST_FIRST = [message(n, "x" * 100) for n in range(10, 0, -1)]


@pytest.mark.parametrize("max_messages, max_chars, sequences, truncated", [
    (10, 10_000, list(range(1, 11)), False),
    (20, 1000, list(range(1, 11)), False),  # exactly fits
    (4, 10_000, [7, 8, 9, 10], True),
    (10, 999, [2, 3, 4, 5, 6, 7, 8, 9, 10], True),
    (10, 50, [10], True),  # the newest alone is too long: its first 50 characters
])
def test_only_the_latest_messages_within_the_limits_are_analysed(max_messages, max_chars, sequences, truncated):
    kept, was_truncated = latest_within(NEWEST_FIRST, AnalysisLimits(max_messages, max_chars))
    assert [m["sequence"] for m in kept] == sequences and was_truncated is truncated
    assert sum(len(m["content"]) for m in kept) <= max_chars


def test_the_result_says_when_older_messages_were_left_out(memory):
    client = create_app({**BASE_CONFIG, "ANALYSIS_MAX_MESSAGES": "3", "ANALYSIS_MAX_CHARS": "1000"}).test_client()
    memory.tool("list_messages", {"messages": CONVERSATION[-4:], "count": 4, "conversation_id": "c1"})
    found = result(client, "analyze_conversation", user_id="u1", conversation_id="c1", analysis_type="activity")
    assert found["truncated"] is True and found["analyzed_messages"] == 3
    assert found["results"]["message_count"] == 3
    assert memory.sent("list_messages")[0]["limit"] == 4
