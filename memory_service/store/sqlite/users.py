"""Users in SQLite: stored with their password hash (hashed and checked by memory_service/accounts.py),
looked up by id or normalised email, and the one-time email normalisation of older databases."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from common.credentials import normalize_email
from common.errors import Conflict, NotFound
from memory_service.store.idempotency import IdempotencyKey
from memory_service.store.sqlite.database import Database
from memory_service.store.values import new_id, utc_now

log = logging.getLogger(__name__)


def user_from_row(row: sqlite3.Row) -> dict[str, Any]:
    """The public shape of a user; the password hash is left out."""
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


def create_user(
    db: Database, email: str, name: str, password_hash: str, *, idempotency: IdempotencyKey | None = None,
) -> dict[str, Any]:
    """Store a user under an email the caller has normalised; Conflict if it is taken."""

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


def find_login(db: Database, email: str) -> tuple[dict[str, Any], str] | None:
    """The public user and stored password hash for a normalised email, or None."""
    row = db.read(lambda conn: conn.execute("SELECT * FROM users WHERE email = ?", (email,)).fetchone())
    return None if row is None else (user_from_row(row), row["password_hash"])


EMAILS_MIGRATION = "emails-normalized"


def normalize_stored_emails(db: Database) -> int:
    """Rewrite emails stored before normalisation in their normalised spelling, so their owners log in
    as before; an address whose normalised spelling another account already has is left as it is and
    logged. Returns how many were rewritten. Runs once per database (recorded in `schema_migrations`):
    every address stored since is normalised as it is written."""

    def tx(conn: sqlite3.Connection) -> int:
        if conn.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (EMAILS_MIGRATION,)).fetchone():
            return 0
        conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                     (EMAILS_MIGRATION, utc_now()))
        changed = 0
        for row in conn.execute("SELECT id, email FROM users").fetchall():
            normalized = normalize_email(row["email"])
            if normalized == row["email"]:
                continue
            taken = conn.execute("SELECT 1 FROM users WHERE email = ? AND id != ?",
                                 (normalized, row["id"])).fetchone()
            if taken is not None:
                log.warning("user %s keeps email %r: its normalised spelling belongs to another account",
                            row["id"], row["email"])
                continue
            conn.execute("UPDATE users SET email = ? WHERE id = ?", (normalized, row["id"]))
            changed += 1
        return changed

    return db.write(tx)


def get_user(db: Database, user_id: str) -> dict[str, Any]:
    """The user with this id, or NotFound."""
    return {"user": user_from_row(db.lookup(lambda conn: require_user(conn, user_id)))}
