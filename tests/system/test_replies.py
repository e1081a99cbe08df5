"""Replies against real processes (issue 11 items 3, 21, 23): one user's flood cannot take the Core's reply
work from everyone else, the OpenAI-compatible provider is reached over kept-alive connections and needs
its key at start, and the offline reply remembers what was just said."""

from __future__ import annotations

import os
import sys
import threading
import uuid

import pytest
import requests

from tests.system.support.api import Api
from tests.system.support.fake_llm import FakeLLM
from tests.system.support.harness import ServiceProcess, free_port, run
from tests.system.support.polling import wait_until
from tests.system.support.sse_reader import StreamReader
from tests.system.support.stack import start_stack

REPLY_CONCURRENCY, REPLY_QUEUE, REPLIES_PER_USER = 3, 3, 4
FLOODERS, FLOOD_EACH = 12, 5  # 60 POSTs from one user, 12 at a time
PASSWORD = "a long enough password 42"


@pytest.fixture(scope="module")
def llm():
    with FakeLLM(["Porto ", "is ", "lovely ", "in ", "spring."]) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory, llm):
    started = start_stack(tmp_path_factory.mktemp("replies"), core_env={
        "LLM_PROVIDER": "openai", "LLM_BASE_URL": llm.base_url, "LLM_API_KEY": "sk-test", "LLM_MODEL": "test-model",
        "REPLY_CONCURRENCY": str(REPLY_CONCURRENCY), "REPLY_QUEUE": str(REPLY_QUEUE),
        "REPLIES_PER_USER": str(REPLIES_PER_USER), "DEBUG_STATS": "true"})
    yield started
    started.stop()


def user(stack, name: str) -> Api:
    return Api(stack.core.url, f"{name}-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD)


def messages_url(api: Api, conv: str) -> str:
    return f"{api.base}/v1/conversation/{conv}/messages"


def reply_stats(stack) -> dict:
    return requests.get(f"{stack.core.url}/debug/stats", timeout=5).json()["replies"]


def flood(api: Api, conv: str, start: threading.Barrier, answers: list[requests.Response]) -> None:
    session = requests.Session()
    session.headers.update(api.headers)
    start.wait(10)
    for n in range(FLOOD_EACH):
        answers.append(session.post(messages_url(api, conv), json={"content": f"flood {uuid.uuid4().hex[:6]} {n}"},
                                    timeout=15))


def test_one_users_flood_is_refused_with_429_while_another_users_message_is_answered(stack, llm):
    flooder, other, late = user(stack, "flooder"), user(stack, "other"), user(stack, "late")
    flood_conv, other_conv, late_conv = flooder.conversation(), other.conversation(), late.conversation()
    reader = StreamReader(other.stream_url(other_conv), token=other.token)
    reader.wait_for("connected")
    llm.hold.clear()  # every reply stays running after its first token until released below
    try:
        answers: list[requests.Response] = []
        start = threading.Barrier(FLOODERS + 1)
        threads = [threading.Thread(target=flood, args=(flooder, flood_conv, start, answers), daemon=True)
                   for _ in range(FLOODERS)]
        for thread in threads:
            thread.start()
        start.wait(10)
        posted = other.request("POST", f"/v1/conversation/{other_conv}/messages",
                               json={"content": "Is Porto nice in spring?"})  # in the middle of the flood
        for thread in threads:
            thread.join(60)
        statuses = [answer.status_code for answer in answers]
        refused = [answer for answer in answers if answer.status_code == 429]

        assert len(answers) == FLOODERS * FLOOD_EACH
        assert sorted(set(statuses)) == [202, 429], statuses
        assert statuses.count(202) == REPLIES_PER_USER
        for answer in refused:
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.json()["error"]["code"] == "too_many_requests"
            assert answer.json()["error"]["details"]["limit"] == "replies_per_user"
        assert posted.status_code == 202, posted.text

        # At most REPLY_CONCURRENCY replies run; the other admitted ones wait for a turn.
        wait_until(lambda: llm.active == REPLY_CONCURRENCY, 10, message="the replies to reach the model")
        assert reply_stats(stack) | {"workers": 0, "users": 0} == {
            "running": REPLY_CONCURRENCY, "waiting": REPLIES_PER_USER + 1 - REPLY_CONCURRENCY,
            "admitted": REPLIES_PER_USER + 1, "workers": 0, "users": 0}
        # The process-wide bound: the last free place, then 429 for anyone.
        assert late.request("POST", f"/v1/conversation/{late_conv}/messages", json={"content": "first"}
                            ).status_code == 202
        full = late.request("POST", f"/v1/conversation/{late_conv}/messages", json={"content": "second"})
        assert full.status_code == 429 and full.headers["Retry-After"], full.text
        details = full.json()["error"]["details"]
        assert details == {"limit": "reply_queue", "allowed": REPLY_CONCURRENCY + REPLY_QUEUE,
                           "retry_after": int(full.headers["Retry-After"])}
    finally:
        llm.hold.set()

    completed = reader.wait_for("response.completed")[0]
    reader.close()
    assert completed.data["message"]["metadata"]["in_reply_to"] == posted.json()["message"]["id"]
    assert completed.data["message"]["content"] == "Porto is lovely in spring."
    wait_until(lambda: reply_stats(stack)["admitted"] == 0, 15, message="every admitted reply to end")
    stored = flooder.request("GET", f"/v1/conversation/{flood_conv}/messages").json()["messages"]
    # Nothing refused was stored, and every 202 got its reply.
    assert [m["role"] for m in stored].count("user") == REPLIES_PER_USER
    assert [m["role"] for m in stored].count("assistant") == REPLIES_PER_USER
    assert [m["content"] for m in late.request("GET", f"/v1/conversation/{late_conv}/messages").json()["messages"]
            if m["role"] == "user"] == ["first"]
    assert llm.most_active <= REPLY_CONCURRENCY
    # Item 21: six replies over at most REPLY_CONCURRENCY kept-alive connections, not one per reply.
    assert llm.connections <= REPLY_CONCURRENCY < REPLIES_PER_USER + 2


def test_openai_without_a_key_refuses_to_start_with_one_line_naming_it():
    done = run([sys.executable, "-m", "core_app"], {"LLM_PROVIDER": "openai", "PORT": str(free_port()),
                                                    "JWT_SECRET": "x" * 32},
               unset=[key for key in os.environ if key.startswith("LLM_")], timeout=30)

    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0
    assert len(lines) == 1 and "LLM_API_KEY" in lines[0] and "Traceback" not in done.stderr, done.stderr


def test_the_readmes_chat_example_recalls_what_was_said(stack, tmp_path):
    """README: `python scripts/chat.py ... -m "Hello" -m "What did I say?"` with the offline reply."""
    env = {key: value for key, value in stack.core.env.items() if not key.startswith("LLM_")}
    core = ServiceProcess("core_app.app:create_app()", env, tmp_path / "core-builtin.log").start()
    try:
        done = run(
            [sys.executable, "scripts/chat.py", "--url", core.url, "--email", f"ada-{uuid.uuid4().hex[:8]}@example.com",
             "--password", PASSWORD, "--register", "-m", "Hello", "-m", "What did I say?"])
    finally:
        core.stop()

    replies = [line for line in done.stdout.splitlines() if line.startswith("assistant:")]
    assert done.returncode == 0, done.stderr
    assert len(replies) == 2, done.stdout
    assert "Hello" in replies[1] and "nothing earlier" not in replies[1], replies
