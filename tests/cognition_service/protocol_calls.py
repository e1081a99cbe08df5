"""Calling Cognition through the Flask test client and checking answers against SPEC §3."""

from __future__ import annotations

import json


def call(client, tool: str, **arguments):
    return client.post(f"/tool/{tool}", json={"arguments": arguments})


def result(client, tool: str, **arguments) -> dict:
    response = call(client, tool, **arguments)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["result"]


def assert_error(response, status: int, code: str) -> dict:
    """Check the SPEC §3.1 error shape and return the error object."""
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.json["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    assert "Traceback" not in response.get_data(as_text=True)
    return error


def sse_events(response) -> list[tuple[str, dict]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/event-stream"
    events = []
    for block in response.get_data(as_text=True).strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events
