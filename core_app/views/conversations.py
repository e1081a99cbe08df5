"""Conversations: create, list (paginated), read, update, delete; and who takes part in one: invitations
its invitee accepts or declines, leaving, removal."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify

from core_app.access import current_user
from core_app.schemas import ConversationIn, ConversationQuery, ConversationUpdate, InvitationIn, InvitationQuery
from core_app.services import services
from core_app.views.workspaces import json_body, query_args

bp = Blueprint("conversations", __name__, url_prefix="/v1")


@bp.before_request
def _authenticate() -> None:
    current_user()


@bp.post("/conversation")
def create_conversation() -> tuple[Response, int]:
    body = json_body(ConversationIn)
    created = services().memory.create_conversation(g.user.user_id, body.workspace_id, body.topic,
                                                    body.participant_ids, body.metadata)
    return jsonify(created.body()), 201


@bp.get("/conversation")
def list_conversations() -> Response:
    query = query_args(ConversationQuery)
    return jsonify(services().memory.list_conversations(g.user.user_id, query.workspace_id, query.limit,
                                                        query.offset).body())


@bp.get("/conversation/<id:conversation_id>")
def get_conversation(conversation_id: str) -> Response:
    return jsonify(services().memory.get_conversation(g.user.user_id, conversation_id).body())


@bp.put("/conversation/<id:conversation_id>")
def update_conversation(conversation_id: str) -> Response:
    body = json_body(ConversationUpdate)
    return jsonify(services().memory.update_conversation(g.user.user_id, conversation_id,
                                                         **body.model_dump(exclude_none=True)).body())


@bp.delete("/conversation/<id:conversation_id>")
def delete_conversation(conversation_id: str) -> Response:
    return jsonify(services().memory.delete_conversation(g.user.user_id, conversation_id).body())


@bp.post("/conversation/<id:conversation_id>/participants")
def invite_participant(conversation_id: str) -> tuple[Response, int]:
    """202: the user is invited, and takes part only once they accept."""
    body = json_body(InvitationIn)
    return jsonify(services().memory.invite(g.user.user_id, conversation_id, body.user_id).body()), 202


@bp.delete("/conversation/<id:conversation_id>/participants/me")
def leave_conversation(conversation_id: str) -> Response:
    return jsonify(services().memory.leave(g.user.user_id, conversation_id).body())


@bp.delete("/conversation/<id:conversation_id>/participants/<id:user_id>")
def remove_participant(conversation_id: str, user_id: str) -> Response:
    return jsonify(services().memory.remove_participant(g.user.user_id, conversation_id, user_id).body())


@bp.get("/invitations")
def list_invitations() -> Response:
    query = query_args(InvitationQuery)
    return jsonify(services().memory.list_invitations(g.user.user_id, query.limit, query.offset,
                                                      query.conversation_id).body())


@bp.post("/invitations/<id:invitation_id>/<any(accept, decline):answer>")
def respond_invitation(invitation_id: str, answer: str) -> Response:
    return jsonify(services().memory.respond_invitation(g.user.user_id, invitation_id, answer == "accept").body())
