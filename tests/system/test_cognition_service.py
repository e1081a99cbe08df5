"""The Cognition Service as a real gunicorn + gevent process reading a real Memory Service: context over a
large history, analyses, isolation between users, and riding out a Memory outage without a restart."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from common.client import ClientSettings, RetryPolicy, ServiceClient
from common.errors import Forbidden, InvalidArguments
from tests.system.support.polling import wait_until

MEMORY_APP = "memory_service.app:create_app()"
COGNITION_APP = "cognition_service.app:create_app()"
TOKEN = "system-test-token"
HEALTH_INTERVAL = 0.5
ANALYSIS_SHAPES = {
    "summary": {"topic", "message_count", "participant_count", "participants", "by_role", "first_message_at",
                "last_message_at", "key_points", "summary"},
    "topics": {"topics", "term_count", "distinct_terms"},
    "sentiment": {"score", "label", "positive", "negative", "by_role", "by_message"},
    "activity": {"message_count", "by_role", "participants", "word_count", "average_words_per_message",
                 "first_message_at", "last_message_at", "duration_seconds", "by_day", "average_reply_seconds"},
}


@pytest.fixture
def memory(spawn, tmp_path):
    return spawn(MEMORY_APP, {"DATABASE_URL": f"sqlite:///{tmp_path}/memory.db", "SERVICE_TOKEN": TOKEN}, "memory")


@pytest.fixture
def cognition(spawn, memory):
    proc = spawn(COGNITION_APP, {
        "MEMORY_SERVICE_URL": memory.url, "SERVICE_TOKEN": TOKEN, "HEALTH_INTERVAL_SECONDS": str(HEALTH_INTERVAL),
        "BREAKER_RESET_SECONDS": "1", "CLIENT_RETRIES": "1", "CLIENT_RETRY_MAX_SECONDS": "1",
    }, "cognition")
    yield proc
    # Stopped before Memory, so Memory's graceful shutdown is not kept waiting by Cognition's pooled connections.
    proc.stop()


def make_client(name: str, url: str) -> ServiceClient:
    # No retries here: the test must see each answer the service gives, not a retried one.
    return ServiceClient(name, url, token=TOKEN, settings=ClientSettings(retry=RetryPolicy(attempts=0)))


@pytest.fixture
def mem(memory):
    client = make_client("memory", memory.url)
    yield client
    client.close()


@pytest.fixture
def cog(cognition):
    client = make_client("cognition", cognition.url)
    yield client
    client.close()


def post_tool(url: str, tool: str, **arguments) -> requests.Response:
    """One plain HTTP call, without a client-side breaker or retry that could hide Cognition's own answer."""
    return requests.post(f"{url}/tool/{tool}", json={"arguments": arguments},
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)


def health(url: str) -> dict:
    return requests.get(f"{url}/health", timeout=2).json()


def new_user(mem: ServiceClient, email: str, topics: list[str]) -> tuple[str, list[str]]:
    """A user with a workspace and one conversation per topic."""
    user_id = mem.call_tool("create_user", {"email": email, "name": email, "password": "password1"})["user"]["id"]
    workspace = mem.call_tool("create_workspace", {"user_id": user_id, "name": "Home"})["workspace"]["id"]
    conversations = [mem.call_tool("create_conversation", {"user_id": user_id, "workspace_id": workspace,
                                                           "topic": topic})["conversation"]["id"]
                     for topic in topics]
    return user_id, conversations


def store(mem: ServiceClient, user_id: str, conversation_id: str, content: str, role: str = "user") -> dict:
    return mem.call_tool("store_input", {"user_id": user_id, "input_data": {
        "conversation_id": conversation_id, "content": content, "role": role}})


def filler(i: int) -> str:
    # Every seventh note shares three of the query's four words and is newer than the answer.
    if i % 7 == 0:
        return f"Note {i}: the falcon project launch party moves to room {i}."
    return f"Note {i}: the {('garden', 'budget', 'kitchen')[i % 3]} project review is in room {i}."


def test_context_finds_the_oldest_answer_in_a_500_message_history(mem, cog):
    alice, (work, home) = new_user(mem, "alice@example.com", ["Work", "Home"])
    answer = store(mem, alice, work, "The launch code for the falcon project is amber-seven.")["item_id"]
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda i: store(mem, alice, (work, home)[i % 2], filler(i)), range(1, 500)))
    bob, (bobs,) = new_user(mem, "bob@example.com", ["Secrets"])
    store(mem, bob, bobs, "The launch code for the falcon project is zulu-nine.")
    history = list(mem.read_resource(f"history/{alice}"))
    assert len(history) == 500 and history[-1]["id"] == answer  # the answer really is the oldest
    # The ranking below is the settled one: every message embedded by Cognition's worker.
    wait_until(lambda: mem.call_tool("embedding_backlog", {})["backlog"] == 0, 60,
               message="the history to be embedded")

    found = cog.call_tool("get_context", {"user_id": alice, "query": "What was the launch code for the falcon "
                                                                     "project?", "limit": 10})
    assert found["count"] == 10 and found["user_id"] == alice
    assert answer in [item["id"] for item in found["context"][:3]]
    assert {item["conversation_id"] for item in found["context"]} <= {work, home}
    assert not any("zulu" in item["content"] for item in found["context"])
    scores = [item["score"] for item in found["context"]]
    assert scores == sorted(scores, reverse=True)

    streamed = list(cog.read_resource(f"context/{alice}", {"query": "falcon launch code", "limit": 3}))
    assert len(streamed) == 3 and streamed[0]["id"] == answer

    newest = cog.call_tool("get_context", {"user_id": alice, "limit": 10})
    assert [item["id"] for item in newest["context"]] == [message["id"] for message in history[:10]]

    searched = cog.call_tool("search_history", {"user_id": alice, "query": "launch code", "limit": 5})
    assert searched["results"][0]["id"] == answer and searched["results"][0]["topic"] == "Work"
    assert all(hit["topic"] in ("Work", "Home") for hit in searched["results"])
    bobs_view = cog.call_tool("get_context", {"user_id": bob, "query": "falcon launch code"})
    assert [item["content"] for item in bobs_view["context"]] == [
        "The launch code for the falcon project is zulu-nine."]


