"""What Core's typed facades over Memory and Cognition share: calling a tool for a user, with refusals of
another user's objects reported exactly like missing ones."""

from __future__ import annotations

from typing import Any

from common.client import ServiceClient
from common.errors import Forbidden, NotFound, ServiceError, Unauthorized


def hide_foreign(exc: ServiceError, what: str) -> ServiceError:
    """Another user's object is reported exactly like a missing one, so ids reveal nothing."""
    if isinstance(exc, Forbidden):
        return NotFound(f"{what} not found")
    if isinstance(exc, NotFound) and exc.details.get("object") == "user":
        # The token is valid but its user is gone (deleted): treat as signed out.
        return Unauthorized("the user of this token no longer exists")
    return exc


class Facade:
    """A service's operations as methods; the only place in Core that names the service's tools."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    def _for_user(self, tool: str, user_id: str, what: str, *, idempotency_key: str | None = None,
                  **arguments: Any) -> dict[str, Any]:
        """Call `tool` acting as `user_id`; a refusal of `what` (another user's) becomes 404, a deleted
        user 401."""
        try:
            return self.client.call_tool(tool, {"user_id": user_id, **arguments}, idempotency_key=idempotency_key)
        except ServiceError as exc:
            raise hide_foreign(exc, what) from None
