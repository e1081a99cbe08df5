"""Accounts: register, log in (JSON or form), verify a token."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from common.errors import Forbidden, NotFound, Unauthorized
from common.protocol import parse_arguments, read_json_object
from core_app.access import current_user
from core_app.limits import login_fields, sign_in_slots
from core_app.schemas import Login, Register
from core_app.services import services

bp = Blueprint("accounts", __name__, url_prefix="/v1/auth")


@bp.post("/register")
def register() -> tuple[Response, int]:
    if not services().settings.registration_enabled:
        raise Forbidden("registration is turned off on this server")
    body = parse_arguments(Register, read_json_object())
    with sign_in_slots().hold():
        created = services().memory.call_tool("create_user", body.model_dump())
    return jsonify({"user": created["user"]}), 201


@bp.post("/login")
def login() -> Response:
    body = parse_arguments(Login, login_fields())
    with sign_in_slots().hold():
        user = services().memory.call_tool("authenticate_user", body.model_dump())["user"]
    settings = services().settings
    return jsonify({"access_token": services().tokens.issue(user), "token_type": "bearer",
                    "expires_in": settings.jwt_expires_seconds, "user": user})


@bp.get("/verify")
def verify() -> Response:
    user = current_user()
    try:
        stored = services().memory.call_tool("get_user", {"user_id": user.user_id})["user"]
    except NotFound:
        raise Unauthorized("the user of this token no longer exists") from None
    return jsonify({"user_id": stored["id"], "email": stored["email"], "name": stored["name"]})
