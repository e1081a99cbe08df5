"""The output stream against a real Core process: a stream ends when its token expires or its reader loses
the conversation, one user cannot hold every connection, event ids say nothing about other users, and a
token sent in the stream's URL never reaches the access log (a stream ticket keeps it out of the URL)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests

from core_app.events import EventId
from tests.system.support.api import Api
from tests.system.support.polling import wait_until
from tests.system.support.raw_stream import RawStream
from tests.system.support.sse_reader import StreamReader
from tests.system.support.stack import JWT_SECRET, start_stack

STREAMS_PER_USER = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # REPLIES_PER_USER: one test posts eight large messages back to back, their replies overlapping.
    started = start_stack(tmp_path_factory.mktemp("streams-security"), core_env={
        "STREAMS_PER_USER": str(STREAMS_PER_USER), "STREAM_ACCESS_CHECK_SECONDS": "0.5", "REPLIES_PER_USER": "8"})
    yield started
    started.stop()


def new_user(stack) -> Api:
    return Api(stack.core.url, f"reader-{uuid.uuid4().hex[:8]}@example.com")


def ended_with(reader: StreamReader, timeout: float) -> list:
    """The events after `connected`, once the server has ended the stream."""
    assert reader.ended.wait(timeout), f"the stream did not end within {timeout} s: {reader.types()}"
    return reader.events[1:]


def test_a_stream_ends_with_token_expired_when_its_token_expires(stack):
    api = new_user(stack)
    conv = api.conversation()
    now = int(time.time())
    token = jwt.encode({"sub": api.user["id"], "email": api.user["email"], "name": api.user["name"], "iat": now,
                        "exp": now + 2}, JWT_SECRET, algorithm="HS256")

    reader = StreamReader(api.stream_url(conv), token=token)
    assert reader.status == 200
    rest = ended_with(reader, 10)

    assert [(e.event, e.data["code"]) for e in rest] == [("error", "token_expired")]
    assert time.time() < now + 2 + 5  # at most a heartbeat or two late
    refused = requests.get(api.stream_url(conv), headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert refused.status_code == 401


def test_a_stream_ends_with_forbidden_when_its_conversation_is_deleted(stack):
    api = new_user(stack)
    conv = api.conversation()
    reader = StreamReader(api.stream_url(conv), token=api.token)
    reader.wait_for("connected")

    assert api.request("DELETE", f"/v1/conversation/{conv}").status_code in (200, 204)
    rest = ended_with(reader, 10)

    assert [(e.event, e.data["code"]) for e in rest] == [("error", "forbidden")]
    assert requests.get(api.stream_url(conv), headers=api.headers, timeout=10).status_code == 404


def test_a_user_cannot_open_more_streams_than_the_limit_and_gets_one_back_after_closing(stack):
    api, other = new_user(stack), new_user(stack)
    conv = api.conversation()
    readers = [StreamReader(api.stream_url(conv), token=api.token) for _ in range(STREAMS_PER_USER)]
    for reader in readers:
        reader.wait_for("connected")

    refused = requests.get(api.stream_url(conv), headers=api.headers, timeout=10)
    theirs = StreamReader(other.stream_url(other.conversation()), token=other.token)
    readers[0].close()

    def reopened() -> StreamReader | None:
        reader = StreamReader(api.stream_url(conv), token=api.token)
        if reader.status == 200:
            return reader
        reader.close()
        return None

    again = wait_until(reopened, 10, interval=0.2, message="a slot to free up after a stream closed")
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert int(refused.headers["Retry-After"]) >= 1
    assert theirs.status == 200
    for reader in [*readers, theirs, again]:
        reader.close()


def test_a_readers_event_ids_do_not_move_when_another_user_is_active(stack):
    alice, bob = new_user(stack), new_user(stack)
    hers, his = alice.conversation(), bob.conversation()
    reader = StreamReader(alice.stream_url(hers), token=alice.token)
    reader.wait_for("connected")

    alice.request("POST", f"/v1/conversation/{hers}/messages", json={"content": "first"})
    reader.wait_for("response.completed")
    bobs = StreamReader(bob.stream_url(his), token=bob.token)
    for n in range(3):
        bob.request("POST", f"/v1/conversation/{his}/messages", json={"content": f"busy {n}"})
        bobs.wait_for("response.completed", count=n + 1)
    alice.request("POST", f"/v1/conversation/{hers}/messages", json={"content": "second"})
    reader.wait_for("response.completed", count=2)
    wait_until(lambda: reader.types()[-1] == "message", 10, message="alice's last message event")

    numbers = [EventId.parse(e.id).sequence for e in reader.events]
    assert numbers == list(range(0, len(numbers))), numbers  # connected at 0, then only her own events
    reader.close()
    bobs.close()


def test_the_access_log_never_holds_a_token_sent_in_the_url(stack):
    api = new_user(stack)
    conv = api.conversation()
    by_token = StreamReader(api.stream_url(conv), params={"access_token": api.token})
    by_token.wait_for("connected")
    ticket = api.request("POST", f"/v1/conversation/{conv}/stream-ticket").json()["ticket"]
    by_ticket = StreamReader(api.stream_url(conv), params={"ticket": ticket})
    by_ticket.wait_for("connected")
    for reader in (by_token, by_ticket):
        reader.close()
    refused = requests.get(api.stream_url(conv), params={"access_token": "not-a-token-but-secret"}, timeout=10)
    assert refused.status_code == 401

    def logged() -> str | None:
        text = stack.core.log_path.read_text(errors="replace")
        lines = [line for line in text.splitlines() if f"/v1/conversation/{conv}/messages/stream" in line]
        return text if len(lines) >= 3 else None

    # A stream is logged once it has ended, which the server notices at its next heartbeat.
    log = wait_until(logged, 10, interval=0.2, message="the three stream requests in the access log")
    assert api.token not in log and ticket not in log and "not-a-token-but-secret" not in log
    assert "access_token=[redacted]" in log and "ticket=[redacted]" in log


def test_a_stream_ticket_opens_only_its_conversations_stream(stack):
    api = new_user(stack)
    conv, other = api.conversation(), api.conversation()
    issued = api.request("POST", f"/v1/conversation/{conv}/stream-ticket")
    assert issued.status_code == 201, issued.text
    ticket = issued.json()["ticket"]

    reader = StreamReader(api.stream_url(conv), params={"ticket": ticket})
    assert reader.wait_for("connected")[0].data["user_id"] == api.user["id"]
    elsewhere = requests.get(api.stream_url(other), params={"ticket": ticket}, timeout=10)
    as_bearer = requests.get(f"{stack.core.url}/v1/workspace", headers={"Authorization": f"Bearer {ticket}"},
                             timeout=10)
    reader.close()
    assert elsewhere.status_code == 401 and as_bearer.status_code == 401


def send_queue_bytes(server_port: int, client_port: int) -> int:
    """Bytes the kernel holds to send on the server's side of one loopback connection (/proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return int(queues.split(":")[0], 16)
    raise AssertionError(f"no connection {server_port} -> {client_port} in /proc/net/tcp")


def test_a_stream_that_never_reads_holds_little_kernel_memory(stack):
    api = new_user(stack)
    conv = api.conversation()
    stalled = RawStream(stack.core.port, f"/v1/conversation/{conv}/messages/stream", api.token)
    reader = StreamReader(api.stream_url(conv), token=api.token)
    reader.wait_for("connected")
    for n in range(8):  # about 720 KB of events: under the 1 MiB subscriber buffer, so nobody is cut off
        posted = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "語" * 29_990 + f" {n}"})
        assert posted.status_code == 202, posted.text
    reader.wait_for("response.completed", count=8)
    client_port = stalled.sock.getsockname()[1]

    queued = wait_until(lambda: send_queue_bytes(stack.core.port, client_port), 5, message="a full send queue")
    reader.close()
    stalled.close()
    # STREAM_SEND_BUFFER_BYTES (64 KiB, which Linux doubles) instead of the auto-tuned megabytes.
    assert 0 < queued <= 2 * 64 * 1024 + 4096, queued
