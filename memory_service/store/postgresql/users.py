"""Users in PostgreSQL: stored with their password hash, looked up by id or normalised email."""

from __future__ import annotations

from typing import Any

import psycopg

from common.errors import Conflict, NotFound
from memory_service.store.idempotency import IdempotencyKey
from memory_service.store.postgresql.database import Connection, Database, one
from memory_service.store.values import new_id, utc_now


def user_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a user; the password hash is left out."""
    return {"id": row["id"], "email": row["email"], "name": row["name"], "created_at": row["created_at"]}


def unknown(what: str = "user") -> NotFound:
    """The error for a user id that does not exist, `details.object` naming which (as on SQLite)."""
    return NotFound(f"{what} not found", {"object": what})


def require_user(conn: Connection, user_id: str, what: str = "user") -> dict[str, Any]:
    """The user's row, or NotFound when the acting user (or a named participant) does not exist."""
    row = conn.execute("SELECT * FROM users WHERE id = %s", (user_id,)).fetchone()
    if row is None:
        raise unknown(what)
    return row


def create_user(db: Database, email: str, name: str, password_hash: str, *,
                idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
    """Store a user under an email the caller has normalised; Conflict if it is taken (also when another
    process takes it at the same moment: the unique index decides)."""

    def tx(conn: Connection) -> dict[str, Any]:
        if conn.execute("SELECT 1 FROM users WHERE lower(email) = lower(%s)", (email,)).fetchone() is not None:
            raise Conflict("email already registered")
        user_id = new_id()
        try:
            with conn.transaction():  # a savepoint, so the key's row survives a lost race
                row = one(conn.execute(
                    "INSERT INTO users (id, email, name, password_hash, created_at) VALUES (%s, %s, %s, %s, %s)"
                    " RETURNING *", (user_id, email, name, password_hash, utc_now())))
        except psycopg.errors.UniqueViolation:
            raise Conflict("email already registered") from None
        return {"user": user_from_row(row)}

    return db.write(tx, idempotency=idempotency)


def find_login(db: Database, email: str) -> tuple[dict[str, Any], str] | None:
    """The public user and stored password hash for a normalised email, or None."""
    row = db.read(lambda conn: conn.execute("SELECT * FROM users WHERE lower(email) = lower(%s)",
                                            (email,)).fetchone())
    return None if row is None else (user_from_row(row), row["password_hash"])


def get_user(db: Database, user_id: str) -> dict[str, Any]:
    """The user with this id, or NotFound."""
    return {"user": user_from_row(db.lookup(lambda conn: require_user(conn, user_id)))}
