"""Calling the client API (SPEC §6) through the Flask test client: workspaces, conversations, messages,
the reply to a message, and the §3.1 error shape every refusal must have."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.core_app.accounts import Account
from tests.core_app.polling import eventually


def new_workspace(client: FlaskClient, owner: Account, name: str = "Garden") -> dict:
    response = client.post("/v1/workspace", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["workspace"]


def new_conversation(client: FlaskClient, owner: Account, workspace_id: str | None = None, *,
                     participants: tuple[Account, ...] = (), topic: str = "Tomatoes") -> dict:
    """A new conversation of `owner`; each of `participants` is invited and accepts."""
    if workspace_id is None:
        workspace_id = new_workspace(client, owner)["id"]
    response = client.post("/v1/conversation", headers=owner.headers, json={
        "workspace_id": workspace_id, "topic": topic, "participant_ids": [p.id for p in participants]})
    assert response.status_code == 201, response.get_json()
    conversation = response.get_json()["conversation"]
    for participant, invitation in zip(participants, response.get_json()["invitations"], strict=True):
        accepted = client.post(f"/v1/invitations/{invitation['id']}/accept", headers=participant.headers)
        assert accepted.status_code == 200, accepted.get_json()
        conversation = accepted.get_json()["conversation"]
    return conversation


def post_message(client: FlaskClient, author: Account, conversation_id: str, content: str,
                 headers: dict[str, str] | None = None) -> dict:
    response = client.post(f"/v1/conversation/{conversation_id}/messages", json={"content": content},
                           headers={**author.headers, **(headers or {})})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["message"]


def history(client: FlaskClient, reader: Account, conversation_id: str) -> list[dict]:
    response = client.get(f"/v1/conversation/{conversation_id}/messages", headers=reader.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["messages"]


def wait_for_reply(client: FlaskClient, reader: Account, conversation_id: str, to: dict) -> list[dict]:
    """The conversation's history once the assistant's reply to message `to` has been stored."""
    def replied() -> list[dict] | None:
        messages = history(client, reader, conversation_id)
        done = any(m["role"] == "assistant" and m["metadata"].get("in_reply_to") == to["id"] for m in messages)
        return messages if done else None

    return eventually(replied, what=f"the reply to message {to['id']}")


def assert_error(response: Any, status: int, code: str) -> dict:
    """The response is `status` with exactly the §3.1 error shape and `code`; returns the error object."""
    body = response.get_json()
    assert response.status_code == status, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    return error
