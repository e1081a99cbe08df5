"""Two Core processes behind the project's nginx (round robin over both), on one Memory and the Redis event
log: streams held through nginx on either Core receive, in order, the message and the whole reply of a POST
that nginx sent to one of them, and a resume through nginx from an id seen on one Core works on the other.

Runs only where `core_app/events/` has a Redis backend (REDIS_URL); elsewhere it is skipped with that reason."""

from __future__ import annotations

import importlib
import pkgutil
import re
import uuid

import pytest
import redis

from tests.engines import redis_url, require_engine
from tests.system.deploy.nginx import Nginx
from tests.system.support.api import Api
from tests.system.support.fake_llm import FakeLLM
from tests.system.support.harness import ServiceProcess
from tests.system.support.polling import wait_until
from tests.system.support.sse_reader import StreamReader
from tests.system.support.stack import start_stack

STREAMS = 4  # round robin over two Cores: two on each


def redis_event_log_exists() -> bool:
    """Whether a module of `core_app.events` named for Redis imports (the backend REDIS_URL selects)."""
    import core_app.events as events

    for module in pkgutil.iter_modules(events.__path__):
        if "redis" in module.name:
            importlib.import_module(f"core_app.events.{module.name}")
            return True
    return False


pytestmark = pytest.mark.skipif(not redis_event_log_exists(), reason="needs the Redis event log (REDIS_URL)")


@pytest.fixture(scope="module")
def two_cores_behind_nginx(tmp_path_factory):
    url = require_engine("Redis", redis_url())
    prefix = f"cortex-test-nginx-{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("nginx-two-cores")
    with FakeLLM(["Porto ", "is ", "lovely ", "in ", "spring."], delay=0.02) as llm:
        stack = start_stack(tmp, core_env={
            "REDIS_URL": url, "REDIS_KEY_PREFIX": prefix, "TRUSTED_PROXIES": "1", "LLM_PROVIDER": "openai",
            "LLM_BASE_URL": llm.base_url, "LLM_API_KEY": "sk-test", "LLM_MODEL": "test-model"})
        other = ServiceProcess("core_app.app:create_app()", stack.core.env, tmp / "core-b.log").start()
        proxy = Nginx(tmp / "nginx", [f"127.0.0.1:{stack.core.port}", f"127.0.0.1:{other.port}"]).start()
        try:
            yield proxy, [stack.core, other]
        finally:
            proxy.stop()
            other.stop()
            stack.stop()
            client = redis.Redis.from_url(url)
            for key in client.scan_iter(f"{prefix}*"):
                client.delete(key)
            client.close()


def streams_served(core: ServiceProcess, conv: str) -> int:
    """How many streams of `conv` this Core served (gunicorn logs a request once it has ended)."""
    return len(re.findall(rf"GET /v1/conversation/{conv}/messages/stream", core.log_text()))


def test_streams_on_both_cores_get_a_post_made_through_nginx_and_resume_on_either(two_cores_behind_nginx):
    proxy, cores = two_cores_behind_nginx
    api = Api(proxy.url, f"nginx-two-{uuid.uuid4().hex[:8]}@example.com")
    conv = api.conversation()
    readers = [StreamReader(api.stream_url(conv), token=api.token) for _ in range(STREAMS)]
    for reader in readers:
        reader.wait_for("connected")
    posted = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "Tell me about Porto"})
    assert posted.status_code == 202, posted.text
    for reader in readers:
        wait_until(lambda r=reader: any(e.event == "message" and e.data.get("role") == "assistant"
                                        for e in r.events), 20, message=f"the whole reply; got {reader.types()}")
    expected = [(e.id, e.event) for e in readers[0].events[1:]]
    assert [event for _, event in expected][:2] == ["message", "response.started"]
    assert "".join(e.data["delta"] for e in readers[0].events if e.event == "response.delta") == (
        "Porto is lovely in spring.")
    for reader in readers[1:]:
        assert [(e.id, e.event) for e in reader.events[1:]] == expected  # the same events, in the same order

    # Resume from the user's message, twice: nginx sends one resume to each Core.
    resumed = [StreamReader(api.stream_url(conv), token=api.token, last_event_id=readers[0].events[1].id)
               for _ in range(2)]
    for reader in resumed:
        wait_until(lambda r=reader: len(r.events) >= len(expected), 10, message="the replayed events")
        assert [(e.id, e.event) for e in reader.events[1:]] == expected[1:]
    for reader in readers + resumed:
        reader.close()
    # Both Cores held streams: the POST went to one of them, so the other's got it through Redis. (A Core
    # logs a stream once it notices the client gone, at its next heartbeat.)
    wait_until(lambda: sum(streams_served(core, conv) for core in cores) == STREAMS + 2, 15,
               message="every stream in the Cores' access logs")
    assert all(streams_served(core, conv) for core in cores), [streams_served(core, conv) for core in cores]
