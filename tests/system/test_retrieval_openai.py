"""EMBEDDINGS=openai end to end: a Cognition process embeds through an OpenAI-compatible `/embeddings`
endpoint (a small fake here, real HTTP), Memory stores the vectors under `openai:{model}`, and get_context
finds a message by them; when the endpoint fails, the worker waits and words still answer."""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.system.support.harness import ServiceProcess
from tests.system.support.polling import wait_until
from tests.system.test_retrieval import COGNITION_APP, MEMORY_APP, SERVICE_ENV, backlog, make_client, new_user, store

DIMS = 16


def embed(text: str) -> list[float]:
    """The fake model: each word lights one of DIMS dimensions (by its CRC), so texts sharing words are close."""
    vector = [0.0] * DIMS
    for word in text.lower().split():
        vector[zlib.crc32(word.strip("?.,!").encode()) % DIMS] += 1.0
    return vector


class FakeEmbeddings:
    """`POST /v1/embeddings` as OpenAI answers it; `fail` makes it answer 500; `requests` records bodies."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if fake.fail or self.path != "/v1/embeddings":
                    self.send_response(500)
                    self.end_headers()
                    return
                answer = json.dumps({"object": "list", "model": body["model"], "data": [
                    {"object": "embedding", "index": index, "embedding": embed(text)}
                    for index, text in enumerate(body["input"])]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEmbeddings]:
    server = FakeEmbeddings()
    yield server
    server.close()


@pytest.fixture(scope="module")
def services(tmp_path_factory, fake) -> Iterator[tuple]:
    tmp = tmp_path_factory.mktemp("openai-embeddings")
    memory = ServiceProcess(MEMORY_APP, {**SERVICE_ENV, "DATABASE_URL": f"sqlite:///{tmp}/m.db"},
                            tmp / "memory.log").start()
    cognition = ServiceProcess(COGNITION_APP, {**SERVICE_ENV, "MEMORY_SERVICE_URL": memory.url,
                                               "EMBEDDINGS": "openai", "EMBEDDINGS_URL": fake.url,
                                               "EMBEDDINGS_MODEL": "fake-embed-16", "EMBEDDINGS_API_KEY": "sk-test",
                                               "EMBEDDING_POLL_SECONDS": "0.05"}, tmp / "cognition.log").start()
    mem, cog = make_client("memory", memory.url), make_client("cognition", cognition.url)
    try:
        yield mem, cog
    finally:
        mem.close()
        cog.close()
        cognition.stop()
        memory.stop()


def test_vectors_come_from_the_endpoint_and_find_a_message(services, fake):
    mem, cog = services
    user, (conversation,) = new_user(mem, "openai", ["notes"])
    kept = store(mem, user, conversation, "sourdough starter needs feeding twice daily")
    store(mem, user, conversation, "the quarterly report is due friday")
    wait_until(lambda: backlog(mem) == 0, 30, message="the worker to embed through the endpoint")

    sent = [request for request in fake.requests if "sourdough starter needs feeding twice daily" in
            request["body"]["input"]]
    assert sent and sent[0]["path"] == "/v1/embeddings" and sent[0]["body"]["model"] == "fake-embed-16"
    assert sent[0]["auth"] == "Bearer sk-test"
    found = mem.call_tool("search_similar", {"user_id": user, "model": "openai:fake-embed-16",
                                             "vector": embed("starter feeding"), "limit": 1})["results"]
    assert [hit["id"] for hit in found] == [kept]
    assert mem.call_tool("search_similar", {"user_id": user, "model": "all-MiniLM-L6-v2-int8",
                                            "vector": [0.1] * 384, "limit": 5})["results"] == []
    context = cog.call_tool("get_context", {"user_id": user, "query": "starter feeding", "limit": 1})["context"]
    assert [item["id"] for item in context] == [kept]


def test_a_failing_endpoint_leaves_messages_queued_and_words_answering(services, fake):
    mem, cog = services
    user, (conversation,) = new_user(mem, "openai-down", ["notes"])
    fake.fail = True
    try:
        kept = store(mem, user, conversation, "the greenhouse tomatoes ripened early")
        seen = len(fake.requests)
        wait_until(lambda: len(fake.requests) > seen, 10, message="the worker to try the endpoint")
        assert backlog(mem) >= 1  # not lost: still queued for when the endpoint is back
        context = cog.call_tool("get_context", {"user_id": user, "query": "greenhouse tomatoes", "limit": 3})
        assert [item["id"] for item in context["context"]] == [kept]  # by words, without the meaning half
    finally:
        fake.fail = False
    # The lease (60 s) keeps a failed batch from being retried at once, so the backlog drains only after
    # it; what matters here is that nothing was dropped and the next write is embedded.
