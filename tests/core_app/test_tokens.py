"""User access tokens: what `TokenIssuer.verify` accepts and what it refuses."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from common.errors import Unauthorized
from core_app.tokens import TokenIssuer, TokenUser

SECRET = "a-test-secret-long-enough-for-every-hmac-algorithm-0123456789abcdef"
OTHER_SECRET = "another-secret-long-enough-for-every-hmac-algorithm-9876543210fedcba"
USER = {"id": "u-1", "email": "ada@example.com", "name": "Ada"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes) -> dict:
    now = int(time.time())
    found = {"sub": USER["id"], "email": USER["email"], "name": USER["name"], "iat": now, "exp": now + 600}
    found.update(changes)
    return {key: value for key, value in found.items() if value is not None}


def unsigned(payload: dict, header: dict) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."


def tampered() -> str:
    header, _, signature = TokenIssuer(SECRET, 600).issue(USER).split(".")
    payload = b64(json.dumps(claims(sub="u-admin")).encode())
    return f"{header}.{payload}.{signature}"


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(SECRET, 600)


def test_an_issued_token_verifies_to_its_user(issuer):
    token = issuer.issue(USER)

    assert issuer.verify(token) == TokenUser("u-1", "ada@example.com", "Ada")


def test_another_process_with_the_same_secret_accepts_the_token(issuer):
    assert TokenIssuer(SECRET, 60).verify(issuer.issue(USER)).user_id == "u-1"


def test_the_token_lasts_the_configured_lifetime(issuer):
    decoded = jwt.decode(issuer.issue(USER), SECRET, algorithms=["HS256"])

    assert decoded["exp"] - decoded["iat"] == 600
    assert abs(decoded["iat"] - time.time()) < 60


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(TokenIssuer(SECRET, -10).issue(USER), id="issued-already-expired"),
        pytest.param(jwt.encode(claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), SECRET,
                                algorithm="HS256"), id="expired-an-hour-ago"),
    ],
)
def test_an_expired_token_is_refused_as_expired(issuer, token):
    with pytest.raises(Unauthorized) as raised:
        issuer.verify(token)

    assert "expired" in raised.value.message
    assert raised.value.code == "unauthorized" and raised.value.status == 401


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(TokenIssuer(OTHER_SECRET, 600).issue(USER), id="forged-with-other-secret"),
        pytest.param(tampered(), id="payload-changed-after-signing"),
        pytest.param(jwt.encode(claims(), None, algorithm="none"), id="alg-none-pyjwt"),
        pytest.param(unsigned(claims(), {"alg": "none"}), id="alg-none-by-hand"),
        pytest.param(unsigned(claims(), {"alg": "None", "typ": "JWT"}), id="alg-None-capitalised"),
        pytest.param(unsigned(claims(), {"alg": "HS256", "typ": "JWT"}), id="hs256-header-no-signature"),
        pytest.param(jwt.encode(claims(), SECRET, algorithm="HS384"), id="hs384-same-secret"),
        pytest.param(jwt.encode(claims(), SECRET, algorithm="HS512"), id="hs512-same-secret"),
        pytest.param(jwt.encode(claims(sub=None), SECRET, algorithm="HS256"), id="missing-sub"),
        pytest.param(jwt.encode(claims(exp=None), SECRET, algorithm="HS256"), id="missing-exp"),
        pytest.param(jwt.encode(claims(iat=None), SECRET, algorithm="HS256"), id="missing-iat"),
        pytest.param(jwt.encode(claims(exp="tomorrow"), SECRET, algorithm="HS256"), id="exp-not-a-number"),
        pytest.param(jwt.encode({**claims(), "sub": 42}, SECRET, algorithm="HS256"), id="sub-not-a-string"),
        pytest.param("", id="empty"),
        pytest.param("not-a-token", id="garbage"),
        pytest.param("a.b.c", id="three-garbage-parts"),
        pytest.param("Bearer x.y.z", id="scheme-included"),
        pytest.param("....", id="only-dots"),
        pytest.param(b64(b'{"alg":"HS256"}') + ".%%%." + b64(b"sig"), id="payload-not-base64"),
    ],
)
def test_a_bad_token_is_refused(issuer, token):
    with pytest.raises(Unauthorized) as raised:
        issuer.verify(token)

    assert raised.value.status == 401
    assert raised.value.code == "unauthorized"
    assert "expired" not in raised.value.message


# --- stream tickets -------------------------------------------------------------------------------------


def test_a_ticket_opens_only_its_conversations_stream_and_is_no_access_token(issuer):
    user = issuer.verify(issuer.issue(USER))
    ticket, lifetime = issuer.issue_ticket(user, "c-1")

    assert lifetime == 60
    assert issuer.verify_ticket(ticket, "c-1").user_id == user.user_id
    assert issuer.verify_ticket(ticket, "c-1").expires_at == user.expires_at  # the stream ends with the token
    with pytest.raises(Unauthorized):
        issuer.verify_ticket(ticket, "c-2")
    with pytest.raises(Unauthorized):
        issuer.verify(ticket)
    with pytest.raises(Unauthorized):
        issuer.verify_ticket(issuer.issue(USER), "c-1")  # nor is an access token a ticket


def test_a_ticket_never_outlives_its_access_token():
    short = TokenIssuer(SECRET, 10, ticket_seconds=60)
    user = short.verify(short.issue(USER))

    _, lifetime = short.issue_ticket(user, "c-1")

    assert 9 <= lifetime <= 10


def test_an_expired_ticket_is_refused_as_expired(issuer):
    user = issuer.verify(issuer.issue(USER))
    ticket, _ = issuer.issue_ticket(user, "c-1", now=time.time() - 120)

    with pytest.raises(Unauthorized) as raised:
        issuer.verify_ticket(ticket, "c-1")
    assert "expired" in raised.value.message