def test_analyses_of_a_seeded_conversation(mem, cog, cognition):
    alice, (trip,) = new_user(mem, "alice@example.com", ["Lisbon trip"])
    for content, role in [("I want to plan a trip to Lisbon in spring. The food there is great!", "user"),
                          ("Lisbon in spring is lovely. Book the train to Porto early.", "assistant"),
                          ("I dislike crowded trains. Is the Lisbon station easy to reach?", "user"),
                          ("The Lisbon station is easy to reach by metro. It is not bad at all.", "assistant")]:
        store(mem, alice, trip, content, role)

    results = {}
    for analysis_type, shape in ANALYSIS_SHAPES.items():
        found = cog.call_tool("analyze_conversation", {"user_id": alice, "conversation_id": trip,
                                                       "analysis_type": analysis_type})
        assert (found["type"], found["conversation_id"]) == (analysis_type, trip)
        assert set(found["results"]) == shape
        results[analysis_type] = found["results"]
    assert results["summary"]["topic"] == "Lisbon trip" and results["summary"]["message_count"] == 4
    assert results["topics"]["topics"][0]["term"] == "lisbon"
    assert results["sentiment"]["label"] == "positive" and -1 <= results["sentiment"]["score"] <= 1
    assert results["activity"]["by_role"] == {"user": 2, "assistant": 2, "system": 0}

    streamed = list(cog.read_resource(f"conversation_analysis/{trip}/topics", {"user_id": alice}))
    assert streamed == [{"type": "topics", "conversation_id": trip, "results": results["topics"], "truncated": False,
                         "analyzed_messages": 4}]

    with pytest.raises(InvalidArguments) as refused:
        cog.call_tool("analyze_conversation", {"user_id": alice, "conversation_id": trip, "analysis_type": "mood"})
    assert refused.value.details["errors"][0]["field"] == "analysis_type"
    bob, _ = new_user(mem, "bob@example.com", ["Other"])
    with pytest.raises(Forbidden):  # Memory's refusal crosses Cognition with its code
        cog.call_tool("analyze_conversation", {"user_id": bob, "conversation_id": trip, "analysis_type": "summary"})
    anonymous = requests.post(f"{cognition.url}/tool/get_context", json={"arguments": {"user_id": alice}}, timeout=5)
    assert anonymous.status_code == 401


def test_cognition_rides_out_a_memory_outage_without_a_restart(memory, cognition, mem):
    alice, (chat,) = new_user(mem, "alice@example.com", ["Chat"])
    store(mem, alice, chat, "Remember that the spare key is under the blue flowerpot.")
    mem.close()  # its pooled connection would only die with the killed process
    assert post_tool(cognition.url, "get_context", user_id=alice, query="spare key").status_code == 200
    assert health(cognition.url)["dependencies"]["memory"] == {"status": "up", "circuit": "closed"}

    memory.kill()
    # The monitor probes every interval, so the outage must show within two of them, before any user call.
    report = wait_until(lambda: (body := health(cognition.url))["status"] == "degraded" and body,
                        timeout=2 * HEALTH_INTERVAL, message="cognition /health to turn degraded")
    assert report["dependencies"]["memory"] == {"status": "down", "circuit": "open"}
    for tool, arguments in [("get_context", {"query": "spare key"}), ("search_history", {"query": "key"}),
                            ("analyze_conversation", {"conversation_id": chat, "analysis_type": "summary"})]:
        started = time.monotonic()
        refused = post_tool(cognition.url, tool, user_id=alice, **arguments)
        assert time.monotonic() - started < 0.5, f"{tool} took too long to refuse"
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "unavailable" and error["details"]["service"] == "memory"
        assert "memory" in error["message"]

    memory.start()
    recovered = wait_until(lambda: (r := post_tool(cognition.url, "get_context", user_id=alice,
                                                   query="spare key")).status_code == 200 and r,
                           timeout=10, interval=0.1, message="a tool call to succeed after Memory's restart")
    assert "flowerpot" in recovered.json()["result"]["context"][0]["content"]

    def healthy_again() -> bool:
        body = health(cognition.url)
        return body["status"] == "healthy" and body["dependencies"] == {"memory": {"status": "up", "circuit": "closed"}}

    wait_until(healthy_again, timeout=5, message="cognition /health to be healthy with the circuit closed")
