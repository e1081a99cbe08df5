"""One analysis of a large conversation does not freeze Cognition: while it runs, Cognition's /health and
another user's search through the Core answer promptly, and the Core's circuit to Cognition stays closed.

The stack raises ANALYSIS_MAX_CHARS above the conversation's size so the whole conversation is analysed
(about a second of CPU): what is tested is that the work runs off the event loop. The default bound,
which keeps each analysis short as well, is tested in tests/cognition_service/test_analysis.py."""

from __future__ import annotations

import random
import threading
import time

import pytest
import requests

from tests.system.support.api import Api
from tests.system.support.stack import start_stack

MESSAGES = 100
CHARS_PER_MESSAGE = 30_000  # Memory's largest message: 3 MB of text in all
# Seconds: what "answers promptly" means here. A Cognition blocked by the analysis would answer only when it
# ends (several seconds); a first request on a loaded 2-core machine has taken just over 0.5 s.
PROMPT = 1.0
WORDS = ("release pipeline deploy budget station train ticket porto lisbon kernel socket greenlet thread "
         "worker cache index query ranking summary sentiment happy broken slow great terrible fixed").split()


def long_text(rng: random.Random) -> str:
    sentences = []
    while sum(len(s) + 1 for s in sentences) < CHARS_PER_MESSAGE - 200:
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + ".")
    return " ".join(sentences)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analysis")
    stack = start_stack(tmp, common_env={"ANALYSIS_MAX_CHARS": str(MESSAGES * CHARS_PER_MESSAGE),
                                         "ANALYSIS_MAX_MESSAGES": str(MESSAGES),
                                         # and Memory's pages big enough to hand the whole of it over at once
                                         "MAX_PAGE_BYTES": str(8 * 1024 * 1024)})
    try:
        owner, other = Api(stack.core.url, "owner@example.com"), Api(stack.core.url, "other@example.com")
        conv = owner.conversation("Large")
        token = stack.memory.env["SERVICE_TOKEN"]
        rng = random.Random(11)
        with requests.Session() as memory:
            for _ in range(MESSAGES):
                stored = memory.post(f"{stack.memory.url}/tool/store_input", timeout=15, json={"arguments": {
                    "user_id": owner.user["id"], "input_data": {"conversation_id": conv, "content": long_text(rng)}}},
                    headers={"Authorization": f"Bearer {token}"})
                assert stored.status_code == 200, stored.text
        yield stack, owner, other, conv
    finally:
        stack.stop()


def timed(call) -> float:
    started = time.monotonic()
    response = call()
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def test_cognition_answers_others_while_a_large_analysis_runs(world):
    stack, owner, other, conv = world
    done: dict = {}

    def analyse() -> None:
        started = time.monotonic()
        done["response"] = owner.request("POST", "/v1/analyze", json={"conversation_id": conv,
                                                                      "analysis_type": "summary"}, timeout=60)
        done["seconds"] = time.monotonic() - started

    def probe(call, latencies: list[float]) -> None:
        while analysis.is_alive():
            latencies.append(timed(call))

    def core_circuit() -> requests.Response:
        answer = requests.get(f"{stack.core.url}/health", timeout=10)
        circuits.add(answer.json()["dependencies"]["cognition"]["circuit"])
        return answer

    health: list[float] = []
    search: list[float] = []
    circuits: set[str] = set()
    analysis = threading.Thread(target=analyse)
    probes = [threading.Thread(target=probe, args=(lambda: requests.get(f"{stack.cognition.url}/health", timeout=10),
                                                    health)),
              threading.Thread(target=probe, args=(lambda: other.request("POST", "/v1/search", json={"query": "porto"},
                                                                         timeout=10), search)),
              threading.Thread(target=probe, args=(core_circuit, []))]
    analysis.start()
    for thread in probes:
        thread.start()
    for thread in (analysis, *probes):
        thread.join()

    print(f"analysis {done['seconds']:.2f} s; slowest health {max(health):.3f} s, search {max(search):.3f} s "
          f"({len(health)} and {len(search)} probes)")
    assert done["response"].status_code == 200, done["response"].text
    assert len(health) >= 2, f"the analysis took {done['seconds']:.2f} s: too short to overlap the probes"
    assert max(health) < PROMPT, (health, done["seconds"])
    assert max(search) < PROMPT, (search, done["seconds"])
    found = done["response"].json()
    assert found["analyzed_messages"] == MESSAGES and found["truncated"] is False
    assert circuits == {"closed"}, circuits  # the Core's circuit to Cognition, sampled throughout
