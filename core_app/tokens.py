"""User access tokens and stream tickets: HS256 JWTs verified with one fixed algorithm.

An access token (`sub`, `iat`, `exp`) authenticates every API call. A stream ticket is a short-lived
token for opening one conversation's output stream from a URL (EventSource cannot send headers); it
carries an audience, so it is never accepted as an access token, and the access token's expiry, so the
stream it opens ends when that token would have.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import jwt

from common.errors import Unauthorized

ALGORITHM = "HS256"
TICKET_AUDIENCE = "cortex:stream"


@dataclass(frozen=True)
class TokenUser:
    user_id: str
    email: str
    name: str
    # When the credential that authenticated this user expires (Unix seconds): open streams end then.
    expires_at: int = field(default=0, compare=False)


class TokenIssuer:
    """Issues and verifies tokens; every Core process sharing `secret` accepts the others' tokens."""

    CACHE_SIZE = 10_000

    def __init__(self, secret: str, expires_seconds: int, ticket_seconds: int = 60) -> None:
        self.secret = secret
        self.expires_seconds = expires_seconds
        self.ticket_seconds = ticket_seconds
        # Verified tokens, so a client opening many streams does not pay the signature check each time
        # (PyJWT's key preparation alone is tens of microseconds). Expiry is still checked on every hit.
        self._verified: OrderedDict[str, TokenUser] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, user: dict) -> str:
        now = int(time.time())
        claims = {"sub": user["id"], "email": user["email"], "name": user["name"], "iat": now,
                  "exp": now + self.expires_seconds}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> TokenUser:
        with self._lock:
            hit = self._verified.get(token)
        if hit is not None and hit.expires_at > time.time():
            return hit
        user = self._verify(token)
        with self._lock:
            self._verified[token] = user
            if len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        return user

    def _verify(self, token: str) -> TokenUser:
        # Only HS256 is accepted: `alg: none` and algorithm-confusion tokens fail here. A token with an
        # audience (a stream ticket) is refused: PyJWT rejects `aud` when none is expected.
        claims = self._decode(token, audience=None)
        return TokenUser(claims["sub"], str(claims.get("email", "")), str(claims.get("name", "")), int(claims["exp"]))

    def issue_ticket(self, user: TokenUser, conversation_id: str, now: float | None = None) -> tuple[str, int]:
        """A ticket for `conversation_id`'s stream and its lifetime in seconds; it never outlives the
        access token that asked for it."""
        issued = int(time.time() if now is None else now)
        expires = min(issued + self.ticket_seconds, user.expires_at)
        claims = {"sub": user.user_id, "aud": TICKET_AUDIENCE, "conversation_id": conversation_id,
                  "token_exp": user.expires_at, "iat": issued, "exp": expires}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM), expires - issued

    def verify_ticket(self, ticket: str, conversation_id: str) -> TokenUser:
        """The user a ticket was issued to, if it is valid for this conversation's stream."""
        claims = self._decode(ticket, audience=TICKET_AUDIENCE)
        if claims.get("conversation_id") != conversation_id or not isinstance(claims.get("token_exp"), int):
            raise Unauthorized("the stream ticket is for another conversation")
        return TokenUser(claims["sub"], "", "", claims["token_exp"])

    def _decode(self, token: str, audience: str | None) -> dict:
        required = ["sub", "exp", "iat", *(["aud"] if audience else [])]
        what = "stream ticket" if audience else "token"
        try:
            claims = jwt.decode(token, self.secret, algorithms=[ALGORITHM], audience=audience,
                                options={"require": required})
        except jwt.ExpiredSignatureError:
            raise Unauthorized(f"{what} has expired") from None
        except jwt.PyJWTError:
            raise Unauthorized(f"{what} is invalid") from None
        if not isinstance(claims.get("sub"), str) or (audience is None and "aud" in claims):
            raise Unauthorized(f"{what} is invalid")
        return claims
