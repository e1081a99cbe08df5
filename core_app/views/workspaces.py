"""Workspaces: create, list (paginated), read, update, delete."""

from __future__ import annotations

from typing import TypeVar

from flask import Blueprint, Response, g, jsonify, request
from pydantic import BaseModel

from common.server import parse_arguments, read_json_object
from core_app.access import current_user
from core_app.schemas import Page, WorkspaceIn, WorkspaceUpdate
from core_app.services import services

bp = Blueprint("workspaces", __name__, url_prefix="/v1")

M = TypeVar("M", bound=BaseModel)


@bp.before_request
def _authenticate() -> None:
    current_user()


def query_args(model: type[M]) -> M:
    """The query string, validated by `model`."""
    return parse_arguments(model, request.args.to_dict())


def json_body(model: type[M]) -> M:
    """The JSON body, validated by `model`."""
    return parse_arguments(model, read_json_object())


@bp.post("/workspace")
def create_workspace() -> tuple[Response, int]:
    body = json_body(WorkspaceIn)
    created = services().memory.create_workspace(g.user.user_id, body.name, body.description, body.metadata)
    return jsonify(created.body()), 201


@bp.get("/workspace")
def list_workspaces() -> Response:
    page = query_args(Page)
    return jsonify(services().memory.list_workspaces(g.user.user_id, page.limit, page.offset).body())


@bp.get("/workspace/<id:workspace_id>")
def get_workspace(workspace_id: str) -> Response:
    return jsonify(services().memory.get_workspace(g.user.user_id, workspace_id).body())


@bp.put("/workspace/<id:workspace_id>")
def update_workspace(workspace_id: str) -> Response:
    body = json_body(WorkspaceUpdate)
    return jsonify(services().memory.update_workspace(g.user.user_id, workspace_id,
                                                      **body.model_dump(exclude_none=True)).body())


@bp.delete("/workspace/<id:workspace_id>")
def delete_workspace(workspace_id: str) -> Response:
    return jsonify(services().memory.delete_workspace(g.user.user_id, workspace_id).body())
