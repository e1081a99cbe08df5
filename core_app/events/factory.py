"""The one place that picks the event log's backend from the settings (Mercure: one transport per URL)."""

from __future__ import annotations

from core_app.config import CoreConfig
from core_app.events.fanout import FanOut
from core_app.events.inprocess import InProcessEventLog
from core_app.events.interface import EventLog


def open_event_log(settings: CoreConfig) -> EventLog:
    """The event log the settings ask for, fed into one fan-out for this process. Only the in-process log
    exists yet; a shared backend (Redis, selected by `REDIS_URL`) is chosen here and nowhere else."""
    fanout = FanOut(settings.subscriber_buffer, settings.subscriber_buffer_bytes, settings.heartbeat_seconds)
    return InProcessEventLog(fanout, retention=settings.event_retention,
                             conversation_bytes=settings.event_log_conversation_bytes,
                             total_bytes=settings.event_log_bytes)
