"""User access tokens: HS256 JWTs with `sub`, `iat` and `exp`, verified with one fixed algorithm."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
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

    CACHE_SIZE = 10_000

    def __init__(self, secret: str, expires_seconds: int) -> None:
        self.secret = secret
        self.expires_seconds = expires_seconds
        # Verified tokens, so a client opening many streams does not pay the signature check each time
        # (PyJWT's key preparation alone is tens of microseconds). Expiry is still checked on every hit.
        self._verified: OrderedDict[str, tuple[TokenUser, int]] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, user: dict) -> str:
        now = int(time.time())
        claims = {"sub": user["id"], "email": user["email"], "name": user["name"], "iat": now,
                  "exp": now + self.expires_seconds}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> TokenUser:
        with self._lock:
            hit = self._verified.get(token)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        user, expires = self._verify(token)
        with self._lock:
            self._verified[token] = (user, expires)
            if len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        return user

    def _verify(self, token: str) -> tuple[TokenUser, int]:
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
        return TokenUser(claims["sub"], str(claims.get("email", "")), str(claims.get("name", ""))), int(claims["exp"])
