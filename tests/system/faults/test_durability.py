"""Faults against durability: Memory killed under load loses no acknowledged input, and a retry after a
lost answer stores once (issue "Prove it holds", items 1 and 2)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import pytest
import requests

from common.client import ClientSettings, RetryPolicy, ServiceClient
from tests.system.faults.fault_proxy import FaultProxy
from tests.system.faults.paced_sender import Outcome, send_paced
from tests.system.faults.stack_probe import is_error_shape
from tests.system.support.api import Api
from tests.system.support.figures import report
from tests.system.support.polling import wait_until
from tests.system.support.sse_reader import StreamReader
from tests.system.support.stack import SERVICE_TOKEN, start_stack

SENDERS, PER_SENDER = 10, 30
KILL_AFTER = 100  # answers received before Memory is killed
DOWN_FOR = 1.0  # seconds Memory stays dead before it is started again
# Pacing of each sender, so the 300 messages span before, during and after the outage. A client
# backs off after a 503 as a real one would; this is load shaping, not synchronisation.
PAUSE_AFTER_202, PAUSE_AFTER_ERROR = 0.03, 0.5
CONNECT_TIMEOUT, READ_TIMEOUT, RETRIES, RETRY_MAX = 2.0, 3.0, 1, 1.0
# The longest a Core call to Memory may take with these settings: every attempt up to its connect +
# read timeout, the retries within their time cap; plus 2 s for a loaded 2-core machine.
CALL_BOUND = (CONNECT_TIMEOUT + READ_TIMEOUT) * (RETRIES + 1) + RETRY_MAX + 2.0


def test_memory_killed_under_load_loses_no_acknowledged_message(tmp_path):
    # One user sending from ten clients at once: every message may have its reply in progress together.
    stack = start_stack(tmp_path, core_env={"DEBUG_STATS": "true", "REPLIES_PER_USER": str(SENDERS * PER_SENDER)},
                        common_env={"CLIENT_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
                                    "CLIENT_READ_TIMEOUT": str(READ_TIMEOUT)})
    try:
        api = Api(stack.core.url, "load@example.com")
        conv = api.conversation("Under fire")
        core_pid = requests.get(f"{stack.core.url}/debug/stats", timeout=5).json()["pid"]
        tag = uuid.uuid4().hex[:8]
        outcomes: list[Outcome] = []
        deadline = time.monotonic() + 60
        senders = [threading.Thread(target=send_paced, daemon=True, args=(
            api, conv, [f"{tag} sender {i} message {n}" for n in range(PER_SENDER)], outcomes), kwargs={
            "deadline": deadline, "timeout": CALL_BOUND + 10, "pause_after_202": PAUSE_AFTER_202,
            "pause_after_error": PAUSE_AFTER_ERROR}) for i in range(SENDERS)]
        for thread in senders:
            thread.start()

        wait_until(lambda: len(outcomes) >= KILL_AFTER, 30, message=f"{KILL_AFTER} answers before the kill")
        stack.memory.kill()
        killed_at = time.monotonic()
        wait_until(lambda: time.monotonic() - killed_at >= DOWN_FOR and
                   any(o.status != 202 and o.started >= killed_at for o in list(outcomes)), 20,
                   message="an error answer while Memory is dead")
        stack.memory.start()
        up_at = time.monotonic()
        for thread in senders:
            thread.join(max(0.0, deadline - time.monotonic()) + CALL_BOUND + 10)
        assert not any(thread.is_alive() for thread in senders), "a sender is still waiting for Core"

        statuses = Counter(o.status for o in outcomes)
        refused = [o for o in outcomes if o.status != 202]
        accepted = [o for o in outcomes if o.status == 202]
        after_kill = [o for o in refused if o.ended >= killed_at]
        recovered = [o for o in accepted if o.started >= up_at]
        history = api.request("GET", f"/v1/conversation/{conv}/messages", params={"limit": 1000}).json()["messages"]
        users = [m for m in history if m["role"] == "user"]
        stored = Counter(m["content"] for m in users)
        figures = {
            "sent": len(outcomes), "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
            "kill_after_answers": KILL_AFTER, "memory_down_s": round(up_at - killed_at, 3),
            "kill_to_first_error_s": round(min(o.ended for o in after_kill) - killed_at, 3) if after_kill else None,
            "memory_up_to_first_202_s": (round(min(o.ended for o in recovered) - up_at, 3) if recovered else None),
            "slowest_answer_s": round(max(o.seconds for o in outcomes), 3), "call_bound_s": CALL_BOUND,
            "slowest_error_answer_s": round(max((o.seconds for o in refused), default=0.0), 3),
            "stored_user_messages": len(users),
            "refused_but_stored": sum(1 for o in refused if stored[o.content]),
        }
        report(tmp_path, "memory_killed_under_load", figures)

        assert len(outcomes) == SENDERS * PER_SENDER, "every sender sent all its messages before the deadline"
        assert statuses[None] == 0, [o.body for o in outcomes if o.status is None][:3]
        assert set(statuses) <= {202, 503, 504}, statuses
        for outcome in refused:
            code = "unavailable" if outcome.status == 503 else "timeout"
            assert is_error_shape(outcome.body, code), outcome.body
        assert after_kill and recovered, "the load must span the outage and the recovery"
        assert max(o.seconds for o in outcomes) < CALL_BOUND

        acknowledged = {o.content: o.body["message"] for o in accepted}
        missing = [c for c in acknowledged if stored[c] == 0]
        duplicated = [c for c, n in stored.items() if n > 1]
        assert not missing, f"{len(missing)} acknowledged messages are lost, e.g. {missing[:3]}"
        assert not duplicated, f"{len(duplicated)} messages are stored twice, e.g. {duplicated[:3]}"
        by_content = {m["content"]: m for m in users}
        assert all(by_content[c]["id"] == m["id"] and by_content[c]["sequence"] == m["sequence"]
                   for c, m in acknowledged.items())
        sent = {o.content for o in outcomes}
        assert set(stored) <= sent, "a message nobody sent is in the conversation"
        sequences = [m["sequence"] for m in history]
        assert len(sequences) == len(set(sequences)), "two messages share a sequence number"

        health = requests.get(f"{stack.core.url}/health", timeout=5).json()
        assert health["dependencies"]["memory"]["circuit"] == "closed"
        assert requests.get(f"{stack.core.url}/debug/stats", timeout=5).json()["pid"] == core_pid
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """A stack whose Core reaches Memory through a FaultProxy; the proxy learns Memory's port once it runs."""
    proxy = FaultProxy().start()
    stack = start_stack(tmp_path_factory.mktemp("proxied"), core_env={"MEMORY_SERVICE_URL": proxy.url})
    proxy.upstream_port = stack.memory.port
    wait_until(lambda: requests.get(f"{stack.core.url}/health", timeout=5).json()["status"] == "healthy", 15,
               interval=0.1, message="Core to see Memory through the proxy")
    yield stack, proxy
    stack.stop()
    proxy.close()


