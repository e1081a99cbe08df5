"""PostgreSQL down: a refused connection at start is StoreUnavailable (one line); a server lost while
running makes calls 503 `unavailable` in the error shape and /health 503 unhealthy, never a 500. The
server is "lost" by stopping a TCP relay the store reaches it through, not the shared server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from common.errors import ServiceUnavailable
from memory_service.app import create_app
from memory_service.store import StoreUnavailable
from memory_service.store.postgresql import PostgresStore


class Relay:
    """Forwards 127.0.0.1:<port> to the server's address until `stop`, which closes every connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.stopped:
                client.close()
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        self.stopped = True
        try:  # wakes the thread blocked in accept(), which close() alone does not on Linux
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@pytest.fixture
def relayed(pg_url: str) -> Iterator[tuple[Relay, str]]:
    parts = urlsplit(pg_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    netloc = f"{parts.username}@" if parts.username else ""
    yield relay, urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{relay.port}"))
    relay.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_at_start_is_store_unavailable_in_one_line() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        PostgresStore(f"postgresql://127.0.0.1:{free_port()}/test")
    assert str(caught.value).startswith("PostgreSQL cannot be used: ") and "\n" not in str(caught.value)


def test_a_lost_server_makes_calls_unavailable_not_errors(relayed: tuple[Relay, str], fast_hashing: None) -> None:
    relay, url = relayed
    store = PostgresStore(url, pool_size=2, pool_timeout=1.0)
    try:
        user = store.create_user("ann@example.com", "ann", "hash")["user"]["id"]
        relay.stop()
        for _ in range(2):  # the broken pooled connection, then no connection at all
            with pytest.raises(ServiceUnavailable, match="the database is unavailable"):
                store.get_user(user)
        assert store.ping() is False
    finally:
        store.close()


def test_the_service_answers_503_unavailable_and_health_unhealthy(relayed: tuple[Relay, str]) -> None:
    relay, url = relayed
    app = create_app({"DATABASE_URL": url, "SERVICE_TOKEN": "", "DB_POOL_TIMEOUT": "1"})
    client = app.test_client()
    try:
        assert client.get("/health").status_code == 200
        relay.stop()
        response = client.post("/tool/get_user", json={"arguments": {"user_id": "someone"}})
        assert response.status_code == 503, response.json
        assert response.json["error"]["code"] == "unavailable"
        assert "database is unavailable" in response.json["error"]["message"]
        health = client.get("/health")
        assert (health.status_code, health.json["status"]) == (503, "unhealthy")
    finally:
        app.extensions["cortex.store"].close()
