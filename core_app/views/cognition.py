"""Context, search and analysis for the calling user, served by the Cognition Service."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify

from common.protocol import parse_arguments, read_json_object
from core_app.access import call, current_user
from core_app.limits import search_slots
from core_app.schemas import AnalyzeIn, ContextIn, SearchIn

bp = Blueprint("cognition", __name__, url_prefix="/v1")


@bp.before_request
def _authenticate() -> None:
    current_user()


def _costly(tool: str, **arguments: Any) -> Any:
    # Their cost grows with the whole database, not the caller's data: a few at once per user.
    with search_slots().hold(g.user.user_id):
        return call("cognition", tool, "conversation", **arguments)


@bp.post("/context")
def context() -> Response:
    body = parse_arguments(ContextIn, read_json_object())
    return jsonify(_costly("get_context", **body.model_dump(exclude_none=True)))


@bp.post("/search")
def search() -> Response:
    body = parse_arguments(SearchIn, read_json_object())
    return jsonify(_costly("search_history", **body.model_dump()))


@bp.post("/analyze")
def analyze() -> Response:
    body = parse_arguments(AnalyzeIn, read_json_object())
    return jsonify(_costly("analyze_conversation", **body.model_dump()))
