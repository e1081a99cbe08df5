"""get_context's latency: the whole retrieval (`total`) and each part it waited on, whatever the outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from cognition_service.context import Retriever
from cognition_service.memory import MemoryReader
from common.errors import ServiceError
from tests.cognition_service.fake_memory import message
from tests.cognition_service.protocol_calls import result
from tests.cognition_service.test_context import FakeEmbedder

REPO = Path(__file__).resolve().parents[2]
PARTS = ("total", "lexical", "dense", "neighbours")


pytestmark = pytest.mark.usefixtures("metrics_on")


def counts() -> dict[str, float]:
    return {part: REGISTRY.get_sample_value("cortex_retrieval_duration_seconds_count", {"part": part}) or 0.0
            for part in PARTS}


def added(before: dict[str, float]) -> dict[str, float]:
    return {part: value - before[part] for part, value in counts().items()}


@pytest.fixture
def retriever(app, memory):
    return lambda embedder: Retriever(MemoryReader(app.extensions["cortex.memory"]), embedder)


def test_a_hybrid_retrieval_records_its_total_and_each_part(retriever, memory) -> None:
    memory.tool("search_messages", {"results": [message(1, "hiking", score=2.0)], "count": 1, "query": "hiking"})
    memory.tool("search_similar", {"results": [message(2, "the trail", score=0.7)], "count": 1, "model": "fake-3"})
    memory.tool("messages_around", {"messages": []})
    before = counts()
    retriever(FakeEmbedder()).get_context("u1", "hiking", None, 3)
    assert added(before) == {"total": 1, "lexical": 1, "dense": 1, "neighbours": 1}


def test_without_an_embedder_no_dense_part_is_recorded(retriever, memory) -> None:
    memory.tool("search_messages", {"results": [message(1, "hiking", score=2.0)], "count": 1, "query": "hiking"})
    memory.tool("messages_around", {"messages": []})
    before = counts()
    retriever(None).get_context("u1", "hiking", None, 3)
    assert added(before) == {"total": 1, "lexical": 1, "dense": 0, "neighbours": 1}


def test_the_newest_messages_without_a_query_record_the_total_alone(client, memory) -> None:
    memory.resource("history/u1/limit/3", [message(9, "nine")])
    before = counts()
    result(client, "get_context", user_id="u1", limit=3)
    assert added(before) == {"total": 1, "lexical": 0, "dense": 0, "neighbours": 0}


def test_a_retrieval_that_fails_is_still_timed(retriever, memory) -> None:
    memory.tool("search_messages", status=503, code="unavailable")
    before = counts()
    with pytest.raises(ServiceError):
        retriever(None).get_context("u1", "hiking", None, 3)
    assert added(before) == {"total": 1, "lexical": 1, "dense": 0, "neighbours": 0}


def test_the_get_context_tool_records_through_the_app(client, memory) -> None:
    memory.tool("search_messages", {"results": [], "count": 0, "query": "lisbon"})
    before = counts()
    result(client, "get_context", user_id="u1", query="Lisbon", limit=5)
    assert added(before)["total"] == 1
    assert added(before)["neighbours"] == 0  # nothing matched, so no neighbours were read


GEVENT_SCRIPT = """
import gevent.monkey; gevent.monkey.patch_all()
import json, gevent
from cognition_service import context
from cognition_service.offload import CpuOffload
from common import metrics
native = gevent.monkey.get_original("threading", "get_ident")
native_sleep = gevent.monkey.get_original("time", "sleep")
main_thread, recorded, encoded_on = native(), [], []
real = metrics.retrieval_finished
def spy(part, seconds):
    recorded.append((part, seconds, native() == main_thread))
    real(part, seconds)
metrics.retrieval_finished = spy
context.DENSE_WAIT_SECONDS = 0.2
class Reader:
    def search(self, *args, **kwargs):
        return [{"id": "m1", "conversation_id": "c1", "sequence": 1, "score": 1.0, "created_at": None}]
    def similar(self, *args, **kwargs):
        return []
    def around(self, *args, **kwargs):
        return []
class SlowEmbedder:
    name = "slow"
    def encode(self, texts):
        encoded_on.append(native() != main_thread)
        native_sleep(0.6)  # past DENSE_WAIT_SECONDS: the words answer alone
        return [[1.0] for _ in texts]
found = context.Retriever(Reader(), SlowEmbedder(), CpuOffload(1).run).get_context("u1", "hiking", None, 3)
gevent.sleep(0.1)  # the dense greenlet was killed without waiting; let it finish dying
print(json.dumps({"found": [item["id"] for item in found["context"]], "encoded_in_pool": encoded_on,
                  "parts": sorted(part for part, _, _ in recorded),
                  "dense_cut_at_least": min([s for p, s, _ in recorded if p == "dense"], default=0) >= 0.2,
                  "all_on_main": all(on_main for _, _, on_main in recorded)}))
"""


def test_under_gevent_a_dense_half_cut_off_is_recorded_on_greenlets_not_in_the_pool() -> None:
    out = subprocess.run([sys.executable, "-c", GEVENT_SCRIPT], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "found": ["m1"], "encoded_in_pool": [True], "parts": ["dense", "lexical", "neighbours", "total"],
        "dense_cut_at_least": True, "all_on_main": True}, out.stderr