def seed(memory: ServiceClient) -> tuple[str, str]:
    user = memory.call_tool("create_user", {"email": f"retry-{uuid.uuid4().hex[:10]}@example.com", "name": "Retry",
                                            "password": "password-123"})["user"]["id"]
    workspace = memory.call_tool("create_workspace", {"user_id": user, "name": "Retries"})["workspace"]["id"]
    conv = memory.call_tool("create_conversation", {"user_id": user, "workspace_id": workspace,
                                                    "topic": "Lost answers"})["conversation"]["id"]
    return user, conv


@pytest.mark.parametrize("mode,times", [("drop", 1), ("drop", 2), ("reset", 1), ("502", 1)])
def test_the_client_retrying_after_a_lost_answer_stores_once(proxied, tmp_path, mode, times):
    stack, proxy = proxied
    direct = ServiceClient("memory", stack.memory.url, token=SERVICE_TOKEN)
    through = ServiceClient("memory", proxy.url, token=SERVICE_TOKEN, settings=ClientSettings(
        retry=RetryPolicy(attempts=3, max_elapsed=5.0)))
    user, conv = seed(direct)
    content = f"lost answer {mode} x{times} {uuid.uuid4().hex[:8]}"
    proxy.fail_next("/tool/store_input", mode, times, marker=content)

    started = time.monotonic()
    result = through.call_tool("store_input", {"user_id": user, "input_data": {"conversation_id": conv,
                                                                               "content": content}})
    elapsed = time.monotonic() - started
    attempts = proxy.requests_with(content)
    listed = direct.call_tool("list_messages", {"user_id": user, "conversation_id": conv})["messages"]
    report(tmp_path, f"client_retry_{mode}_x{times}", {
        "attempts_seen_by_proxy": len(attempts), "faults": [a.fault for a in attempts],
        "upstream_statuses": [a.upstream_status for a in attempts], "call_s": round(elapsed, 3),
        "stored": [m["content"] for m in listed].count(content)})

    assert [a.fault for a in attempts] == [mode] * times + [None]
    assert len({a.idempotency_key for a in attempts}) == 1 and attempts[0].idempotency_key
    # Memory committed the first attempt (the caller never saw its answer); the retry got it replayed.
    assert attempts[0].upstream_status == 200
    first_answer = json.loads(attempts[0].upstream_body)["result"]
    assert result["item_id"] == first_answer["item_id"] and result["sequence"] == first_answer["sequence"] == 1
    assert [m["content"] for m in listed] == [content]
    assert through.circuit == "closed"
    through.close()
    direct.close()


