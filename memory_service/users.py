"""Users: registration, password authentication and lookup."""

from __future__ import annotations

import logging
import sqlite3
from functools import lru_cache
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from common.credentials import normalize_email, normalize_password
from common.errors import Conflict, InvalidArguments, InvalidCredentials, NotFound
from memory_service.db import Database, IdempotencyKey, new_id, utc_now
from memory_service.hashing import PasswordHashing

log = logging.getLogger(__name__)


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


@lru_cache(maxsize=1)
def default_hashing() -> PasswordHashing:
    """The hashing threads of callers that bring none (tests, scripts); the app builds its own from config."""
    return PasswordHashing()


def create_user(
    db: Database, email: str, name: str, password: str, *, idempotency: IdempotencyKey | None = None,
    hashing: PasswordHashing | None = None,
) -> dict[str, Any]:
    """Register a user; the email is stored normalised (NFKC, case-folded), so it is unique in any
    spelling, and the password is hashed after NFKC."""
    email = normalize_email(email)
    if not email or not password:
        raise InvalidArguments("email and password must not be empty")
    # Hashing is slow on purpose: do it off the hub, on threads of its own, and outside the write lock.
    password_hash = (hashing or default_hashing()).run(generate_password_hash, normalize_password(password))

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


def _password_matches(stored: str | None, password: str) -> bool:
    stored = stored or _decoy_hash()
    normalized = normalize_password(password)
    if check_password_hash(stored, normalized):
        return True
    # Hashes made before passwords were normalised hold the password exactly as it was typed.
    return normalized != password and check_password_hash(stored, password)


def authenticate_user(db: Database, email: str, password: str, *,
                      hashing: PasswordHashing | None = None) -> dict[str, Any]:
    """The user whose email and password match, else InvalidCredentials with one message for both cases."""
    row = db.read(
        lambda conn: conn.execute("SELECT * FROM users WHERE email = ?", (normalize_email(email),)).fetchone()
    )
    # An unknown email still pays for a hash check, so response time does not reveal registered emails.
    stored = row["password_hash"] if row is not None else None
    matches = (hashing or default_hashing()).run(_password_matches, stored, password)
    if row is None or not matches:
        raise InvalidCredentials("email or password is wrong")
    return {"user": user_from_row(row)}


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
