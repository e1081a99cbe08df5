"""The Cognition Service's tool table (SPEC §5): argument models (the schema callers see) bound to the
retrieval and analysis functions."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from cognition_service import context
from cognition_service.analysis import AnalysisType, Analyst
from cognition_service.context import Retriever
from common.models import MAX_MESSAGE_CHARS, Arguments, Id, Limit
from common.server import Tool

# As long as Memory's search accepts, so a whole message can be the query.
Query = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_MESSAGE_CHARS)]
# A blank query means "no query": the resource's `?query=` arrives as "" when the caller leaves it empty.
OptionalQuery = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_MESSAGE_CHARS)] | None,
    AfterValidator(lambda value: value or None),
]
# 200 × the candidate factor of 5 is Memory's largest search page, so every limit gets re-ranking room.
ContextLimit = Annotated[int, Field(ge=1, le=200)]


class GetContext(Arguments):
    user_id: Id
    query: OptionalQuery = Field(None, description="rank by relevance to this text; omit for the newest")
    conversation_id: Id | None = Field(None, description="only this conversation's messages")
    limit: ContextLimit = 10


class SearchHistory(Arguments):
    user_id: Id
    query: Query
    limit: Limit = 10
    include_conversations: bool = Field(True, description="add each hit's conversation topic")


class AnalyzeConversation(Arguments):
    user_id: Id
    conversation_id: Id
    analysis_type: AnalysisType


def build_tools(retriever: Retriever, analyst: Analyst) -> list[Tool]:
    """Bind every tool of SPEC §5 to `retriever` (analyses through `analyst`)."""
    return [
        Tool("get_context", "The user's messages most relevant to a query (words and meaning, with the turns "
             "next to them, blended with recency), or their newest messages; each with a score.", GetContext,
             lambda a, ctx: retriever.get_context(a.user_id, a.query, a.conversation_id, a.limit)),
        Tool("search_history", "Ranked full-text search over the user's messages, with conversation topics.",
             SearchHistory,
             lambda a, ctx: context.search_history(retriever.memory, a.user_id, a.query, a.limit,
                                                  a.include_conversations)),
        Tool("analyze_conversation", "Summary, topics, sentiment or activity of a conversation the user may "
             "read.", AnalyzeConversation,
             lambda a, ctx: analyst.analyze(a.user_id, a.conversation_id, a.analysis_type)),
    ]
