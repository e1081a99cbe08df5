"""A stand-in for the Memory Service on a `responses` mock, and messages shaped like Memory's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import requests
import responses

from common.sse import finite_stream

MEMORY = "http://memory.test"
BASE_CONFIG = {
    "HEALTH_INTERVAL_SECONDS": "0",  # no background monitor; tests probe by hand when they need to
    "EMBEDDINGS": "off",  # no embedding worker or dense half; test_context.py gives a Retriever a fake embedder
    "MEMORY_SERVICE_URL": MEMORY,
    "CLIENT_RETRIES": "0",  # a retry would only repeat the same canned answer
    "SERVICE_TOKEN": "",
}
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def message(n: int, content: str, *, role: str = "user", sender: str = "u1", conversation: str = "c1",
            age: timedelta = timedelta(0), score: float | None = None) -> dict:
    """A message as Memory returns it; `age` is how long before NOW it was stored."""
    found = {"id": f"m{n}", "conversation_id": conversation, "sender_id": sender, "role": role,
             "content": content, "metadata": {}, "sequence": n, "created_at": (NOW - age).isoformat()}
    return found if score is None else {**found, "score": score}


def error_body(code: str, message: str = "from memory") -> dict:
    return {"error": {"code": code, "message": message, "details": {}}}


class FakeMemory:
    """Canned Memory answers registered on a `responses` mock, plus what Cognition sent."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock

    def tool(self, name: str, result: dict | None = None, *, status: int = 200, code: str | None = None) -> None:
        body = error_body(code or "error") if status >= 400 else {"result": result}
        self.mock.post(f"{MEMORY}/tool/{name}", json=body, status=status)

    def resource(self, path: str, items: list[dict] | None = None, *, status: int = 200,
                 code: str | None = None) -> None:
        url = f"{MEMORY}/resource/{path}"
        if status >= 400:
            self.mock.get(url, json=error_body(code or "error"), status=status)
        else:
            self.mock.get(url, body=b"".join(finite_stream(items or [])), content_type="text/event-stream")

    def health(self, up: bool = True) -> None:
        if up:
            self.mock.get(f"{MEMORY}/health", json={"status": "healthy", "service": "memory"})
        else:
            self.mock.get(f"{MEMORY}/health", body=requests.ConnectionError("connection refused"))

    def sent(self, tool: str) -> list[dict]:
        """The arguments of every call Cognition made to `tool`."""
        return [json.loads(call.request.body)["arguments"] for call in self.mock.calls
                if call.request.method == "POST" and call.request.url == f"{MEMORY}/tool/{tool}"]

    def requests_to(self, path: str) -> list:
        return [call.request for call in self.mock.calls if call.request.url.startswith(f"{MEMORY}/{path}")]

