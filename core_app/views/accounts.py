"""Accounts: register, log in (JSON or form), verify a token."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from common.errors import Forbidden, NotFound, Unauthorized
from common.server import parse_arguments, read_json_object
from core_app.access import current_user
from core_app.limits import login_fields, sign_in_slots
from core_app.responses import SignedIn, UserBody, Verified
from core_app.schemas import Login, Register
from core_app.services import services

bp = Blueprint("accounts", __name__, url_prefix="/v1/auth")


@bp.post("/register")
def register() -> tuple[Response, int]:
    if not services().settings.registration_enabled:
        raise Forbidden("registration is turned off on this server")
    body = parse_arguments(Register, read_json_object())
    with sign_in_slots().hold():
        created = services().memory.create_user(body.email, body.name, body.password)
    return jsonify(UserBody(user=created).body()), 201


@bp.post("/login")
def login() -> Response:
    body = parse_arguments(Login, login_fields())
    with sign_in_slots().hold():
        user = services().memory.authenticate(body.email, body.password)
    settings = services().settings
    return jsonify(SignedIn(access_token=services().tokens.issue(user.model_dump()), token_type="bearer",
                            expires_in=settings.jwt_expires_seconds, user=user).body())


@bp.get("/verify")
def verify() -> Response:
    user = current_user()
    try:
        stored = services().memory.get_user(user.user_id)
    except NotFound:
        raise Unauthorized("the user of this token no longer exists") from None
    return jsonify(Verified(user_id=stored.id, email=stored.email, name=stored.name).body())
