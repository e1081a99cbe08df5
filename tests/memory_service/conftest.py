from __future__ import annotations

import pytest
from werkzeug.security import generate_password_hash

from memory_service import accounts


@pytest.fixture
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real password hashing costs ~0.1 s per user; one PBKDF2 round keeps tests that make users fast."""
    monkeypatch.setattr(accounts, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1"))
