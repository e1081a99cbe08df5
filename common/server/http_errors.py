"""Render every error a Flask app can meet in the single `{"error": {...}}` shape."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from common.errors import InvalidArguments, PayloadTooLarge, ServiceError, ToolExecutionError

log = logging.getLogger(__name__)

# werkzeug's exceptions keep their status; these names become our snake_case codes.
_HTTP_CODES = {
    400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 429: "too_many_requests", 431: "headers_too_large",
}


def error_response(error: ServiceError) -> Response:
    response = jsonify(error.to_body())
    response.status_code = error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def validation_details(exc: ValidationError) -> dict:
    """List each failing field with a plain message, without echoing the (possibly huge) input back."""
    errors = [
        {"field": ".".join(str(part) for part in err["loc"]) or "(body)", "message": err["msg"],
         "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return {"errors": errors}


def register_error_handlers(app: Flask) -> None:
    """Install the handlers that turn ours, werkzeug's, pydantic's and unexpected errors into JSON."""

    @app.errorhandler(ServiceError)
    def _ours(exc: ServiceError) -> Response:
        if exc.status >= 500:
            log.warning("%s %s -> %s %s: %s", request.method, request.path, exc.status, exc.code, exc.message)
        return error_response(exc)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return error_response(InvalidArguments(details=validation_details(exc)))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Response:
        return error_response(PayloadTooLarge())

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        body = {"error": {"code": code, "message": exc.description or exc.name, "details": {}}}
        response = jsonify(body)
        response.status_code = status
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ToolExecutionError("internal error; see the service log"))
