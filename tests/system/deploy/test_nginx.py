"""The project's nginx configuration (deploy/nginx) in front of one Core process, through a real nginx: events
reach a stream as they are published, a stream resumes with Last-Event-ID, heartbeats keep an idle stream
open past nginx's read timeout, 202 and 429 pass through, and the Core tells clients apart behind it."""

from __future__ import annotations

import http.client
import json
import time
import uuid

import pytest
import requests

from tests.system.deploy.nginx import Nginx
from tests.system.support.api import Api
from tests.system.support.fake_llm import FakeLLM
from tests.system.support.polling import wait_until
from tests.system.support.sse_reader import StreamReader
from tests.system.support.stack import start_stack

TOKENS = ["Porto ", "is ", "lovely ", "in ", "spring."]
HEARTBEAT = 1.0  # the stack's SSE_HEARTBEAT_SECONDS


@pytest.fixture(scope="module")
def llm():
    with FakeLLM(TOKENS) as fake:
        yield fake


@pytest.fixture(scope="module")
def core(tmp_path_factory, llm):
    stack = start_stack(tmp_path_factory.mktemp("nginx-core"), core_env={
        "LLM_PROVIDER": "openai", "LLM_BASE_URL": llm.base_url, "LLM_API_KEY": "sk-test", "LLM_MODEL": "test-model",
        "REPLIES_PER_USER": "1", "TRUSTED_PROXIES": "1", "AUTH_RATE_LIMIT_PER_ADDRESS": "3/minute",
        "SIGN_IN_WAIT_SECONDS": "0"})
    yield stack.core
    stack.stop()


@pytest.fixture(scope="module")
def proxies(tmp_path_factory, core):
    """The configuration as shipped, and two variants with a short read timeout: 3 s (longer than the
    heartbeat) and 300 ms (shorter than it)."""
    started = {name: Nginx(tmp_path_factory.mktemp(f"nginx-{name}"), [f"127.0.0.1:{core.port}"], timeout).start()
               for name, timeout in (("shipped", None), ("3s", "3s"), ("300ms", "300ms"))}
    yield started
    for proxy in started.values():
        proxy.stop()


@pytest.fixture(scope="module")
def api(proxies):
    """One user, signed up through nginx (two of 127.0.0.1's three sign-in requests a minute)."""
    return Api(proxies["shipped"].url, f"nginx-{uuid.uuid4().hex[:8]}@example.com")


def post(api: Api, conv: str, content: str = "Is Porto nice in spring?", **kwargs) -> requests.Response:
    return api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": content}, **kwargs)


def reply_done(reader: StreamReader) -> bool:
    return any(e.event == "message" and e.data.get("role") == "assistant" for e in reader.events)


def test_events_arrive_as_published_and_202_and_429_pass_through(api, llm):
    conv = api.conversation()
    reader = StreamReader(api.stream_url(conv), token=api.token)
    assert reader.status == 200 and reader.response.headers["Content-Type"].startswith("text/event-stream")
    assert "Content-Length" not in reader.response.headers
    reader.wait_for("connected")
    llm.hold.clear()  # the reply stops after its first token until released below
    try:
        accepted = post(api, conv)
        assert accepted.status_code == 202, accepted.text
        # Not buffered until the end: the first piece of the reply is on the stream while the rest of
        # it has not even been written.
        first = reader.wait_for("response.delta")[0]
        assert first.data["delta"] == TOKENS[0] and "response.completed" not in reader.types()
        refused = post(api, conv, "and in winter?")
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["details"]["limit"] == "replies_per_user"
    finally:
        llm.hold.set()
    completed = reader.wait_for("response.completed")[0]
    assert completed.data["message"]["content"] == "".join(TOKENS)
    assert completed.data["message"]["metadata"]["in_reply_to"] == accepted.json()["message"]["id"]
    reader.close()


def test_a_stream_resumes_through_nginx_with_last_event_id(api):
    conv = api.conversation()
    first = StreamReader(api.stream_url(conv), token=api.token)
    first.wait_for("connected")
    assert post(api, conv).status_code == 202
    wait_until(lambda: reply_done(first), 15, message=f"the whole reply; got {first.types()}")
    resumed = StreamReader(api.stream_url(conv), token=api.token, last_event_id=first.events[1].id)
    wait_until(lambda: len(resumed.events) >= len(first.events) - 1, 10, message="the replayed events")
    assert [(e.id, e.event) for e in resumed.events[1:]] == [(e.id, e.event) for e in first.events[2:]]
    for reader in (first, resumed):
        reader.close()


