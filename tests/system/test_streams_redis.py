"""The output stream on Redis across Core processes (issue 13): two Core processes on one Memory and one
Redis of the test's own. A stream on Core A receives, in order, the message and the whole streamed reply
of a POST made through Core B; resuming on Core B from the last id seen on Core A loses and repeats
nothing; and with Redis stopped, POSTs are still stored (202), open streams end with
`stream_unavailable`, new ones are refused with 503 until Redis is back, and an id Redis no longer holds
is `replay_window_exceeded`."""

from __future__ import annotations

import signal
import sys
import uuid

import pytest

from tests.core_app.redis_server import own_redis
from tests.system.support.api import Api
from tests.system.support.harness import ServiceProcess, free_port, run
from tests.system.support.polling import wait_until
from tests.system.support.sse_reader import StreamReader
from tests.system.support.stack import start_stack

REPLY = ["response.started", "response.delta", "response.completed", "message"]


@pytest.fixture(scope="module")
def redis_and_two_cores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("streams-redis")
    server = own_redis(tmp)
    stack = start_stack(tmp, core_env={"REDIS_URL": server.url, "REDIS_KEY_PREFIX": "system"})
    other = ServiceProcess("core_app.app:create_app()", stack.core.env, tmp / "core-b.log").start()
    yield server, stack.core, other
    other.stop()
    stack.stop()
    server.stop()


def same_user_on(api: Api, base: str) -> Api:
    other = Api.__new__(Api)
    other.base, other.token, other.user = base, api.token, api.user
    return other


def reply_done(reader: StreamReader) -> bool:
    return any(e.event == "message" and e.data.get("role") == "assistant" for e in reader.events)


def test_a_post_through_core_b_streams_on_core_a_and_resumes_on_core_b(redis_and_two_cores):
    _, core_a, core_b = redis_and_two_cores
    alice = Api(core_a.url, f"alice-{uuid.uuid4().hex[:8]}@example.com")
    conv = alice.conversation()
    on_b = same_user_on(alice, core_b.url)
    on_a = StreamReader(alice.stream_url(conv), token=alice.token)
    try:
        on_a.wait_for("connected")
        posted = on_b.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "Tell me about Porto"})
        assert posted.status_code == 202, posted.text
        wait_until(lambda: reply_done(on_a), 20, message=f"the reply on Core A; got {on_a.types()}")
    finally:
        on_a.close()

    events = [e for e in on_a.events if e.event != "connected"]
    assert events[0].event == "message" and events[0].data["id"] == posted.json()["message"]["id"]
    kinds = [e.event for e in events[1:]]
    assert kinds[0] == "response.started" and kinds[-2:] == ["response.completed", "message"]
    assert set(kinds[1:-2]) == {"response.delta"} and len(kinds) > 4
    deltas = "".join(e.data["delta"] for e in events if e.event == "response.delta")
    assert deltas == events[-1].data["content"]
    ids = [e.id for e in events]
    assert all(ids) and len(set(ids)) == len(ids)

    # Resume on Core B from an id seen on Core A, mid-reply: exactly the rest, then live events.
    cut = len(events) // 2
    on_b_stream = StreamReader(on_b.stream_url(conv), token=alice.token, last_event_id=ids[cut - 1])
    try:
        wait_until(lambda: len([e for e in on_b_stream.events if e.event != "connected"]) >= len(events) - cut, 10,
                   message="the replay on Core B")
        again = alice.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "And Lisbon?"})
        assert again.status_code == 202, again.text
        wait_until(lambda: sum(e.event == "message" and e.data.get("role") == "assistant"
                               for e in on_b_stream.events) == 2, 20, message="the live reply on Core B")
    finally:
        on_b_stream.close()
    resumed = [e for e in on_b_stream.events if e.event != "connected"]
    assert [(e.id, e.event) for e in resumed[:len(events) - cut]] == [(e.id, e.event) for e in events[cut:]]
    assert resumed[len(events) - cut].data["id"] == again.json()["message"]["id"]
    resumed_ids = [e.id for e in resumed]
    assert len(set(resumed_ids)) == len(resumed_ids) and resumed_ids == sorted(resumed_ids, key=stream_key)


def stream_key(event_id: str | None) -> tuple[int, int]:
    ms, _, seq = (event_id or "0-0").partition("-")
    return int(ms), int(seq)


def test_redis_down_keeps_posts_ends_streams_and_refuses_new_ones_until_it_is_back(redis_and_two_cores):
    server, core_a, core_b = redis_and_two_cores
    alice = Api(core_a.url, f"alice-{uuid.uuid4().hex[:8]}@example.com")
    conv = alice.conversation()
    on_b = same_user_on(alice, core_b.url)
    stream = StreamReader(alice.stream_url(conv), token=alice.token)
    try:
        stream.wait_for("connected")
        first = on_b.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "Before"})
        assert first.status_code == 202, first.text
        wait_until(lambda: reply_done(stream), 20, message="the first reply")
        last_id = stream.events[-1].id

        server.stop(signal.SIGKILL)
        stream.ended.wait(15)
        assert stream.ended.is_set(), stream.types()
        assert stream.events[-1].event == "error" and stream.events[-1].data["code"] == "stream_unavailable"
        assert stream.events[-1].id is None  # the client's Last-Event-ID stays at its last real event

        during = on_b.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "While Redis is down"})
        assert during.status_code == 202, during.text
        refused = StreamReader(alice.stream_url(conv), token=alice.token, last_event_id=last_id)
        assert refused.status == 503
        assert refused.response.json()["error"]["code"] == "stream_unavailable"
        assert refused.response.headers["Retry-After"] == "1"
        history = alice.request("GET", f"/v1/conversation/{conv}/messages").json()["messages"]
        assert "While Redis is down" in [m["content"] for m in history]

        server.start()  # no persistence: the streams it held are gone
        back = wait_until(lambda: (r := StreamReader(alice.stream_url(conv), token=alice.token,
                                                     last_event_id=last_id)).status == 200 and r, 15,
                          interval=0.2, message="a stream once Redis is back")
        try:
            back.wait_for("error")
            assert back.events[0].event == "connected"
            assert back.events[1].data["code"] == "replay_window_exceeded"
            for core in (core_a, core_b):
                assert core.log_text().count("Redis is unavailable") == 1  # once per outage
        finally:
            back.close()
    finally:
        stream.close()


@pytest.mark.parametrize("how", ["python -m core_app", "gunicorn"])
def test_several_core_workers_without_redis_url_are_refused_with_one_line(how, tmp_path):
    env = {"WEB_CONCURRENCY": "2", "PORT": str(free_port()), "DATABASE_URL": f"sqlite:///{tmp_path}/run.db",
           "CORTEX_DISTRIBUTED_MODE": "true" if how == "gunicorn" else "false"}
    argv = ([sys.executable, "-m", "core_app"] if how != "gunicorn" else
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{free_port()}",
             "core_app.app:create_app()"])
    done = run(argv, env, unset=["REDIS_URL"], timeout=60)

    assert done.returncode != 0
    refusals = [line for line in (done.stderr + done.stdout).splitlines() if line.startswith("cortex: ")]
    assert refusals and all("WEB_CONCURRENCY must be 1" in line and "REDIS_URL" in line for line in refusals)
    assert "Traceback" not in done.stderr
