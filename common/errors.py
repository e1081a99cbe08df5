"""One error hierarchy for every service and the network client.

Each class carries its HTTP status and error code; views only raise, `common.server.http_errors` renders
`{"error": {"code", "message", "details"}}`, and the client rebuilds the same class from a remote body
so an error crosses services with its code intact.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """Base of every error Cortex Core raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "internal error"
    # Seconds a client should wait before trying again, sent as the Retry-After header when set.
    retry_after: int | None = None

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidRequest(ServiceError):
    status, code, default_message = 400, "invalid_request", "request body is not a valid JSON object"


class InvalidArguments(ServiceError):
    status, code, default_message = 400, "invalid_arguments", "arguments do not match the schema"


class Unauthorized(ServiceError):
    status, code, default_message = 401, "unauthorized", "missing or invalid credentials"


class InvalidCredentials(Unauthorized):
    code, default_message = "invalid_credentials", "email or password is wrong"


class Forbidden(ServiceError):
    status, code, default_message = 403, "forbidden", "this user may not touch that object"


class MisdirectedRequest(ServiceError):
    status, code, default_message = 421, "misdirected_request", "this host name is not served here"


class NotFound(ServiceError):
    status, code, default_message = 404, "not_found", "not found"


class ToolNotFound(NotFound):
    code, default_message = "tool_not_found", "unknown tool"


class MethodNotAllowed(ServiceError):
    status, code, default_message = 405, "method_not_allowed", "method not allowed"


class RequestTimeout(ServiceError):
    status, code, default_message = 408, "request_timeout", "the request body did not arrive in time"


class Conflict(ServiceError):
    status, code, default_message = 409, "conflict", "conflict"


class PayloadTooLarge(ServiceError):
    status, code, default_message = 413, "payload_too_large", "request body is too large"


class UnsupportedMediaType(ServiceError):
    status, code, default_message = 415, "unsupported_media_type", "unsupported content type"


class TooManyRequests(ServiceError):
    """A limit was reached; `details.retry_after` (seconds) says when trying again makes sense, and the
    handler sends it as the Retry-After header too, so it survives the trip between services."""

    status, code, default_message = 429, "too_many_requests", "too many requests; try again later"

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None, *,
                 retry_after: int | None = None) -> None:
        details = dict(details or {})
        if retry_after is not None:
            details["retry_after"] = max(1, int(retry_after))
        super().__init__(message, details)
        value = self.details.get("retry_after")
        self.retry_after = value if isinstance(value, int) and value > 0 else 1


class ToolExecutionError(ServiceError):
    status, code, default_message = 500, "tool_execution_error", "the tool failed unexpectedly"


class ServiceUnavailable(ServiceError):
    status, code, default_message = 503, "unavailable", "a service is unavailable"


class ServiceBusy(ServiceUnavailable):
    """This process has no room for one more call to a service (every pooled connection to it is in
    use): back-pressure, not the service failing, so it never counts against the circuit breaker."""

    code, default_message, retry_after = "busy", "a service is busy; try again shortly", 1


class ServiceTimeout(ServiceError):
    status, code, default_message = 504, "timeout", "a service did not answer in time"


class ToolError(ServiceError):
    """A remote error whose code this process has no class for; keeps the remote status and code."""

    def __init__(
        self, message: str | None = None, details: dict[str, Any] | None = None, *,
        status: int = 500, code: str = "tool_execution_error",
    ) -> None:
        super().__init__(message, details)
        self.status = status  # type: ignore[misc]
        self.code = code  # type: ignore[misc]


def _all_subclasses(cls: type[ServiceError]) -> list[type[ServiceError]]:
    found: list[type[ServiceError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


BY_CODE: dict[str, type[ServiceError]] = {
    cls.code: cls for cls in _all_subclasses(ServiceError) if cls is not ToolError
}


def from_body(status: int | None, body: Any) -> ServiceError:
    """Rebuild the error a remote service sent; unknown codes become a `ToolError` with the same code.
    `status` is None for an in-band stream error, which carries no HTTP status of its own."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return ToolError(f"unexpected {status or 'stream'} response", status=502, code="bad_response")
    code, message = error["code"], str(error.get("message") or "")
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    cls = BY_CODE.get(code)
    if cls is not None and (status is None or cls.status == status):
        return cls(message, details)
    return ToolError(message, details, status=status or 500, code=code)
