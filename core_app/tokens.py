"""User access tokens: HS256 JWTs with `sub`, `iat` and `exp`, verified with one fixed algorithm."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from common.errors import Unauthorized

ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenUser:
    user_id: str
    email: str
    name: str


class TokenIssuer:
    """Issues and verifies tokens; every Core process sharing `secret` accepts the others' tokens."""

    def __init__(self, secret: str, expires_seconds: int) -> None:
        self.secret = secret
        self.expires_seconds = expires_seconds

    def issue(self, user: dict) -> str:
        now = int(time.time())
        claims = {"sub": user["id"], "email": user["email"], "name": user["name"], "iat": now,
                  "exp": now + self.expires_seconds}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> TokenUser:
        # Only HS256 is accepted: `alg: none` and algorithm-confusion tokens fail here.
        try:
            claims = jwt.decode(token, self.secret, algorithms=[ALGORITHM],
                                options={"require": ["sub", "exp", "iat"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token has expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("token is invalid") from None
        if not isinstance(claims.get("sub"), str):
            raise Unauthorized("token is invalid")
        return TokenUser(claims["sub"], str(claims.get("email", "")), str(claims.get("name", "")))
