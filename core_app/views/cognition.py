"""Context, search and analysis for the calling user, served by the Cognition Service."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from common.protocol import parse_arguments, read_json_object
from core_app.access import call, current_user
from core_app.schemas import AnalyzeIn, ContextIn, SearchIn

bp = Blueprint("cognition", __name__, url_prefix="/v1")


@bp.before_request
def _authenticate() -> None:
    current_user()


@bp.post("/context")
def context() -> Response:
    body = parse_arguments(ContextIn, read_json_object())
    return jsonify(call("cognition", "get_context", "conversation", **body.model_dump(exclude_none=True)))


@bp.post("/search")
def search() -> Response:
    body = parse_arguments(SearchIn, read_json_object())
    return jsonify(call("cognition", "search_history", "conversation", **body.model_dump()))


@bp.post("/analyze")
def analyze() -> Response:
    body = parse_arguments(AnalyzeIn, read_json_object())
    return jsonify(call("cognition", "analyze_conversation", "conversation", **body.model_dump()))
