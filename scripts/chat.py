#!/usr/bin/env python3
"""A command-line chat with Cortex Core: log in, pick or create a conversation, send messages, and print
the assistant's reply as it streams in.

    python scripts/chat.py --email ada@example.com --password 'correct horse' --register
    python scripts/chat.py --email ada@example.com --password '...' -m "Hello" -m "What did I say?"

Without -m it reads one message per line from standard input until end of file: at a terminal it prompts
with "you: " (Ctrl-D ends), from a pipe it prints each message it sends as "you: ...".
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TextIO

import requests
import sseclient


class ChatError(Exception):
    pass


def root_reason(exc: BaseException) -> str:
    """The operating system's words for a failed connection ("Connection refused"), dug out of the
    exceptions requests and urllib3 wrap around it."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        pending += [e for e in (getattr(current, "reason", None), current.__cause__, current.__context__, *current.args)
                    if isinstance(e, BaseException)]
    return type(exc).__name__


class Chat:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.events: queue.Queue[tuple[str, dict]] = queue.Queue()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """One HTTP request; a server that cannot be reached is one ChatError naming the URL."""
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self.session.request(method, f"{self.url}{path}", **kwargs)
        except requests.ConnectionError as exc:
            raise ChatError(f"cannot reach Cortex Core at {self.url} ({root_reason(exc)}): is it running? "
                            "Start it with `python -m core_app`, or pass --url") from None
        except requests.Timeout:
            raise ChatError(f"{self.url} did not answer {method} {path} within {self.timeout:g} s") from None
        except requests.RequestException as exc:
            raise ChatError(f"{method} {self.url}{path} failed: {root_reason(exc)}") from None

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = self.request(method, path, **kwargs)
        try:
            body = response.json() if response.content else {}
        except ValueError:
            raise ChatError(f"{self.url}{path} answered HTTP {response.status_code}, but not as Cortex Core "
                            "does: is --url right?") from None
        if response.status_code >= 400:
            error = body.get("error", {})
            raise ChatError(f"{method} {path}: {response.status_code} {error.get('code')}: {error.get('message')}")
        return body

    def login(self, email: str, password: str, name: str, register: bool) -> dict:
        if register:
            try:
                self.call("POST", "/v1/auth/register", json={"email": email, "name": name, "password": password})
            except ChatError as exc:
                if " 409 " not in str(exc):
                    raise
        login = self.call("POST", "/v1/auth/login", json={"email": email, "password": password})
        self.session.headers["Authorization"] = f"Bearer {login['access_token']}"
        return login["user"]

    def conversation(self, conversation_id: str | None, topic: str) -> str:
        if conversation_id:
            return self.call("GET", f"/v1/conversation/{conversation_id}")["conversation"]["id"]
        workspace = self.call("POST", "/v1/workspace", json={"name": "Chat"})["workspace"]
        created = self.call("POST", "/v1/conversation", json={"workspace_id": workspace["id"], "topic": topic})
        return created["conversation"]["id"]

    def listen(self, conversation_id: str) -> None:
        """Read the conversation's stream in the background, handing events to the main thread."""
        response = self.request("GET", f"/v1/conversation/{conversation_id}/messages/stream", stream=True,
                                timeout=(5, 60), headers={"Accept": "text/event-stream"})
        if response.status_code != 200:
            raise ChatError(f"stream: {response.status_code} {response.text[:200]}")

        def read() -> None:
            try:
                for event in sseclient.SSEClient(response).events():
                    self.events.put((event.event, json.loads(event.data)))
            except (requests.RequestException, ValueError) as exc:
                self.events.put(("closed", {"message": f"lost the stream from {self.url} ({root_reason(exc)})"}))
            self.events.put(("closed", {"message": f"{self.url} ended the stream (did the server stop?)"}))

        threading.Thread(target=read, daemon=True).start()
        self.expect(lambda kind, data: kind == "connected")

    def expect(self, match) -> tuple[str, dict]:
        while True:
            try:
                kind, data = self.events.get(timeout=self.timeout)
            except queue.Empty:
                raise ChatError(f"no reply within {self.timeout:g} s") from None
            if kind == "closed":
                raise ChatError(data["message"])
            if match(kind, data):
                return kind, data
            if kind == "warning":
                print(f"[warning] {data.get('message')}", file=sys.stderr)

    def send(self, conversation_id: str, text: str, out) -> str:
        """Post one message and print the reply as it streams; returns the reply's full text."""
        posted = self.call("POST", f"/v1/conversation/{conversation_id}/messages", json={"content": text})
        message_id = posted["message"]["id"]
        _, started = self.expect(lambda k, d: k == "response.started" and d.get("in_reply_to") == message_id)
        response_id = started["response_id"]
        out.write("assistant: ")
        parts = []
        while True:
            kind, data = self.expect(lambda k, d: d.get("response_id") == response_id)
            if kind == "response.delta":
                parts.append(data["delta"])
                out.write(data["delta"])
                out.flush()
            elif kind == "response.completed":
                out.write("\n")
                return "".join(parts)
            elif kind == "error":
                out.write("\n")
                raise ChatError(f"the reply failed: {data.get('code')}: {data.get('message')}")


def typed_lines(stdin: TextIO, out: TextIO) -> Iterator[str]:
    """Lines typed at a terminal, each after a "you: " prompt; the terminal itself echoes them."""
    print("Type a message and press Enter; Ctrl-D to finish.", file=sys.stderr)
    while True:
        out.write("you: ")
        out.flush()
        line = stdin.readline()
        if not line:  # Ctrl-D
            out.write("\n")
            return
        yield line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chat with Cortex Core from the command line.")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the Core App (default %(default)s)")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--name", default="Chat user", help="the name to register with")
    parser.add_argument("--register", action="store_true", help="create the account first if it does not exist")
    parser.add_argument("--conversation", help="continue this conversation id instead of starting one")
    parser.add_argument("--topic", default="Command-line chat")
    parser.add_argument("-m", "--message", action="append", help="send this message (repeatable); no stdin")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each reply")
    args = parser.parse_args(argv)
    chat = Chat(args.url, args.timeout)
    # At a terminal the prompt and the terminal's echo show what was typed; anywhere else, say it once.
    interactive = not args.message and sys.stdin.isatty()
    messages: Iterable[str] = args.message or (typed_lines(sys.stdin, sys.stdout) if interactive else sys.stdin)
    try:
        user = chat.login(args.email, args.password, args.name, args.register)
        conversation_id = chat.conversation(args.conversation, args.topic)
        chat.listen(conversation_id)
        print(f"signed in as {user['email']}; conversation {conversation_id}", file=sys.stderr)
        for line in messages:
            text = line.strip()
            if text:
                if not interactive:
                    print(f"you: {text}")
                chat.send(conversation_id, text, sys.stdout)
    except ChatError as exc:
        print(f"chat: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