def post_and_watch(api: Api, conv: str, content: str, key: str | None = None) -> tuple[requests.Response,
                                                                                       StreamReader]:
    reader = StreamReader(api.stream_url(conv), token=api.token)
    reader.wait_for("connected")
    headers = {"Idempotency-Key": key} if key else {}
    return api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": content},
                       headers=headers), reader


def assert_one_message_and_one_reply(api: Api, conv: str, reader: StreamReader, content: str) -> dict:
    completed = reader.wait_for("response.completed")[0]
    # A second reply would have announced itself (`response.started`) before the first one completed.
    started = reader.wait_for("response.started")
    announced = [e for e in reader.events if e.event == "message" and e.data["content"] == content]
    history = api.request("GET", f"/v1/conversation/{conv}/messages").json()["messages"]
    reader.close()
    assert len(announced) == 1 and len(started) == 1
    assert [(m["role"], m["content"]) for m in history][0] == ("user", content)
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["id"] == completed.data["message"]["id"]
    return history[0]


@pytest.mark.parametrize("mode", ["drop", "reset", "502"])
def test_core_retrying_after_a_lost_answer_stores_once(proxied, tmp_path, mode):
    stack, proxy = proxied
    api = Api(stack.core.url, f"core-retry-{uuid.uuid4().hex[:10]}@example.com")
    conv = api.conversation()
    content = f"core lost answer {mode} {uuid.uuid4().hex[:8]}"
    proxy.fail_next("/tool/store_input", mode, 1, marker=content)

    posted, reader = post_and_watch(api, conv, content)
    # The reply's own store_input may quote the message; it has a `reply-` key.
    attempts = [a for a in proxy.requests_with(content) if not (a.idempotency_key or "").startswith("reply-")]
    report(tmp_path, f"core_retry_{mode}", {"status": posted.status_code, "faults": [a.fault for a in attempts],
                                            "upstream_statuses": [a.upstream_status for a in attempts]})
    assert posted.status_code == 202, posted.text
    assert [a.fault for a in attempts] == [mode, None]
    assert attempts[0].upstream_status == 200
    stored = assert_one_message_and_one_reply(api, conv, reader, content)
    assert stored["id"] == posted.json()["message"]["id"]


