"""The Cognition Service's streamed resources (SPEC §5): context items and a conversation analysis."""

from __future__ import annotations

from collections.abc import Iterable

from cognition_service.analysis import AnalysisType, Analyst
from cognition_service.context import Retriever
from cognition_service.tools import ContextLimit, OptionalQuery
from common.models import Arguments, Id
from common.server import Resource


class ContextParams(Arguments):
    user_id: Id
    query: OptionalQuery = None
    conversation_id: Id | None = None
    limit: ContextLimit = 10


class AnalysisParams(Arguments):
    conversation_id: Id
    type: AnalysisType
    user_id: Id


def build_resources(retriever: Retriever, analyst: Analyst) -> list[Resource]:
    # Both compute their items before returning, so Memory's refusals (403/404/503) are ordinary JSON
    # errors rather than in-band stream errors.
    def context_items(params: ContextParams) -> Iterable[dict]:
        return retriever.get_context(params.user_id, params.query, params.conversation_id,
                                     params.limit)["context"]

    def one_analysis(params: AnalysisParams) -> Iterable[dict]:
        return [analyst.analyze(params.user_id, params.conversation_id, params.type)]

    return [
        Resource("context/{user_id}", "Context items for ?query= (newest messages without one), ?limit= 1-200.",
                 ContextParams, lambda p, ctx: context_items(p)),
        Resource("conversation_analysis/{conversation_id}/{type}",
                 "One item: the summary, topics, sentiment or activity analysis (?user_id=).",
                 AnalysisParams, lambda p, ctx: one_analysis(p)),
    ]
