"""The embedding worker: backfill, one batch (claim, encode, store), and the background loop riding out a Memory
that fails for a while. A fake embedder stands in for the model; Memory is a `responses` mock (FakeMemory)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest
import requests

from cognition_service.config import load_config
from cognition_service.indexer import Indexer
from common.client import ServiceClient
from common.errors import ServiceUnavailable
from tests.cognition_service.fake_memory import BASE_CONFIG, MEMORY, FakeMemory

UNIT_VECTORS = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]  # exact in float32, so they survive tolist() unchanged
WAIT_SECONDS = 5.0


class FakeEmbedder:
    """Two dimensions; the i-th text of a call gets UNIT_VECTORS[i % 3]. Records every call's texts, and
    raises `fail_first` (when set) on its first call only."""

    name = "fake-2"

    def __init__(self, fail_first: Exception | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_first = fail_first

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        if self.fail_first is not None:
            error, self.fail_first = self.fail_first, None
            raise error
        return np.array([UNIT_VECTORS[i % len(UNIT_VECTORS)] for i in range(len(texts))], dtype=np.float32)


def work_item(n: int, content: str) -> dict:
    """A leased message as claim_embedding_work returns it."""
    return {"ticket": n, "message_id": f"m{n}", "content": content}


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def memory_client(memory: FakeMemory) -> ServiceClient:
    """Memory's client built as cognition_service/app.py builds it, talking to the mocked Memory."""
    settings = load_config(BASE_CONFIG)
    return ServiceClient("memory", settings.memory_service_url, token=settings.service_token,
                         settings=settings.client)


@pytest.fixture
def stopped_after() -> Iterator[list[Indexer]]:
    """Indexers a test starts, stopped and joined afterwards even when the test fails."""
    started: list[Indexer] = []
    yield started
    for indexer in started:
        indexer.stop()
        if indexer._thread is not None:
            indexer._thread.join(WAIT_SECONDS)


# backfill


def test_backfill_queues_missing_vectors_of_the_embedders_model(memory, memory_client):
    memory.tool("queue_missing_embeddings", {"queued": 7, "backlog": 7})
    indexer = Indexer(memory_client, FakeEmbedder())
    assert indexer.backfilled is False

    assert indexer.backfill() == 7

    assert memory.sent("queue_missing_embeddings") == [{"model": "fake-2"}]
    assert indexer.backfilled is True


def test_backfill_with_nothing_missing_is_still_done(memory, memory_client):
    memory.tool("queue_missing_embeddings", {"queued": 0, "backlog": 0})
    indexer = Indexer(memory_client, FakeEmbedder())

    assert indexer.backfill() == 0
    assert indexer.backfilled is True


def test_a_failed_backfill_is_not_marked_done(memory, memory_client):
    memory.tool("queue_missing_embeddings", status=503, code="unavailable")
    indexer = Indexer(memory_client, FakeEmbedder())

    with pytest.raises(ServiceUnavailable):
        indexer.backfill()
    assert indexer.backfilled is False


# run_once


def test_run_once_embeds_the_claimed_batch_and_stores_one_vector_per_message(memory, memory_client):
    memory.tool("claim_embedding_work", {"items": [work_item(11, "first"), work_item(12, "second"),
                                                   work_item(13, "third")]})
    memory.tool("store_embeddings", {"stored": 3, "skipped": 0})
    embedder = FakeEmbedder()
    indexer = Indexer(memory_client, embedder, batch=16, lease_seconds=30.0)

    assert indexer.run_once() == 3

    assert memory.sent("claim_embedding_work") == [{"limit": 16, "lease_seconds": 30.0}]
    assert embedder.calls == [["first", "second", "third"]]
    [stored] = memory.sent("store_embeddings")
    assert stored == {"model": "fake-2", "items": [
        {"ticket": 11, "message_id": "m11", "vector": [1.0, 0.0]},
        {"ticket": 12, "message_id": "m12", "vector": [0.0, 1.0]},
        {"ticket": 13, "message_id": "m13", "vector": [-1.0, 0.0]},
    ]}
    assert all(isinstance(x, float) for item in stored["items"] for x in item["vector"])


def test_run_once_with_nothing_queued_embeds_and_stores_nothing(memory, memory_client):
    memory.tool("claim_embedding_work", {"items": []})
    embedder = FakeEmbedder()

    assert Indexer(memory_client, embedder).run_once() == 0

    assert embedder.calls == []
    assert memory.sent("store_embeddings") == []


def test_run_once_encodes_through_the_offload(memory, memory_client):
    memory.tool("claim_embedding_work", {"items": [work_item(1, "hello")]})
    memory.tool("store_embeddings", {"stored": 1, "skipped": 0})
    offloaded = []

    def offload(work, *args):
        offloaded.append(args)
        return work(*args)

    assert Indexer(memory_client, FakeEmbedder(), offload=offload).run_once() == 1
    assert offloaded == [(["hello"],)]


def test_run_once_lets_a_failed_store_raise(memory, memory_client):
    memory.tool("claim_embedding_work", {"items": [work_item(1, "hello")]})
    memory.tool("store_embeddings", status=503, code="unavailable")

    with pytest.raises(ServiceUnavailable):
        Indexer(memory_client, FakeEmbedder()).run_once()


