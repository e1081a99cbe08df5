"""A signed-in user of the Core App, for system tests that drive it over HTTP."""

from __future__ import annotations

import requests


class Api:
    """A signed-in user of the Core App."""

    def __init__(self, base: str, email: str, password: str = "password-123", name: str = "Tester") -> None:
        self.base = base
        registered = requests.post(f"{base}/v1/auth/register", json={"email": email, "name": name,
                                                                     "password": password}, timeout=10)
        assert registered.status_code == 201, registered.text
        login = requests.post(f"{base}/v1/auth/login", json={"email": email, "password": password}, timeout=10)
        assert login.status_code == 200, login.text
        self.token = login.json()["access_token"]
        self.user = login.json()["user"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 15)
        return requests.request(method, f"{self.base}{path}", headers={**self.headers, **kwargs.pop("headers", {})},
                                **kwargs)

    def conversation(self, topic: str = "Talk") -> str:
        ws = self.request("POST", "/v1/workspace", json={"name": "Space"}).json()["workspace"]
        conv = self.request("POST", "/v1/conversation", json={"workspace_id": ws["id"], "topic": topic})
        assert conv.status_code == 201, conv.text
        return conv.json()["conversation"]["id"]

    def stream_url(self, conversation_id: str) -> str:
        return f"{self.base}/v1/conversation/{conversation_id}/messages/stream"

    def on(self, base: str) -> Api:
        """The same signed-in user talking to another Core process (same token, no new sign-in)."""
        other = Api.__new__(Api)
        other.base, other.token, other.user = base, self.token, self.user
        return other
