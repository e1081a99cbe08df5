"""Accounts, above the store: emails normalised, passwords hashed and checked here, on threads of their own.

The store keeps and returns hashes and never sees a password, so every backend stores the same hashes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from common.credentials import normalize_email, normalize_password
from common.errors import InvalidArguments, InvalidCredentials
from memory_service.hashing import PasswordHashing
from memory_service.store import IdempotencyKey, Store


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return generate_password_hash("not a real password")


@lru_cache(maxsize=1)
def default_hashing() -> PasswordHashing:
    """The hashing threads of callers that bring none (tests, scripts); the app builds its own from config."""
    return PasswordHashing()


def create_user(
    store: Store, email: str, name: str, password: str, *, idempotency: IdempotencyKey | None = None,
    hashing: PasswordHashing | None = None,
) -> dict[str, Any]:
    """Register a user; the email is stored normalised (NFKC, case-folded), so it is unique in any
    spelling, and the password is hashed after NFKC."""
    email = normalize_email(email)
    if not email or not password:
        raise InvalidArguments("email and password must not be empty")
    # Hashing is slow on purpose: do it off the hub, on threads of its own, and outside the write lock.
    password_hash = (hashing or default_hashing()).run(generate_password_hash, normalize_password(password))
    return store.create_user(email, name, password_hash, idempotency=idempotency)


def _password_matches(stored: str | None, password: str) -> bool:
    stored = stored or _decoy_hash()
    normalized = normalize_password(password)
    if check_password_hash(stored, normalized):
        return True
    # Hashes made before passwords were normalised hold the password exactly as it was typed.
    return normalized != password and check_password_hash(stored, password)


def authenticate_user(store: Store, email: str, password: str, *,
                      hashing: PasswordHashing | None = None) -> dict[str, Any]:
    """The user whose email and password match, else InvalidCredentials with one message for both cases."""
    found = store.find_login(normalize_email(email))
    # An unknown email still pays for a hash check, so response time does not reveal registered emails.
    matches = (hashing or default_hashing()).run(_password_matches, found[1] if found else None, password)
    if found is None or not matches:
        raise InvalidCredentials("email or password is wrong")
    return {"user": found[0]}
