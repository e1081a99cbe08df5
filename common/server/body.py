"""Reading a request body as JSON, with the limits every endpoint shares, into a typed model."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import current_app, request
from pydantic import BaseModel, ValidationError

from common.errors import InvalidArguments, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from common.server.http_errors import validation_details

# A JSON escape of a UTF-16 surrogate; pairs are fine, a lone one is text no UTF-8 store can hold.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def read_body() -> bytes:
    """The raw body. Over the size limit is 413 whether or not the client said the length up front:
    werkzeug stops reading a chunked body at the limit without complaint, which would otherwise leave
    a truncated document to fail as invalid JSON."""
    data = request.get_data(cache=False)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and request.content_length is None and len(data) >= limit:
        raise PayloadTooLarge()
    return data


def parse_json(data: bytes) -> Any:
    """Decode JSON; ValueError for invalid JSON, including a lone surrogate escape such as "\\ud800"."""
    value = json.loads(data)
    if _SURROGATE_ESCAPE.search(data):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the text contains a lone UTF-16 surrogate") from None
    return value


def parse_arguments(model: type[BaseModel], raw: Any) -> Any:
    """`raw` validated into `model`; `InvalidArguments` with the field errors otherwise."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidArguments(details=validation_details(exc)) from None


def read_json_object() -> dict:
    """The request body as a JSON object, or `InvalidRequest` / 415 saying why not."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    try:
        body = parse_json(read_body())
    except (ValueError, RecursionError):
        raise InvalidRequest("request body is not valid JSON (or not valid Unicode text)") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body
