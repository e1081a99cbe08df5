"""Reply generators: `builtin` (offline, deterministic) and `openai` (any OpenAI-compatible endpoint).

A generator turns a `Prompt` into an iterator of text deltas; it never blocks until the reply is whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from common.errors import ServiceError
from common.retry import RetryPolicy
from common.transport import ClientSettings, Transport


class ProviderError(ServiceError):
    status, code, default_message = 502, "provider_error", "the reply generator failed"


@dataclass(frozen=True)
class Prompt:
    message: str
    context: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)


class Generator(Protocol):
    def stream(self, prompt: Prompt) -> Iterator[str]: ...


def _snippet(text: str, words: int = 24, chars: int = 200) -> str:
    parts = text.split()
    snippet = " ".join(parts[:words])
    if len(snippet) > chars:
        return snippet[:chars] + "…"
    return snippet + (" …" if len(parts) > words else "")


class BuiltinGenerator:
    """Answers from the retrieved context, the same way every time, a few words per delta."""

    words_per_delta = 3

    def compose(self, prompt: Prompt) -> str:
        # What the user said before is the useful recall; earlier replies only echo it.
        said = [item for item in prompt.context if item.get("role") == "user"] or prompt.context
        quoted = [_snippet(item["content"]) for item in said[:2] if item.get("content")]
        if quoted:
            recalled = " ".join(f"“{text}”" for text in quoted)
            return f"You asked: “{_snippet(prompt.message)}”. From your history I recall {recalled}."
        return f"You said: “{_snippet(prompt.message)}”. I have nothing earlier on this yet."

    def stream(self, prompt: Prompt) -> Iterator[str]:
        words = self.compose(prompt).split(" ")
        step = self.words_per_delta
        for start in range(0, len(words), step):
            chunk = " ".join(words[start:start + step])
            yield chunk if start + step >= len(words) else chunk + " "


def chat_messages(prompt: Prompt) -> list[dict[str, str]]:
    """The OpenAI chat message list: instructions with the context, recent turns, the new message."""
    system = "You are a helpful assistant."
    if prompt.context:
        lines = "\n".join(f"- {_snippet(item['content'], 80)}" for item in prompt.context if item.get("content"))
        system += f"\nRelevant messages from the user's history:\n{lines}"
    messages = [{"role": "system", "content": system}]
    messages += [{"role": turn["role"], "content": turn["content"]} for turn in prompt.history
                 if turn.get("role") in ("user", "assistant")]
    messages.append({"role": "user", "content": prompt.message})
    return messages


class OpenAIGenerator:
    """Streams `/chat/completions` with `stream: true`; the SSE framing is parsed by sseclient-py."""

    def __init__(self, base_url: str, api_key: str | None, model: str, timeout: float) -> None:
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        self.api_key = api_key
        self.model = model
        # Nothing is generated before the headers arrive, so retrying the opening is safe.
        settings = ClientSettings(read_timeout=timeout, stream_read_timeout=timeout, pool_size=100,
                                  retry=RetryPolicy(attempts=1, max_elapsed=2.0))
        # An outside endpoint: honour HTTPS_PROXY and friends from the environment.
        self.transport = Transport("llm", settings, trust_env=True)

    def stream(self, prompt: Prompt) -> Iterator[str]:
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = {"model": self.model, "messages": chat_messages(prompt), "stream": True}
        finished = False
        try:
            with self.transport.open_events(self.url, method="POST", json=body, headers=headers) as events:
                for event in events:
                    if event.data.strip() == "[DONE]":
                        return
                    delta, finished = self._delta(event.data)
                    if delta:
                        yield delta
        except ServiceError as exc:
            raise ProviderError(f"the language model failed: {exc.message}") from None
        # Some compatible servers close after the finishing chunk without sending [DONE].
        if not finished:
            raise ProviderError("the language model's stream ended before the reply was finished")

    @staticmethod
    def _delta(data: str) -> tuple[str, bool]:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ProviderError("the language model sent a chunk that is not JSON") from None
        if isinstance(chunk, dict) and "error" in chunk:
            raise ProviderError(f"the language model reported an error: {str(chunk['error'])[:200]}")
        try:
            choice = chunk["choices"][0]
            return choice.get("delta", {}).get("content") or "", bool(choice.get("finish_reason"))
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ProviderError("the language model sent a chunk without choices") from None
