"""Users' e-mails and passwords in Memory: normalised when stored, accounts from before normalisation
still sign in, and password hashing on bounded threads of its own."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from common.errors import InvalidCredentials, TooManyRequests
from memory_service import accounts
from memory_service.app import create_app
from memory_service.hashing import PasswordHashing
from memory_service.store.sqlite import SqliteStore, users
from memory_service.store.sqlite.database import Database
from memory_service.store.values import new_id, utc_now

REPO = Path(__file__).resolve().parents[3]


def fast_hash(password: str) -> str:
    return generate_password_hash(password, method="pbkdf2:sha256:1")


def insert_legacy_user(db: Database, email: str, password: str) -> str:
    """A row as the code before normalisation wrote it: email and password exactly as typed."""
    user_id = new_id()
    db.write(lambda conn: conn.execute(
        "INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        (user_id, email, "Legacy", fast_hash(password), utc_now())))
    return user_id


@pytest.fixture
def db(tmp_path: Path):
    database = Database(str(tmp_path / "users.db"))
    yield database
    database.close()


def test_accounts_stored_before_normalisation_still_sign_in(db):
    # NOCASE folds ASCII only, so "ÅSA@…" was unreachable as "åsa@…"; the password holds a ligature.
    asa = insert_legacy_user(db, "ÅSA@Example.com", "ﬁsh and chips")
    plain = insert_legacy_user(db, "Bo@Example.com", "correct horse")

    assert users.normalize_stored_emails(db) == 2
    assert users.normalize_stored_emails(db) == 0  # a second start has nothing to do

    store = SqliteStore(db.path)
    assert accounts.authenticate_user(store, "åsa@example.com", "ﬁsh and chips")["user"]["id"] == asa
    assert accounts.authenticate_user(store, "Åsa@Example.COM", "ﬁsh and chips")["user"]["id"] == asa
    assert accounts.authenticate_user(store, "bo@example.com", "correct horse")["user"]["id"] == plain
    with pytest.raises(InvalidCredentials):
        accounts.authenticate_user(store, "åsa@example.com", "wrong and chips")
    store.close()


def test_look_alike_legacy_accounts_keep_the_later_spelling_and_are_logged(db, caplog):
    first = insert_legacy_user(db, "zoë@example.com", "correct horse")
    second = insert_legacy_user(db, "ZOË@example.com", "another horse")

    with caplog.at_level(logging.WARNING):
        assert users.normalize_stored_emails(db) == 0

    assert second in caplog.text
    assert users.get_user(db, first)["user"]["email"] == "zoë@example.com"
    assert users.get_user(db, second)["user"]["email"] == "ZOË@example.com"
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the next start scans nothing and logs nothing again
        assert users.normalize_stored_emails(db) == 0
    assert second not in caplog.text


def test_memory_normalises_stored_emails_when_it_starts(tmp_path):
    path = tmp_path / "start.db"
    legacy = Database(str(path))
    user_id = insert_legacy_user(legacy, "ÉMILE@example.com", "correct horse")
    legacy.close()

    create_app({"DATABASE_URL": f"sqlite:///{path}", "SERVICE_TOKEN": ""})

    reopened = Database(str(path))
    assert users.get_user(reopened, user_id)["user"]["email"] == "émile@example.com"
    reopened.close()


def test_new_passwords_are_hashed_after_nfkc(store, monkeypatch):
    monkeypatch.setattr(accounts, "generate_password_hash", fast_hash)
    accounts.create_user(store, "Max@Example.com", "Max", "ﬁsh and chips")

    assert accounts.authenticate_user(store, "max@example.com", "fish and chips")["user"]["email"] == "max@example.com"


def test_a_full_hashing_queue_answers_at_once_and_recovers():
    hashing = PasswordHashing(threads=1, queue=1)
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow_hash() -> str:
        entered.release()
        release.wait(10)
        return "hash"

    holders = [threading.Thread(target=hashing.run, args=(slow_hash,)) for _ in range(2)]
    for holder in holders:
        holder.start()
    for _ in range(2):  # without gevent each caller hashes on its own thread; both are admitted
        assert entered.acquire(timeout=5)

    started = time.monotonic()
    with pytest.raises(TooManyRequests) as refused:
        hashing.run(slow_hash)
    assert time.monotonic() - started < 0.5
    assert refused.value.retry_after == 1 and refused.value.details["reason"] == "busy"

    release.set()
    for holder in holders:
        holder.join(5)
    assert hashing.run(lambda: "free again") == "free again"


@pytest.mark.parametrize(("threads", "queue"), [(0, 1), (1, -1)])
def test_hashing_needs_a_thread(threads, queue):
    with pytest.raises(ValueError):
        PasswordHashing(threads, queue)


GEVENT_FLOOD = """
import gevent.monkey; gevent.monkey.patch_all()
import json, sys, time, gevent
from common.errors import TooManyRequests
from memory_service.store.sqlite.database import Database
from memory_service.hashing import PasswordHashing
sleep = gevent.monkey.get_original("time", "sleep")
db = Database(sys.argv[1], pool_size=4)
hashing = PasswordHashing(threads=2, queue=4)
outcomes = []
def login():
    try:
        outcomes.append(hashing.run(sleep, 0.5) or "hashed")
    except TooManyRequests:
        outcomes.append("busy")
flood = [gevent.spawn(login) for _ in range(64)]
gevent.sleep(0.05)
started = time.monotonic()
reads = [db.read(lambda conn: conn.execute("SELECT 1").fetchone()[0]) for _ in range(20)]
read_seconds = time.monotonic() - started
gevent.joinall(flood)
print(json.dumps({"hashed": outcomes.count("hashed"), "busy": outcomes.count("busy"),
                  "reads": sum(reads), "reads_fast": read_seconds < 0.4}))
"""


def test_under_gevent_a_hashing_flood_leaves_the_database_threadpool_free(tmp_path: Path) -> None:
    # 64 logins at once, each hashing for 0.5 s on 2 threads: on the shared threadpool (the old code)
    # the 20 reads would queue behind them for seconds.
    out = subprocess.run([sys.executable, "-c", GEVENT_FLOOD, str(tmp_path / "g.db")], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == {"hashed": 6, "busy": 58, "reads": 20, "reads_fast": True}
