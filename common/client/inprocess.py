"""A requests transport adapter that serves requests from a WSGI app in this process, without sockets.

The single-process mode mounts it for the Memory and Cognition URLs, so the Core App talks to them
through the very same client, protocol and error handling as in distributed mode.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from werkzeug.test import EnvironBuilder, run_wsgi_app


class _BodyReader(io.RawIOBase):
    """The app's response iterator as a file, read lazily so streamed resources stay streamed."""

    def __init__(self, chunks: Iterable[bytes], close: Callable[[], None] | None) -> None:
        self._chunks = iter(chunks)
        self._pending = b""
        self._close = close

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return b""
        if size is None or size < 0:
            size = len(self._pending)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None
        super().close()


class WSGIAdapter(BaseAdapter):
    def __init__(self, app: Callable[..., Any]) -> None:
        super().__init__()
        self.app = app

    def send(self, request: PreparedRequest, stream: bool = False, timeout: Any = None, verify: Any = True,
             cert: Any = None, proxies: Any = None) -> Response:
        if isinstance(request.body, str):
            body = request.body.encode()
        elif isinstance(request.body, bytes):
            body = request.body
        elif request.body is None:
            body = b""
        else:  # our client only ever sends JSON bytes or text; streamed bodies are not supported here
            raise ValueError("the in-process adapter takes bytes or text bodies only")
        request_headers = [(name, value if isinstance(value, str) else value.decode("latin-1"))
                   for name, value in request.headers.items()]
        builder = EnvironBuilder(path=request.path_url.split("?", 1)[0], method=request.method or "GET",
                                 query_string=request.path_url.partition("?")[2], data=body,
                                 headers=request_headers, base_url=_base_url(request.url))
        try:
            chunks, status, headers = run_wsgi_app(self.app, builder.get_environ(), buffered=False)
        finally:
            builder.close()
        response = Response()
        response.status_code = int(status.split(" ", 1)[0])
        response.reason = status.split(" ", 1)[1] if " " in status else ""
        response.headers = CaseInsensitiveDict(headers.items())
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = _BodyReader(chunks, getattr(chunks, "close", None))
        response.url = request.url or ""
        response.request = request
        response.connection = self  # type: ignore[assignment]  # requests only calls .close() on it
        return response

    def close(self) -> None:
        pass


def _base_url(url: str | None) -> str:
    scheme, _, rest = (url or "http://localhost/").partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/"