def stream_url(proxy: Nginx, conv: str) -> str:
    return f"{proxy.url}/v1/conversation/{conv}/messages/stream"


def read_raw(url: str, token: str, seconds: float) -> tuple[list[tuple[float, bytes]], float | None]:
    """The chunks of a stream read for `seconds`, each with its arrival time since the request, and when the
    server ended the stream (None if it was still open)."""
    started = time.monotonic()
    response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=(5, seconds))
    assert response.status_code == 200, response.text
    chunks: list[tuple[float, bytes]] = []
    ended = None
    try:
        for chunk in response.iter_content(chunk_size=None):
            chunks.append((time.monotonic() - started, chunk))
            if time.monotonic() - started > seconds:
                break
        else:
            ended = time.monotonic() - started
    except requests.exceptions.ChunkedEncodingError:
        ended = time.monotonic() - started  # cut without the end of the chunked body
    finally:
        response.close()
    return chunks, ended


def test_heartbeats_keep_an_idle_stream_open_past_the_read_timeout(api, proxies):
    chunks, ended = read_raw(stream_url(proxies["3s"], api.conversation()), api.token, 7)
    assert ended is None, f"nginx ended the stream after {ended:.1f} s"
    pings = [at for at, chunk in chunks if chunk.startswith(b": ping")]
    # Every heartbeat came through as it was sent, about one a second, none held back.
    assert len(pings) >= 5, chunks
    assert max(b - a for a, b in zip(pings, pings[1:], strict=False)) < 2 * HEARTBEAT


def test_the_read_timeout_does_end_a_stream_quieter_than_it(api, proxies):
    """The control: with nginx's read timeout below the heartbeat, the same stream is cut."""
    chunks, ended = read_raw(stream_url(proxies["300ms"], api.conversation()), api.token, 5)
    assert ended is not None and ended < HEARTBEAT, (ended, chunks)
    assert not [chunk for _, chunk in chunks if chunk.startswith(b": ping")]


def test_bodies_pass_buffered_and_the_core_answers_one_too_big_in_its_shape(api):
    conv = api.conversation()
    reader = StreamReader(api.stream_url(conv), token=api.token)
    reader.wait_for("connected")
    # 192 KB of JSON (\u escapes), more than nginx keeps in memory: it goes through nginx's temporary file.
    big = json.dumps({"content": "\u00e9" * 32_000})
    accepted = api.request("POST", f"/v1/conversation/{conv}/messages", data=big,
                           headers={"Content-Type": "application/json"})
    assert len(big) > 64 * 1024 and accepted.status_code == 202, accepted.text
    too_big = api.request("POST", f"/v1/conversation/{conv}/messages", data=b"{" + b" " * 1_500_000 + b"}",
                          headers={"Content-Type": "application/json"})
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large", too_big.text
    wait_until(lambda: reply_done(reader), 15, message=f"the reply; got {reader.types()}")
    reader.close()


def login_from(address: str, port: int, claimed: str) -> tuple[int, dict]:
    """A failed sign-in from the local `address` through nginx, claiming to be `claimed` in X-Forwarded-For."""
    connection = http.client.HTTPConnection("127.0.0.1", port, source_address=(address, 0), timeout=10)
    try:
        connection.request("POST", "/v1/auth/login", json.dumps({"email": "nobody@example.com", "password": "x" * 12}),
                           {"Content-Type": "application/json", "X-Forwarded-For": claimed})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_the_core_limits_each_client_address_not_the_proxys(proxies):
    """TRUSTED_PROXIES=1: the Core counts sign-ins per address nginx saw, whatever a client claims."""
    port = proxies["shipped"].port
    answers = [login_from("127.0.0.2", port, f"198.51.100.{n}") for n in range(4)]
    assert [status for status, _ in answers] == [401, 401, 401, 429], answers
    assert answers[-1][1]["error"]["details"]["per"] == "address"
    assert login_from("127.0.0.3", port, "198.51.100.1")[0] == 401  # another client: its own count
