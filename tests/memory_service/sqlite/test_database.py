"""The SQLite backend's database: pragmas, reopening, transactions, idempotent writes, the pool, gevent."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from common.errors import Conflict, NotFound
from memory_service.store import IdempotencyKey
from memory_service.store.sqlite import users
from memory_service.store.sqlite.database import Database

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def db(tmp_path: Path):
    database = Database(str(tmp_path / "nested" / "memory.db"))
    yield database
    database.close()


def make_user(db: Database, name: str) -> str:
    return users.create_user(db, f"{name}@example.com", name.title(), "a password hash")["user"]["id"]


GEVENT_SCRIPT = """
import gevent.monkey; gevent.monkey.patch_all()
import json, sys, time, gevent
from common.errors import NotFound
from memory_service.store.sqlite.database import Database
from memory_service.store.sqlite import users
main_thread = gevent.monkey.get_original("threading", "get_ident")()
db = Database(sys.argv[1], pool_size=4)
threads = set()
def write(i):
    def fn(conn):
        threads.add(gevent.monkey.get_original("threading", "get_ident")())
        conn.execute("INSERT INTO users VALUES (?, ?, 'n', 'h', 'now')", (f"u{i}", f"u{i}@x.org"))
        return i
    return db.write(fn)
jobs = [gevent.spawn(write, i) for i in range(10)]
gevent.joinall(jobs, raise_error=True)
try:
    users.get_user(db, "missing")
    error = None
except NotFound as exc:
    error = exc.message
count = db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])
# A greenlet killed mid-query must not hand its connection to the next caller while the thread still uses it.
single, busy = Database(sys.argv[1], pool_size=1), []
def slow(conn):
    busy.append(1)
    gevent.monkey.get_original("time", "sleep")(0.3)
    busy.pop()
victim = gevent.spawn(single.read, slow)
deadline = time.monotonic() + 5
while not busy and time.monotonic() < deadline:
    gevent.sleep(0.001)
victim.kill()
overlapped = single.read(lambda conn: len(busy))
print(json.dumps({"count": count, "offloaded": main_thread not in threads, "error": error,
                  "overlapped": overlapped}))
"""



def test_new_database_uses_wal_and_foreign_keys(db: Database, tmp_path: Path) -> None:
    assert (tmp_path / "nested" / "memory.db").exists()
    assert db.read(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert db.read(lambda conn: conn.execute("PRAGMA foreign_keys").fetchone()[0]) == 1
    assert db.ping() is True



def test_reopening_keeps_existing_data(db: Database) -> None:
    user_id = make_user(db, "ann")
    db.close()
    assert db.ping() is False
    reopened = Database(db.path)
    assert users.get_user(reopened, user_id)["user"]["email"] == "ann@example.com"
    reopened.close()



def test_write_rolls_back_when_fn_raises(db: Database) -> None:
    def insert_then_fail(conn):
        conn.execute("INSERT INTO users VALUES ('u1', 'x@example.com', 'X', 'h', 'now')")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        db.write(insert_then_fail)
    assert db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]) == 0
    # The connection went back to the pool clean: the next write commits normally.
    db.write(lambda conn: conn.execute("INSERT INTO users VALUES ('u2', 'y@example.com', 'Y', 'h', 'now')"))
    assert db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]) == 1



def test_idempotent_write_replays_stored_result_without_running_again(db: Database) -> None:
    calls = []

    def counted(conn):
        calls.append(1)
        return {"n": len(calls), "items": [1, 2]}

    key = IdempotencyKey("k1", "tool_a", "fp1")
    assert db.write(counted, idempotency=key) == {"n": 1, "items": [1, 2]}
    assert db.write(counted, idempotency=key) == {"n": 1, "items": [1, 2]}
    assert len(calls) == 1



@pytest.mark.parametrize("tool, fingerprint", [("tool_b", "fp1"), ("tool_a", "fp2")])
def test_idempotency_key_reused_for_another_request_conflicts(db: Database, tool: str,
                                                              fingerprint: str) -> None:
    db.write(lambda conn: {"ok": True}, idempotency=IdempotencyKey("k1", "tool_a", "fp1"))
    with pytest.raises(Conflict, match="idempotency key reused"):
        db.write(lambda conn: {"ok": False}, idempotency=IdempotencyKey("k1", tool, fingerprint))



def test_failed_idempotent_write_stores_no_key(db: Database) -> None:
    key = IdempotencyKey("k1", "tool_a", "fp1")

    def fail(conn):
        raise NotFound("nope")

    with pytest.raises(NotFound):
        db.write(fail, idempotency=key)
    assert db.write(lambda conn: {"ok": True}, idempotency=key) == {"ok": True}



def test_pool_never_opens_more_connections_than_its_size(tmp_path: Path) -> None:
    database = Database(str(tmp_path / "pool.db"), pool_size=2)
    lock, active, seen = threading.Lock(), [0], {"max": 0, "conns": set()}
    release = threading.Event()

    def hold(conn):
        with lock:
            active[0] += 1
            seen["max"] = max(seen["max"], active[0])
            seen["conns"].add(id(conn))
            if active[0] == 2:
                release.set()
        release.wait(timeout=5)
        with lock:
            active[0] -= 1

    threads = [threading.Thread(target=database.read, args=(hold,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen["max"] == 2 and len(seen["conns"]) == 2
    database.close()



def test_under_gevent_transactions_run_in_the_threadpool(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", GEVENT_SCRIPT, str(tmp_path / "g.db")], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == {"count": 10, "offloaded": True, "error": "user not found",
                                      "overlapped": 0}
    assert out.stderr == ""  # an ordinary NotFound is not logged as a crashed pool thread
