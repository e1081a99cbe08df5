"""The error hierarchy: each class's status, code and body, and rebuilding errors from remote bodies."""

from __future__ import annotations

import pytest
from flask import Flask

from common import errors
from common.errors import (
    BY_CODE,
    Conflict,
    Forbidden,
    InvalidArguments,
    InvalidCredentials,
    InvalidRequest,
    MethodNotAllowed,
    MisdirectedRequest,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServiceBusy,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
    ToolError,
    ToolExecutionError,
    ToolNotFound,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    from_body,
)
from common.server.http_errors import error_response

CLASSES = [
    (ServiceError, 500, "internal_error"),
    (InvalidRequest, 400, "invalid_request"),
    (InvalidArguments, 400, "invalid_arguments"),
    (Unauthorized, 401, "unauthorized"),
    (InvalidCredentials, 401, "invalid_credentials"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (ToolNotFound, 404, "tool_not_found"),
    (MethodNotAllowed, 405, "method_not_allowed"),
    (RequestTimeout, 408, "request_timeout"),
    (Conflict, 409, "conflict"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (MisdirectedRequest, 421, "misdirected_request"),
    (TooManyRequests, 429, "too_many_requests"),
    (UnsupportedMediaType, 415, "unsupported_media_type"),
    (TooManyRequests, 429, "too_many_requests"),
    (ToolExecutionError, 500, "tool_execution_error"),
    (ServiceUnavailable, 503, "unavailable"),
    (ServiceBusy, 503, "busy"),
    (ServiceTimeout, 504, "timeout"),
]

KNOWN = [(cls, status, code) for cls, status, code in CLASSES if cls is not ServiceError]


@pytest.mark.parametrize(("cls", "status", "code"), CLASSES, ids=[c[2] for c in CLASSES])
def test_class_carries_status_code_and_default_message(cls, status, code):
    error = cls()
    assert (error.status, error.code) == (status, code)
    assert error.to_body() == {"error": {"code": code, "message": cls.default_message, "details": {}}}
    assert str(error) == cls.default_message
    assert isinstance(error, ServiceError)


def test_to_body_carries_message_and_details():
    error = Conflict("email taken", {"field": "email"})
    assert error.to_body() == {"error": {"code": "conflict", "message": "email taken",
                                         "details": {"field": "email"}}}
    assert str(error) == "email taken"


def test_details_are_not_shared_between_instances():
    first, second = NotFound(), NotFound()
    first.details["x"] = 1
    assert second.details == {}


def test_subclasses_are_caught_by_their_parent():
    with pytest.raises(NotFound):
        raise ToolNotFound()
    with pytest.raises(Unauthorized):
        raise InvalidCredentials()


def test_every_code_has_exactly_one_class():
    codes = [cls.code for cls in errors._all_subclasses(ServiceError) if cls is not ToolError]
    assert len(codes) == len(set(codes))
    assert set(BY_CODE) == {code for _, _, code in KNOWN}


def test_tool_error_keeps_remote_status_and_code():
    error = ToolError("quota exceeded", {"limit": 3}, status=429, code="too_many_requests")
    assert (error.status, error.code) == (429, "too_many_requests")
    assert error.to_body() == {"error": {"code": "too_many_requests", "message": "quota exceeded",
                                         "details": {"limit": 3}}}
    # The instance attributes must not leak into the class or other instances.
    assert (ToolError.status, ToolError.code) == (500, "internal_error")
    assert ToolError().code == "tool_execution_error"


def test_too_many_requests_carries_retry_after_across_services():
    sent = TooManyRequests("busy", {"reason": "busy"}, retry_after=7)
    rebuilt = from_body(429, sent.to_body())
    assert type(rebuilt) is TooManyRequests
    assert rebuilt.retry_after == 7 and rebuilt.details == {"reason": "busy", "retry_after": 7}
    assert TooManyRequests().retry_after == 1  # a remote 429 that named no wait: a second
    assert TooManyRequests(retry_after=0).retry_after == 1


@pytest.mark.parametrize(("cls", "status", "code"), KNOWN, ids=[c[2] for c in KNOWN])
def test_from_body_rebuilds_known_code_with_matching_status(cls, status, code):
    body = cls("remote message", {"id": "abc"}).to_body()
    rebuilt = from_body(status, body)
    assert type(rebuilt) is cls
    assert (rebuilt.status, rebuilt.code) == (status, code)
    assert rebuilt.message == "remote message"
    assert rebuilt.details == {"id": "abc"}


@pytest.mark.parametrize(("cls", "status", "code"), KNOWN, ids=[c[2] for c in KNOWN])
def test_from_body_without_status_rebuilds_known_code(cls, status, code):
    """In-band stream errors carry no HTTP status: the code alone picks the class."""
    rebuilt = from_body(None, {"error": {"code": code, "message": "mid-stream", "details": {}}})
    assert type(rebuilt) is cls
    assert rebuilt.status == status
    assert rebuilt.message == "mid-stream"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "quota_exceeded"),
        (418, "teapot"),
        (500, "database_exploded"),
        (500, "not_found"),  # a known code with a different status keeps the remote status
        (400, "unavailable"),
    ],
)
def test_from_body_keeps_unknown_or_mismatched_codes_as_tool_error(status, code):
    rebuilt = from_body(status, {"error": {"code": code, "message": "remote said so", "details": {"k": 1}}})
    assert type(rebuilt) is ToolError
    assert (rebuilt.status, rebuilt.code) == (status, code)
    assert rebuilt.message == "remote said so"
    assert rebuilt.details == {"k": 1}
    assert rebuilt.to_body()["error"]["code"] == code


