"""Workspaces and conversations: create, list (paginated), read, update, delete; and who takes part in a
conversation: invitations its invitee accepts or declines, leaving, removal."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from common.protocol import parse_arguments, read_json_object
from core_app.access import call, current_user
from core_app.schemas import (
    ConversationIn,
    ConversationQuery,
    ConversationUpdate,
    InvitationIn,
    InvitationQuery,
    Page,
    WorkspaceIn,
    WorkspaceUpdate,
)

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


@bp.post("/conversation/<id:conversation_id>/participants")
def invite_participant(conversation_id: str) -> tuple[Response, int]:
    """202: the user is invited, and takes part only once they accept."""
    body = json_body(InvitationIn)
    return jsonify(call("memory", "invite_participant", "conversation", conversation_id=conversation_id,
                        participant_id=body.user_id)), 202


@bp.delete("/conversation/<id:conversation_id>/participants/me")
def leave_conversation(conversation_id: str) -> Response:
    return jsonify(call("memory", "leave_conversation", "conversation", conversation_id=conversation_id))


@bp.delete("/conversation/<id:conversation_id>/participants/<id:user_id>")
def remove_participant(conversation_id: str, user_id: str) -> Response:
    return jsonify(call("memory", "remove_participant", "conversation", conversation_id=conversation_id,
                        participant_id=user_id))


@bp.get("/invitations")
def list_invitations() -> Response:
    query = query_args(InvitationQuery)
    return jsonify(call("memory", "list_invitations", "conversation", **query.model_dump(exclude_none=True)))


@bp.post("/invitations/<id:invitation_id>/<any(accept, decline):answer>")
def respond_invitation(invitation_id: str, answer: str) -> Response:
    return jsonify(call("memory", "respond_invitation", "invitation", invitation_id=invitation_id,
                        accept=answer == "accept"))
