"""The one place that picks the event log's backend from the settings (Mercure: one transport per URL)."""

from __future__ import annotations

from core_app.config import CoreConfig
from core_app.events.fanout import FanOut
from core_app.events.inprocess import InProcessEventLog
from core_app.events.interface import EventLog


def open_event_log(settings: CoreConfig) -> EventLog:
    """The event log the settings ask for, fed into one fan-out for this process: Redis Streams when
    REDIS_URL is set (shared by every Core process), the in-process log otherwise."""
    fanout = FanOut(settings.subscriber_buffer, settings.subscriber_buffer_bytes, settings.heartbeat_seconds)
    if settings.redis_url is not None:
        # Imported here, never at the top: redis-py must load after gevent's patching, in the worker.
        from core_app.events.redis import RedisEventLog

        return RedisEventLog(fanout, settings.redis_url, prefix=settings.redis_key_prefix,
                             retention=settings.event_retention, pool_size=settings.redis_pool_size)
    return InProcessEventLog(fanout, retention=settings.event_retention,
                             conversation_bytes=settings.event_log_conversation_bytes,
                             total_bytes=settings.event_log_bytes)