# the background loop


def test_worker_rides_out_memory_failing_and_then_stores(memory, memory_client, stopped_after):
    memory.tool("queue_missing_embeddings", status=503, code="unavailable")
    memory.tool("queue_missing_embeddings", {"queued": 2, "backlog": 2})
    memory.tool("claim_embedding_work", status=503, code="unavailable")
    memory.tool("claim_embedding_work", {"items": [work_item(1, "alpha"), work_item(2, "beta")]})
    memory.tool("claim_embedding_work", {"items": []})  # then the queue stays empty
    memory.tool("store_embeddings", {"stored": 2, "skipped": 0})
    embedder = FakeEmbedder()
    indexer = Indexer(memory_client, embedder, poll_seconds=0.01)
    stopped_after.append(indexer)

    indexer.start()
    wait_for(lambda: memory.sent("store_embeddings"), "the vectors to be stored")
    wait_for(lambda: len(memory.sent("claim_embedding_work")) >= 4, "the worker to poll an empty queue")

    assert indexer._thread is not None and indexer._thread.is_alive()
    assert indexer.backfilled is True
    assert len(memory.sent("queue_missing_embeddings")) == 2  # retried until it worked, then never again
    assert embedder.calls == [["alpha", "beta"]]
    assert [item["message_id"] for item in memory.sent("store_embeddings")[0]["items"]] == ["m1", "m2"]

    indexer.stop()
    indexer._thread.join(WAIT_SECONDS)
    assert not indexer._thread.is_alive()


def test_worker_survives_memory_unreachable_at_start(memory, memory_client, stopped_after):
    # Two refused connections (Memory down; fewer than the breaker's five), then Memory answers.
    for _ in range(2):
        memory.mock.post(f"{MEMORY}/tool/queue_missing_embeddings", body=requests.ConnectionError("refused"))
    memory.tool("queue_missing_embeddings", {"queued": 0, "backlog": 0})
    memory.tool("claim_embedding_work", {"items": []})
    indexer = Indexer(memory_client, FakeEmbedder(), poll_seconds=0.01)
    stopped_after.append(indexer)

    indexer.start()
    wait_for(lambda: indexer.backfilled and memory.sent("claim_embedding_work"), "Memory to come back")

    assert len(memory.sent("queue_missing_embeddings")) == 3
    assert indexer._thread is not None and indexer._thread.is_alive()


def test_worker_survives_an_embedder_that_fails_once(memory, memory_client, stopped_after):
    memory.tool("queue_missing_embeddings", {"queued": 1, "backlog": 1})
    memory.tool("claim_embedding_work", {"items": [work_item(1, "alpha")]})
    memory.tool("claim_embedding_work", {"items": [work_item(1, "alpha")]})  # leased again after the failure
    memory.tool("claim_embedding_work", {"items": []})
    memory.tool("store_embeddings", {"stored": 1, "skipped": 0})
    embedder = FakeEmbedder(fail_first=RuntimeError("model crashed"))
    indexer = Indexer(memory_client, embedder, poll_seconds=0.01)
    stopped_after.append(indexer)

    indexer.start()
    wait_for(lambda: memory.sent("store_embeddings"), "the vectors to be stored after the failure")

    assert embedder.calls == [["alpha"], ["alpha"]]
    assert indexer._thread is not None and indexer._thread.is_alive()


def test_stop_ends_an_idle_worker_promptly(memory, memory_client, stopped_after):
    memory.tool("queue_missing_embeddings", {"queued": 0, "backlog": 0})
    memory.tool("claim_embedding_work", {"items": []})
    indexer = Indexer(memory_client, FakeEmbedder(), poll_seconds=60.0)  # would sleep a minute between polls
    stopped_after.append(indexer)
    indexer.start()
    wait_for(lambda: memory.sent("claim_embedding_work"), "the first poll")

    started = time.monotonic()
    indexer.stop()
    indexer._thread.join(WAIT_SECONDS)

    assert not indexer._thread.is_alive()
    assert time.monotonic() - started < 1.0
    assert len(memory.sent("claim_embedding_work")) == 1


def test_start_twice_runs_one_worker(memory, memory_client, stopped_after):
    memory.tool("queue_missing_embeddings", {"queued": 0, "backlog": 0})
    memory.tool("claim_embedding_work", {"items": []})
    indexer = Indexer(memory_client, FakeEmbedder(), poll_seconds=60.0)
    stopped_after.append(indexer)

    indexer.start()
    first = indexer._thread
    indexer.start()

    assert indexer._thread is first and first is not None and first.name == "embedding-worker" and first.daemon


def test_poll_seconds_zero_starts_nothing(memory, memory_client):
    indexer = Indexer(memory_client, FakeEmbedder(), poll_seconds=0)

    indexer.start()

    assert indexer._thread is None
    assert len(memory.mock.calls) == 0  # not even a backfill


def test_the_app_keeps_no_worker_with_embeddings_off(app):
    assert "cortex.indexer" not in app.extensions
    assert app.extensions["cortex.memory"].base_url == MEMORY