def test_from_body_unknown_code_in_stream_defaults_to_status_500():
    rebuilt = from_body(None, {"error": {"code": "weird_failure", "message": "m", "details": {}}})
    assert type(rebuilt) is ToolError
    assert (rebuilt.status, rebuilt.code) == (500, "weird_failure")


@pytest.mark.parametrize(
    "body",
    [
        None,
        "<html>Bad Gateway</html>",
        ["error"],
        {},
        {"result": {}},
        {"error": "not_found"},
        {"error": None},
        {"error": {"message": "no code"}},
        {"error": {"code": 404, "message": "numeric code"}},
    ],
    ids=["none", "text", "list", "empty", "result", "error-string", "error-null", "no-code", "numeric-code"],
)
@pytest.mark.parametrize("status", [502, 404, None])
def test_from_body_garbage_is_bad_response(body, status):
    rebuilt = from_body(status, body)
    assert type(rebuilt) is ToolError
    assert (rebuilt.status, rebuilt.code) == (502, "bad_response")
    assert str(status if status is not None else "stream") in rebuilt.message


@pytest.mark.parametrize("details", [None, "text", ["a"], 5])
def test_from_body_non_object_details_become_empty(details):
    rebuilt = from_body(404, {"error": {"code": "not_found", "message": "gone", "details": details}})
    assert type(rebuilt) is NotFound
    assert rebuilt.details == {}


@pytest.mark.parametrize("message", [None, ""])
def test_from_body_missing_message_falls_back_to_default(message):
    rebuilt = from_body(409, {"error": {"code": "conflict", "message": message}})
    assert type(rebuilt) is Conflict
    assert rebuilt.message == Conflict.default_message


@pytest.mark.parametrize(("error", "header"), [
    (TooManyRequests("slow down", retry_after=7), "7"),
    (ServiceUnavailable(), None),
], ids=["429-7s", "503-without"])
def test_a_429_sends_its_retry_after(error, header):
    with Flask(__name__).app_context():
        response = error_response(error)
    assert response.status_code == error.status
    assert response.headers.get("Retry-After") == header
    assert response.get_json() == error.to_body()
