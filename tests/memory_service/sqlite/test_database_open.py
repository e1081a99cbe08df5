"""Opening one new database from several processes at once: a schema step that finds the file still locked
past the busy timeout (a loaded machine) is tried again rather than failing the start."""

from __future__ import annotations

import sqlite3

import pytest

from memory_service.store.sqlite import database
from memory_service.store.sqlite.database import Database


def test_a_step_that_finds_the_file_locked_is_tried_again():
    calls = []

    def step(conn: sqlite3.Connection) -> None:
        calls.append(conn)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")

    Database._opening(step)(None)  # type: ignore[arg-type]
    assert len(calls) == 3


def test_other_errors_and_a_lock_that_outlasts_the_wait_are_raised(monkeypatch):
    def broken(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("no such table: users")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        Database._opening(broken)(None)  # type: ignore[arg-type]

    monkeypatch.setattr(database, "OPEN_WAIT_SECONDS", 0.2)

    def locked(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        Database._opening(locked)(None)  # type: ignore[arg-type]
