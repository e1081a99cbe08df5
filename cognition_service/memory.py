"""Cognition's view of the Memory Service: the only module that knows Memory's tool and resource names.

Every read goes through the `common` client, so Memory's errors (403 forbidden, 404 not_found, 503
unavailable when the circuit is open) reach the caller with their code unchanged.
"""

from __future__ import annotations

from typing import Any

from common.client import ServiceClient


class MemoryReader:
    """Typed reads of users' messages and conversations from the Memory Service."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    def search(self, user_id: str, query: str, *, limit: int, conversation_id: str | None = None,
               stems: bool = False) -> list[dict[str, Any]]:
        """Full-text hits over every message the user may read, best first, each with a `score`; with
        `stems`, each word also matches the other words of its stem."""
        arguments: dict[str, Any] = {"user_id": user_id, "query": query, "limit": limit}
        if conversation_id is not None:
            arguments["conversation_id"] = conversation_id
        if stems:
            arguments["match"] = "stems"
        return list(self.client.call_tool("search_messages", arguments)["results"])

    def similar(self, user_id: str, model: str, vector: list[float], *, limit: int,
                conversation_id: str | None = None) -> list[dict[str, Any]]:
        """The messages the user may read nearest `vector` among `model`'s, best first, `score` the cosine."""
        arguments: dict[str, Any] = {"user_id": user_id, "model": model, "vector": vector, "limit": limit}
        if conversation_id is not None:
            arguments["conversation_id"] = conversation_id
        return list(self.client.call_tool("search_similar", arguments)["results"])

    def around(self, user_id: str, message_ids: list[str], distance: int) -> list[dict[str, Any]]:
        """The messages up to `distance` places before and after each given one, in its conversation."""
        return list(self.client.call_tool("messages_around", {
            "user_id": user_id, "message_ids": message_ids, "distance": distance})["messages"])

    def newest(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        """The user's `limit` newest messages across their conversations, newest first."""
        return list(self.client.read_resource(f"history/{user_id}/limit/{limit}"))

    def latest_in_conversation(self, user_id: str, conversation_id: str, limit: int) -> list[dict[str, Any]]:
        """The conversation's `limit` latest messages, newest first."""
        return self.latest_page(user_id, conversation_id, limit)[0]

    def latest_page(self, user_id: str, conversation_id: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` latest messages, newest first, and whether older ones were left out (Memory also
        ends a page early when it reaches its size in bytes)."""
        page = self.client.call_tool("list_messages", {
            "user_id": user_id, "conversation_id": conversation_id, "limit": limit, "latest": True})
        return list(reversed(page["messages"])), bool(page.get("has_more", False))

    def conversation(self, user_id: str, conversation_id: str) -> dict[str, Any]:
        """The conversation object (topic, participants, ...) if the user may read it."""
        return self.client.call_tool("get_conversation", {
            "user_id": user_id, "conversation_id": conversation_id})["conversation"]

    def messages(self, user_id: str, conversation_id: str) -> list[dict[str, Any]]:
        """Every message of the conversation in order; access is checked before the stream starts."""
        return list(self.client.read_resource(f"conversation/{conversation_id}", {"user_id": user_id}))
