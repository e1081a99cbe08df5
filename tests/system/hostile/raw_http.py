"""Raw HTTP over a loopback socket, for requests that `requests` would normalise or refuse to send
(`..` segments, invalid UTF-8 in the request line or headers, 100 kB headers, chunked bodies, a
Content-Length that lies), plus the checks every refusal must pass: the error shape and no leaks."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# What an error body must never show: a stack trace, a source path, or where our services listen.
LEAK_MARKERS = ("Traceback", 'File "', "/work/", "127.0.0.1:", "http://", "localhost:")


class ServerError(AssertionError):
    """A 5xx where the caller's input was at fault. Each failure kind has its own class, so a known bug
    can be `xfail(raises=...)` without hiding a different, new failure of the same row."""


class LeakedInternals(AssertionError):
    """An error body showing a stack trace, a source path or a URL."""


class Accepted(AssertionError):
    """A 2xx or 3xx where the input had to be refused."""


class ErrorShapeMismatch(AssertionError):
    """A refusal whose body is not `{"error": {"code": str, "message": str, "details": dict}}`."""


class WrongRefusal(AssertionError):
    """A 4xx in the right shape, but not the status or code the input calls for."""


@dataclass
class Reply:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    raw_head: bytes = field(repr=False, default=b"")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(method: str, target: bytes | str, headers: list[tuple[bytes | str, bytes | str]],
                  body: bytes = b"", *, content_length: bool = True) -> bytes:
    """The request bytes as given: nothing is quoted, normalised or re-encoded."""

    def b(value: bytes | str) -> bytes:
        return value if isinstance(value, bytes) else value.encode("latin-1")

    lines = [b(method) + b" " + b(target) + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [b(name) + b": " + b(value) for name, value in headers]
    if content_length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(body: bytes, size: int = 64 * 1024) -> bytes:
    """`body` in Transfer-Encoding: chunked framing, with the closing zero chunk."""
    parts = [f"{len(body[i:i + size]):x}\r\n".encode() + body[i:i + size] + b"\r\n"
             for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def send_raw(port: int, data: bytes, timeout: float = 15.0) -> Reply:
    """Send `data` (from a thread, so a server that answers before reading everything is still heard)
    and read one response until the server closes, within `timeout`."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sender = threading.Thread(target=_send_quietly, args=(sock, data), daemon=True)
    sender.start()
    deadline = time.monotonic() + timeout
    received = b""
    try:
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                break
            if not chunk:
                break
            received += chunk
            if _complete(received):
                break
    finally:
        sock.close()
        sender.join(timeout=5)
    return parse_reply(received)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # the server answered and closed before taking the whole body; the reply is what counts


def _complete(received: bytes) -> bool:
    head, sep, body = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def parse_reply(received: bytes) -> Reply:
    head, sep, body = received.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"no complete HTTP response: {received[:300]!r}")
    status_line, *header_lines = head.split(b"\r\n")
    _, status, reason = (status_line.decode("latin-1").split(" ", 2) + [""])[:3]
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunk(body)
    elif "content-length" in headers:
        body = body[:int(headers["content-length"])]
    return Reply(int(status), reason, headers, body, head)


def _unchunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


def leaks(text: str) -> list[str]:
    """The leak markers found in `text`."""
    return [marker for marker in LEAK_MARKERS if marker in text]


def assert_no_leak(text: str, where: str = "") -> None:
    found = leaks(text)
    if found:
        raise LeakedInternals(f"{where}: error body shows {found}: {text[:500]}")


def assert_error_shape(status: int, body: bytes | str, where: str = "") -> dict:
    """The body is the one error shape of SPEC §3.1 and shows no internals; returns the `error` object."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    assert_no_leak(text, where)
    try:
        parsed = json.loads(text)
    except ValueError:
        raise ErrorShapeMismatch(f"{where}: {status} body is not JSON: {text[:300]!r}") from None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not (isinstance(parsed, dict) and set(parsed) == {"error"} and isinstance(error, dict)
            and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
            and isinstance(error.get("details"), dict)):
        raise ErrorShapeMismatch(f"{where}: {status} body is not the error shape: {text[:300]!r}")
    return error


def check_refusal(status: int, body: bytes | str, expect_status: int | None, expect_code: str | None,
                  where: str = "") -> dict:
    """A 4xx in the error shape, with the expected status and code when given. Leaks are checked first
    and 5xx next, so neither can hide behind an expected failure of a later check."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    assert_no_leak(text, where)
    if status >= 500:
        raise ServerError(f"{where}: {status} for the caller's input: {text[:300]}")
    if status < 400:
        raise Accepted(f"{where}: expected a refusal (4xx), got {status}: {text[:300]}")
    error = assert_error_shape(status, text, where)
    if expect_status is not None and status != expect_status:
        raise WrongRefusal(f"{where}: expected {expect_status}, got {status} {error['code']}: {error['message']}")
    if expect_code is not None and error["code"] != expect_code:
        raise WrongRefusal(f"{where}: expected code {expect_code}, got {error['code']}: {error['message']}")
    return error
