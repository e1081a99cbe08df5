"""REDIS_URL and what it changes at start: the factory's choice, one-line refusals, WEB_CONCURRENCY above 1
only with the shared log; and through the API, a POST still stored and answered 202 while Redis is down,
and a stream refused with 503 `stream_unavailable`."""

from __future__ import annotations

import uuid

import pytest

from common.config import ConfigError
from core_app.app import create_app
from core_app.config import load_config
from core_app.events import InProcessEventLog, open_event_log
from core_app.events.stream_ids import StreamId
from tests.core_app.accounts import sign_up
from tests.core_app.api_calls import assert_error, new_conversation, post_message, wait_for_reply
from tests.core_app.embedded_config import core_config
from tests.core_app.output_stream import listening, stream_url
from tests.core_app.redis_server import free_port
from tests.engines import redis_url, require_engine

BASE = {"JWT_SECRET": "x" * 32}


@pytest.mark.parametrize(("values", "variable"), [
    ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
    ({"REDIS_URL": "redis://"}, "REDIS_URL"),
    ({"REDIS_URL": "redis://127.0.0.1:99999"}, "REDIS_URL"),
    ({"REDIS_URL": "redis://127.0.0.1", "REDIS_KEY_PREFIX": "a b"}, "REDIS_KEY_PREFIX"),
    ({"REDIS_URL": "redis://127.0.0.1", "REDIS_POOL_SIZE": "0"}, "REDIS_POOL_SIZE"),
    ({"WEB_CONCURRENCY": "2"}, "WEB_CONCURRENCY"),
])
def test_bad_redis_settings_fail_with_one_line_naming_the_variable(values, variable):
    with pytest.raises(ConfigError) as raised:
        load_config({**BASE, **values})
    assert raised.value.name == variable
    assert "\n" not in str(raised.value)


def test_the_password_of_a_bad_redis_url_is_not_repeated():
    with pytest.raises(ConfigError) as raised:
        load_config({**BASE, "REDIS_URL": "redis://:hunter2@127.0.0.1:99999"})
    assert "hunter2" not in str(raised.value)


def test_several_workers_need_the_shared_log():
    refused = pytest.raises(ConfigError, match="never reach streams held by another")
    with refused:
        load_config({**BASE, "WEB_CONCURRENCY": "4"})
    settings = load_config({**BASE, "WEB_CONCURRENCY": "4", "REDIS_URL": "rediss://cache.internal:6380/2"})
    assert (settings.web_concurrency, settings.redis_url) == (4, "rediss://cache.internal:6380/2")
    assert load_config(BASE).redis_url is None


def test_the_factory_picks_redis_when_redis_url_is_set():
    from core_app.events.redis import RedisEventLog

    settings = load_config({**BASE, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "EVENT_RETENTION": "7",
                            "REDIS_KEY_PREFIX": "tenant-a", "REDIS_POOL_SIZE": "3"})
    log = open_event_log(settings)
    try:
        assert isinstance(log, RedisEventLog)
        assert (log.retention, log.prefix, log.pool.max_connections) == (7, "tenant-a", 3)
    finally:
        log.close()
    assert isinstance(open_event_log(load_config(BASE)), InProcessEventLog)


def test_with_redis_down_a_post_is_stored_and_a_stream_is_refused(tmp_path):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = create_app(core_config(tmp_path, REDIS_URL=dead))
    try:
        client = app.test_client()
        alice = sign_up(client, "Alice")
        conversation = new_conversation(client, alice)["id"]

        refused = client.get(stream_url(conversation), headers=alice.headers)
        assert_error(refused, 503, "stream_unavailable")
        assert refused.headers["Retry-After"] == "1"
        posted = post_message(client, alice, conversation, "Stored while Redis is down?")
        # The reply is generated and stored too; only the events of both are lost.
        messages = wait_for_reply(client, alice, conversation, posted)
        assert [m["role"] for m in messages] == ["user", "assistant"]
    finally:
        app.extensions["cortex"].events.close()


def test_a_stream_on_redis_through_the_api(tmp_path):
    url = require_engine("Redis", redis_url())
    app = create_app(core_config(tmp_path, REDIS_URL=url, REDIS_KEY_PREFIX=f"api-{uuid.uuid4().hex[:12]}"))
    log = app.extensions["cortex"].events
    try:
        client = app.test_client()
        alice = sign_up(client, "Alice")
        conversation = new_conversation(client, alice)["id"]
        with listening(client, conversation, headers=alice.headers) as stream:
            connected = stream.event()
            assert (connected.event, connected.id) == ("connected", "0-0")
            posted = post_message(client, alice, conversation, "Hello on Redis")
            announced = stream.event()
            assert (announced.event, announced.data["id"]) == ("message", posted["id"])
            StreamId.parse(announced.id or "")
            wait_for_reply(client, alice, conversation, posted)  # nothing publishes after the keys are deleted
        # An id of the in-process log: not replayable, so the stream says so and goes live.
        with listening(client, conversation, headers={**alice.headers, "Last-Event-ID": "0123456789ab-4"}) as old:
            assert old.event().event == "connected"
            notice = old.event()
            assert (notice.event, notice.data["code"]) == ("error", "replay_window_exceeded")
        bad = client.get(stream_url(conversation), headers={**alice.headers, "Last-Event-ID": "nonsense"})
        assert_error(bad, 400, "invalid_request")
    finally:
        log.close()
        keys = list(log.client.scan_iter(match=f"{log.prefix}:*"))
        if keys:
            log.client.delete(*keys)
