"""Group commit: concurrent writes share transactions, yet each succeeds or fails on its own."""

from __future__ import annotations

import threading

import pytest

from common.errors import Conflict
from memory_service.store.sqlite.database import Database


@pytest.fixture
def db(tmp_path):
    database = Database(str(tmp_path / "writes.db"))
    database.write(lambda conn: conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
    return database


def insert(n: int):
    def job(conn):
        if n % 7 == 0:
            conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
            raise Conflict(f"refusing {n}")  # after writing: its row must be rolled back alone
        conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
        return n
    return job


def test_concurrent_writes_each_succeed_or_fail_alone(db):
    results: dict[int, object] = {}

    def writer(n: int) -> None:
        try:
            results[n] = db.write(insert(n))
        except Conflict as exc:
            results[n] = exc

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(1, 101)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    stored = {row[0] for row in db.read(lambda conn: conn.execute("SELECT n FROM t").fetchall())}
    assert stored == {n for n in range(1, 101) if n % 7}
    assert all(results[n] == n for n in stored)
    assert all(isinstance(results[n], Conflict) for n in range(7, 101, 7))


def test_a_failed_commit_fails_every_write_of_the_batch(db):
    # A write that breaks the transaction itself (not just its savepoint) must not be acknowledged.
    with pytest.raises(Exception):  # noqa: B017 - sqlite's own error type is what surfaces
        db.write(lambda conn: conn.execute("COMMIT"))
    assert db.write(insert(1)) == 1
    assert db.read(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]) == 1
