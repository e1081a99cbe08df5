"""Context, search and analysis for the calling user, served by the Cognition Service."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, Response, g, jsonify

from common.server import parse_arguments, read_json_object
from core_app.access import current_user
from core_app.limits import search_slots
from core_app.responses import Body
from core_app.schemas import AnalyzeIn, ContextIn, SearchIn
from core_app.services import services

bp = Blueprint("cognition", __name__, url_prefix="/v1")

B = TypeVar("B", bound=Body)


@bp.before_request
def _authenticate() -> None:
    current_user()


def _costly(run: Callable[[], B]) -> B:
    # Their cost grows with the whole database, not the caller's data: a few at once per user.
    with search_slots().hold(g.user.user_id):
        return run()


@bp.post("/context")
def context() -> Response:
    body = parse_arguments(ContextIn, read_json_object())
    return jsonify(_costly(lambda: services().cognition.get_context(
        g.user.user_id, body.query, body.conversation_id, body.limit)).body())


@bp.post("/search")
def search() -> Response:
    body = parse_arguments(SearchIn, read_json_object())
    return jsonify(_costly(lambda: services().cognition.search_history(
        g.user.user_id, body.query, body.limit, body.include_conversations)).body())


@bp.post("/analyze")
def analyze() -> Response:
    body = parse_arguments(AnalyzeIn, read_json_object())
    return jsonify(_costly(lambda: services().cognition.analyze(
        g.user.user_id, body.conversation_id, body.analysis_type)).body())
