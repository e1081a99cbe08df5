"""The Memory Service's streamed resources (SPEC §4): history, conversation and message."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import Field

from common.models import Arguments, Id
from common.server import Resource
from memory_service.store import Store


class HistoryParams(Arguments):
    user_id: Id


class HistoryLimitParams(HistoryParams):
    n: Annotated[int, Field(ge=1, le=10_000)]


class ConversationParams(Arguments):
    conversation_id: Id
    user_id: Id


class MessageParams(Arguments):
    message_id: Id
    user_id: Id


def build_resources(store: Store) -> list[Resource]:
    def one_message(params: MessageParams) -> Iterable[dict]:
        return [store.get_message(params.user_id, params.message_id)["message"]]

    return [
        Resource("history/{user_id}", "The user's messages, newest first.", HistoryParams,
                 lambda p, ctx: store.iter_history(p.user_id)),
        Resource("history/{user_id}/limit/{n}", "The user's newest n messages (1-10000), newest first.",
                 HistoryLimitParams, lambda p, ctx: store.iter_history(p.user_id, limit=p.n)),
        Resource("conversation/{conversation_id}", "A conversation's messages in order (?user_id=).",
                 ConversationParams, lambda p, ctx: store.iter_conversation(p.user_id, p.conversation_id)),
        Resource("message/{message_id}", "One message (?user_id=).", MessageParams,
                 lambda p, ctx: one_message(p)),
    ]
