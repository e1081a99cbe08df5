"""The SQLite backend's own figures: group-commit batch sizes, and (under gevent) every metric recorded on the
hub's thread, never in the pool threads that run the transactions."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from common import metrics
from common.errors import Conflict
from memory_service.store.sqlite.database import Database

REPO = Path(__file__).resolve().parents[3]
BATCH = "cortex_db_group_commit_batch_size"
TRANSACTIONS = "cortex_db_transaction_duration_seconds"


pytestmark = pytest.mark.usefixtures("metrics_on")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_each_committed_batch_records_its_size_and_one_write_transaction(tmp_path: Path) -> None:
    db = Database(str(tmp_path / "batches.db"))
    db.write(lambda conn: conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
    batches, writes = sample(f"{BATCH}_count", backend="sqlite"), sample(f"{BATCH}_sum", backend="sqlite")
    transactions = sample(f"{TRANSACTIONS}_count", backend="sqlite", kind="write")
    start = threading.Barrier(40)

    def write(n: int) -> None:
        def job(conn):
            conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
            if n % 10 == 0:
                raise Conflict("rolled back alone, still a write of its batch")

        start.wait()
        try:
            db.write(job)
        except Conflict:
            pass

    threads = [threading.Thread(target=write, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    try:
        committed = sample(f"{BATCH}_count", backend="sqlite") - batches
        assert sample(f"{BATCH}_sum", backend="sqlite") - writes == 40  # every write, in some batch
        assert 1 <= committed <= 40
        assert sample(f"{TRANSACTIONS}_count", backend="sqlite", kind="write") - transactions == committed
    finally:
        db.close()


def test_a_batch_whose_commit_fails_is_timed_but_not_counted_as_committed(tmp_path: Path) -> None:
    db = Database(str(tmp_path / "broken.db"))
    try:
        batches = sample(f"{BATCH}_count", backend="sqlite")
        transactions = sample(f"{TRANSACTIONS}_count", backend="sqlite", kind="write")
        with pytest.raises(Exception):  # noqa: B017 - sqlite's own error type is what surfaces
            db.write(lambda conn: conn.execute("COMMIT"))  # ends the batch's transaction under it
        assert sample(f"{BATCH}_count", backend="sqlite") == batches
        assert sample(f"{TRANSACTIONS}_count", backend="sqlite", kind="write") == transactions + 1
    finally:
        db.close()


def test_a_metric_that_fails_to_record_never_keeps_a_write_waiting(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("the metrics directory is gone")

    db = Database(str(tmp_path / "wedge.db"))
    try:
        monkeypatch.setattr(metrics, "batch_committed", broken)
        answered: list[int] = []

        def writes() -> None:
            db.write(lambda conn: conn.execute("CREATE TABLE t (n INTEGER)"))
            answered.append(db.write(lambda conn: conn.execute("INSERT INTO t VALUES (1)").rowcount))

        writer = threading.Thread(target=writes, daemon=True)  # a wedged writer must fail the test, not hang it
        writer.start()
        writer.join(10)
        assert answered == [1]  # both answered: the writer lives on
        assert db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 1
    finally:
        db.close()


def test_the_size_is_the_file_and_its_write_ahead_log(tmp_path: Path) -> None:
    path = tmp_path / "sized.db"
    db = Database(str(path))
    try:
        db.write(lambda conn: conn.execute("CREATE TABLE t (s TEXT)"))
        db.write(lambda conn: conn.execute("INSERT INTO t VALUES (?)", ("x" * 100_000,)))
        wal = Path(f"{path}-wal")
        assert wal.exists() and wal.stat().st_size > 100_000  # the row is in the log, not yet in the file
        assert db.size_bytes() == path.stat().st_size + wal.stat().st_size
        path.unlink()
        wal.unlink()
        with pytest.raises(OSError):  # the metric's collector turns this into no figure, not a failed scrape
            db.size_bytes()
    finally:
        db.close()


GEVENT_SCRIPT = """
import gevent.monkey; gevent.monkey.patch_all()
import json, sys, gevent
from common import metrics
from common.errors import NotFound
from memory_service.store.sqlite.database import Database
from memory_service.store.sqlite import users
native = gevent.monkey.get_original("threading", "get_ident")
main_thread = native()
recorded, job_threads = [], set()
for name in ("transaction_finished", "batch_committed"):
    def spy(*args, _real=getattr(metrics, name), _name=name):
        recorded.append((_name, args[1] if _name == "transaction_finished" else "batch", native()))
        _real(*args)
    setattr(metrics, name, spy)
db = Database(sys.argv[1], pool_size=4)
def write(i):
    def fn(conn):
        job_threads.add(native())
        conn.execute("INSERT INTO users VALUES (?, ?, 'n', 'h', 'now')", (f"u{i}", f"u{i}@x.org"))
    return db.write(fn)
def read(_):
    def fn(conn):
        job_threads.add(native())
        return conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    return db.read(fn)
del recorded[:]  # the schema's writes at start
gevent.joinall([gevent.spawn(write, i) for i in range(10)] + [gevent.spawn(read, i) for i in range(10)],
               raise_error=True)
try:
    users.get_user(db, "missing")  # a lookup, on the calling greenlet
except NotFound:
    pass
kinds = sorted({kind for _, kind, _ in recorded})
print(json.dumps({"kinds": kinds, "reads": sum(kind == "read" for _, kind, _ in recorded),
                  "recorded_off_main": sum(thread != main_thread for _, _, thread in recorded),
                  "jobs_off_main": main_thread not in job_threads and len(job_threads) > 0}))
"""


def test_under_gevent_metrics_are_recorded_on_the_hub_thread_not_in_the_pool(tmp_path: Path) -> None:
    # prometheus-client's locks are gevent's patched ones in a worker; gevent advises against sharing those
    # with native threads, so the pool threads that run transactions must never record.
    out = subprocess.run([sys.executable, "-c", GEVENT_SCRIPT, str(tmp_path / "g.db")], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(out.stdout)
    assert report == {"kinds": ["batch", "read", "write"], "reads": 11, "recorded_off_main": 0,
                      "jobs_off_main": True}, out.stderr
