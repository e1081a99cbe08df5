"""Core's view of the Cognition Service: the only module in Core that knows Cognition's tool names.
Cognition validates its own arguments (the analysis types among them), so a new analysis needs no
change here."""

from __future__ import annotations

from typing import Any

from core_app.facade import Facade
from core_app.responses import Analysis, Context, SearchResults


class Cognition(Facade):
    """Typed calls to the Cognition Service; another user's conversation is reported as missing (404)."""

    def get_context(self, user_id: str, query: str | None = None, conversation_id: str | None = None,
                    limit: int = 10) -> Context:
        """The user's messages most relevant to `query` (blended with recency), or their newest ones."""
        arguments: dict[str, Any] = {"limit": limit}
        if query is not None:
            arguments["query"] = query
        if conversation_id is not None:
            arguments["conversation_id"] = conversation_id
        return Context.model_validate(self._for_user("get_context", user_id, "conversation", **arguments))

    def search_history(self, user_id: str, query: str, limit: int, include_conversations: bool) -> SearchResults:
        """Ranked full-text search over the messages the user may read."""
        return SearchResults.model_validate(self._for_user(
            "search_history", user_id, "conversation", query=query, limit=limit,
            include_conversations=include_conversations))

    def analyze(self, user_id: str, conversation_id: str, analysis_type: str) -> Analysis:
        """An analysis of a conversation the user may read; an unknown `analysis_type` is Cognition's 400."""
        return Analysis.model_validate(self._for_user(
            "analyze_conversation", user_id, "conversation", conversation_id=conversation_id,
            analysis_type=analysis_type))

    def context_for_reply(self, user_id: str, query: str, limit: int) -> list[dict[str, Any]]:
        """Context items for a reply, as Cognition sends them; its errors unchanged."""
        found = self.client.call_tool("get_context", {"user_id": user_id, "query": query, "limit": limit})
        return list(found.get("context", []))
