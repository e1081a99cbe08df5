"""The per-address connection cap and the body deadline, without a server."""

from __future__ import annotations

import io

import pytest

from common.config import ConfigError
from common.errors import RequestTimeout
from common.serving.connection_limits import AddressCounter, ConnectionLimits, DeadlineBody, peer_address


def test_defaults_cap_remote_addresses_but_not_loopback():
    limits = ConnectionLimits.from_env({})
    assert (limits.body_read_seconds, limits.per_address, limits.per_loopback_address) == (20.0, 1000, 0)
    assert limits.cap_for("203.0.113.9") == 1000 and limits.cap_for("2001:db8::1") == 1000
    assert limits.cap_for("127.0.0.2") == 0 and limits.cap_for("::1") == 0 and limits.cap_for("") == 0


@pytest.mark.parametrize("name, value", [("BODY_READ_TIMEOUT_SECONDS", "0"), ("BODY_READ_TIMEOUT_SECONDS", "x"),
                                         ("MAX_CONNECTIONS_PER_ADDRESS", "-1"),
                                         ("MAX_CONNECTIONS_PER_LOOPBACK_ADDRESS", "many")])
def test_invalid_settings_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        ConnectionLimits.from_env({name: value})


def test_the_counter_refuses_past_the_cap_and_frees_on_release():
    counter = AddressCounter(ConnectionLimits(1.0, per_address=2, per_loopback_address=0))
    assert counter.acquire("198.51.100.1") and counter.acquire("198.51.100.1")
    assert not counter.acquire("198.51.100.1")
    assert counter.acquire("198.51.100.2")  # another address has its own count
    counter.release("198.51.100.1")
    assert counter.acquire("198.51.100.1")
    assert all(counter.acquire("127.0.0.1") for _ in range(5000))  # 0 is no cap
    for _ in range(5000):
        counter.release("127.0.0.1")
    assert "127.0.0.1" not in counter.open


def test_peer_address_of_tcp_and_unix_peers():
    assert peer_address(("192.0.2.7", 5123)) == "192.0.2.7" and peer_address("") == ""


def test_the_deadline_runs_from_the_first_read():
    now = [100.0]
    body = DeadlineBody(io.BytesIO(b"line one\nline two\n"), 5.0, clock=lambda: now[0])
    now[0] += 60  # waiting before the first read does not count
    assert body.readline() == b"line one\n"
    now[0] += 5
    with pytest.raises(RequestTimeout):
        body.read()
    assert body.expired
