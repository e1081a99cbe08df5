"""Users: registration, password authentication and lookup."""

from __future__ import annotations

import sqlite3
from functools import lru_cache
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from common.errors import Conflict, InvalidArguments, InvalidCredentials, NotFound
from memory_service.db import Database, IdempotencyKey, new_id, run_blocking, utc_now


def user_from_row(row: sqlite3.Row) -> dict[str, Any]:
    """The public shape of a user; the password hash never leaves this module."""
    return {"id": row["id"], "email": row["email"], "name": row["name"], "created_at": row["created_at"]}


def unknown(what: str = "user") -> NotFound:
    """The error for a user id that does not exist. `details.object` says whether it was the acting user,
    so a caller can tell "your account is gone" from "that conversation is gone" without reading prose."""
    return NotFound(f"{what} not found", {"object": what})


def require_user(conn: sqlite3.Connection, user_id: str, what: str = "user") -> sqlite3.Row:
    """The user's row, or NotFound when the acting user (or a named participant) does not exist."""
    row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise unknown(what)
    return row


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return generate_password_hash("not a real password")


def create_user(
    db: Database, email: str, name: str, password: str, *, idempotency: IdempotencyKey | None = None
) -> dict[str, Any]:
    """Register a user; the email is unique regardless of case."""
    email = email.strip()
    if not email or not password:
        raise InvalidArguments("email and password must not be empty")
    # Hashing is slow on purpose: do it off the hub and outside the write lock.
    password_hash = run_blocking(generate_password_hash, password)

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        if conn.execute("SELECT 1 FROM users WHERE email = ?", (email,)).fetchone() is not None:
            raise Conflict("email already registered")
        user_id = new_id()
        conn.execute(
            "INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
            (user_id, email, name, password_hash, utc_now()),
        )
        return {"user": user_from_row(require_user(conn, user_id))}

    return db.write(tx, idempotency=idempotency)


def authenticate_user(db: Database, email: str, password: str) -> dict[str, Any]:
    """The user whose email and password match, else InvalidCredentials with one message for both cases."""
    row = db.read(
        lambda conn: conn.execute("SELECT * FROM users WHERE email = ?", (email.strip(),)).fetchone()
    )
    # An unknown email still pays for a hash check, so response time does not reveal registered emails.
    stored = row["password_hash"] if row is not None else run_blocking(_decoy_hash)
    matches = run_blocking(check_password_hash, stored, password)
    if row is None or not matches:
        raise InvalidCredentials("email or password is wrong")
    return {"user": user_from_row(row)}


def get_user(db: Database, user_id: str) -> dict[str, Any]:
    """The user with this id, or NotFound."""
    return {"user": user_from_row(db.lookup(lambda conn: require_user(conn, user_id)))}
