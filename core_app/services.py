"""What the Core App builds once at start and keeps on `app.extensions["cortex"]`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask import Flask, current_app

from common.client import DependencyMonitor, ServiceClient
from core_app.cognition import Cognition
from core_app.config import CoreConfig
from core_app.embedded import mount_embedded_services
from core_app.events import EventLog, open_event_log
from core_app.generators import BuiltinGenerator, Generator, OpenAIGenerator
from core_app.memory import Memory
from core_app.replies import Replier
from core_app.reply_pool import ReplyPool
from core_app.slots import KeyedSlots
from core_app.streams import AccessChecks, stream_slots
from core_app.tokens import TokenIssuer


@dataclass
class Services:
    settings: CoreConfig
    memory: Memory
    cognition: Cognition
    events: EventLog
    tokens: TokenIssuer
    replier: Replier
    monitor: DependencyMonitor
    stream_slots: KeyedSlots
    access_checks: AccessChecks
    embedded: tuple[Flask, ...] = ()  # single-process mode: the Memory and Cognition apps inside this one


def build_generator(settings: CoreConfig) -> Generator:
    if settings.llm_provider == "openai":
        # No more replies run at once than REPLY_CONCURRENCY, so no more connections are ever needed.
        return OpenAIGenerator(settings.llm_base_url or "", settings.llm_api_key, settings.llm_model,
                               settings.llm_timeout, pool_size=settings.reply_limits.concurrency)
    return BuiltinGenerator()


def build_services(settings: CoreConfig) -> Services:
    memory = ServiceClient("memory", settings.memory_url, token=settings.service_token, settings=settings.client)
    cognition = ServiceClient("cognition", settings.cognition_url, token=settings.service_token,
                              settings=settings.client)
    embedded = () if settings.distributed else mount_embedded_services(settings, memory, cognition)
    events = open_event_log(settings)
    monitor = DependencyMonitor({"memory": memory, "cognition": cognition}, settings.health_interval)
    memory_facade, cognition_facade = Memory(memory), Cognition(cognition)
    replier = Replier(memory_facade, cognition_facade, events, build_generator(settings),
                      ReplyPool(settings.reply_limits), provider=settings.llm_provider)
    tokens = TokenIssuer(settings.jwt_secret, settings.jwt_expires_seconds, settings.stream_ticket_seconds)
    # A closed stream frees its slot once the next heartbeat finds the client gone.
    slots = stream_slots(settings.streams_per_user, retry_after=max(1, math.ceil(settings.heartbeat_seconds)))
    checks = AccessChecks(memory_facade.check_access, settings.stream_access_check_seconds)
    return Services(settings, memory_facade, cognition_facade, events, tokens, replier, monitor, slots, checks,
                    embedded)


def services() -> Services:
    return current_app.extensions["cortex"]
