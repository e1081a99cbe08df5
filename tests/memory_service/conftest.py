from __future__ import annotations

from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from memory_service import users
from memory_service.db import Database


@pytest.fixture
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real password hashing costs ~0.1 s per user; one PBKDF2 round keeps tests that make users fast."""
    monkeypatch.setattr(users, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1"))


@pytest.fixture
def db(tmp_path: Path, fast_hashing: None):
    database = Database(str(tmp_path / "memory.db"))
    yield database
    database.close()