def test_a_user_retry_after_a_503_with_the_same_key_stores_once(proxied, tmp_path):
    """Core's own retries all lose the answer: the user gets 503 although Memory committed, and the
    user's retry with the same Idempotency-Key is answered 202 with that message, stored and replied once."""
    stack, proxy = proxied
    api = Api(stack.core.url, f"user-retry-{uuid.uuid4().hex[:10]}@example.com")
    conv = api.conversation()
    content = f"user retries {uuid.uuid4().hex[:8]}"
    key = f"client-{uuid.uuid4().hex}"
    proxy.fail_next("/tool/store_input", "drop", 2, marker=content)  # start_stack's Core retries once

    first, reader = post_and_watch(api, conv, content, key)
    assert first.status_code == 503, first.text
    assert is_error_shape(first.json(), "unavailable") and "memory" in first.json()["error"]["message"]
    second = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": content},
                         headers={"Idempotency-Key": key})
    attempts = proxy.requests_with(content)
    user_attempts = [a for a in attempts if a.idempotency_key and a.idempotency_key.endswith(f":{key}")]
    report(tmp_path, "user_retry_after_503", {
        "first_status": first.status_code, "second_status": second.status_code,
        "faults": [a.fault for a in user_attempts], "upstream_statuses": [a.upstream_status for a in user_attempts]})
    assert second.status_code == 202, second.text
    assert [a.fault for a in user_attempts] == ["drop", "drop", None]
    committed = json.loads(user_attempts[0].upstream_body)
    assert second.json()["message"]["id"] == committed["result"]["message"]["id"]
    assert_one_message_and_one_reply(api, conv, reader, content)


def test_a_reply_whose_store_lost_its_answer_is_stored_once(proxied, tmp_path):
    stack, proxy = proxied
    api = Api(stack.core.url, f"reply-retry-{uuid.uuid4().hex[:10]}@example.com")
    conv = api.conversation()
    content = f"reply lost answer {uuid.uuid4().hex[:8]}"
    proxy.fail_next("/tool/store_input", "drop", 1, marker='"role": "assistant"')

    posted, reader = post_and_watch(api, conv, content)
    assert posted.status_code == 202, posted.text
    assert_one_message_and_one_reply(api, conv, reader, content)
    message_id = posted.json()["message"]["id"]
    attempts = [a for a in proxy.requests_with(message_id) if (a.idempotency_key or "").startswith("reply-")]
    report(tmp_path, "reply_retry_drop", {"faults": [a.fault for a in attempts],
                                          "upstream_statuses": [a.upstream_status for a in attempts]})
    assert [a.fault for a in attempts] == ["drop", None]
    assert attempts[0].upstream_status == 200 and attempts[0].idempotency_key == attempts[1].idempotency_key


@pytest.mark.parametrize("status", [502, 503])
def test_memory_behind_a_failing_gateway_is_a_503_naming_memory(proxied, tmp_path, status):
    """Scale-out puts Memory behind a load balancer, which answers its own HTML 502/503 while Memory is down."""
    stack, proxy = proxied
    api = Api(stack.core.url, f"gateway-{uuid.uuid4().hex[:10]}@example.com")
    conv = api.conversation()
    content = f"gateway {status} {uuid.uuid4().hex[:8]}"
    proxy.fail_next("/tool/store_input", f"gateway-{status}", 2, marker=content)  # Core's attempt and retry

    response = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": content})
    history = api.request("GET", f"/v1/conversation/{conv}/messages").json()["messages"]
    report(tmp_path, f"gateway_{status}", {"status": response.status_code, "body": response.json(),
                                           "attempts": len(proxy.requests_with(content))})
    assert history == [] and len(proxy.requests_with(content)) == 2
    assert response.status_code == 503, response.text
    assert is_error_shape(response.json(), "unavailable") and "memory" in response.json()["error"]["message"]
