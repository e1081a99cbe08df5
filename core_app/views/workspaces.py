"""Workspaces and conversations: create, list (paginated), read, update, delete."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from common.protocol import parse_arguments, read_json_object
from core_app.access import call, current_user
from core_app.schemas import ConversationIn, ConversationQuery, ConversationUpdate, Page, WorkspaceIn, WorkspaceUpdate

bp = Blueprint("workspaces", __name__, url_prefix="/v1")


@bp.before_request
def _authenticate() -> None:
    current_user()


def query_args(model):  # type: ignore[no-untyped-def]
    return parse_arguments(model, request.args.to_dict())


def json_body(model):  # type: ignore[no-untyped-def]
    return parse_arguments(model, read_json_object())


@bp.post("/workspace")
def create_workspace() -> tuple[Response, int]:
    body = json_body(WorkspaceIn)
    return jsonify(call("memory", "create_workspace", "workspace", **body.model_dump())), 201


@bp.get("/workspace")
def list_workspaces() -> Response:
    page = query_args(Page)
    return jsonify(call("memory", "list_workspaces", "workspace", **page.model_dump()))


@bp.get("/workspace/<id:workspace_id>")
def get_workspace(workspace_id: str) -> Response:
    return jsonify(call("memory", "get_workspace", "workspace", workspace_id=workspace_id))


@bp.put("/workspace/<id:workspace_id>")
def update_workspace(workspace_id: str) -> Response:
    body = json_body(WorkspaceUpdate)
    return jsonify(call("memory", "update_workspace", "workspace", workspace_id=workspace_id,
                        **body.model_dump(exclude_none=True)))


@bp.delete("/workspace/<id:workspace_id>")
def delete_workspace(workspace_id: str) -> Response:
    return jsonify(call("memory", "delete_workspace", "workspace", workspace_id=workspace_id))


@bp.post("/conversation")
def create_conversation() -> tuple[Response, int]:
    body = json_body(ConversationIn)
    return jsonify(call("memory", "create_conversation", "workspace", **body.model_dump())), 201


@bp.get("/conversation")
def list_conversations() -> Response:
    query = query_args(ConversationQuery)
    return jsonify(call("memory", "list_conversations", "workspace", **query.model_dump()))


@bp.get("/conversation/<id:conversation_id>")
def get_conversation(conversation_id: str) -> Response:
    return jsonify(call("memory", "get_conversation", "conversation", conversation_id=conversation_id))


@bp.put("/conversation/<id:conversation_id>")
def update_conversation(conversation_id: str) -> Response:
    body = json_body(ConversationUpdate)
    return jsonify(call("memory", "update_conversation", "conversation", conversation_id=conversation_id,
                        **body.model_dump(exclude_none=True)))


@bp.delete("/conversation/<id:conversation_id>")
def delete_conversation(conversation_id: str) -> Response:
    return jsonify(call("memory", "delete_conversation", "conversation", conversation_id=conversation_id))
