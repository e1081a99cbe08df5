"""Users as a client makes them: sign up, log in, and carry the bearer token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flask.testing import FlaskClient

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_email(name: str) -> str:
    return f"{name.lower()}-{uuid.uuid4().hex[:10]}@example.com"


def sign_up(client: FlaskClient, name: str) -> Account:
    """Register a new user and log in as them, as a client would."""
    email = unique_email(name)
    registered = client.post("/v1/auth/register", json={"email": email, "name": name, "password": PASSWORD})
    assert registered.status_code == 201, registered.get_json()
    login = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.get_json()
    return Account(registered.get_json()["user"]["id"], email, name, login.get_json()["access_token"])
