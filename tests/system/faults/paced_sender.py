"""A paced sender of messages to the Core App for fault tests, recording every answer and its timing."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import requests

from tests.system.support.api import Api


@dataclass
class Outcome:
    content: str
    status: int | None  # None: the Core itself did not answer (refused, cut or past the timeout)
    body: dict | str
    started: float
    ended: float

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def send_paced(api: Api, conv: str, contents: Iterable[str], out: list[Outcome], *, deadline: float,
               timeout: float, pause_after_202: float, pause_after_error: float) -> None:
    """Post each of `contents` in turn until `deadline`, appending an `Outcome` to `out` for each. The
    pauses shape the load: a client backs off after an error as a real one would."""
    for content in contents:
        if time.monotonic() > deadline:
            return
        started = time.monotonic()
        try:
            response = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": content},
                                   timeout=(5, timeout))
            try:
                body: dict | str = response.json()
            except ValueError:
                body = response.text
            out.append(Outcome(content, response.status_code, body, started, time.monotonic()))
        except requests.RequestException as exc:
            out.append(Outcome(content, None, repr(exc), started, time.monotonic()))
        time.sleep(pause_after_202 if out[-1].status == 202 else pause_after_error)
