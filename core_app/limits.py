"""Limits on what callers may ask of the Core App: sign-in attempts per client address and per account
(Flask-Limiter, counters in RATELIMIT_STORAGE_URI), sign-ins in progress per process, and expensive calls
running at once per user. Each refusal is counted in `cortex_rate_limit_refusals` under the lower-case
name of the setting that sets the limit (auth_rate_limit_per_address, auth_rate_limit_per_account,
sign_in_concurrency, search_concurrency_per_user)."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, Flask, Response, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded
from werkzeug.middleware.proxy_fix import ProxyFix

from common import metrics
from common.credentials import MAX_EMAIL_INPUT, normalize_email
from common.errors import ServiceError, TooManyRequests, UnsupportedMediaType
from common.server import read_json_object
from common.server.http_errors import error_response
from core_app.config import CoreConfig
from core_app.slots import KeyedSlots

ADDRESS_MESSAGE = "too many sign-in requests from this address; try again later"
ACCOUNT_MESSAGE = "too many sign-in attempts for this account; try again later"


def client_address() -> str:
    """The caller's address: the socket's peer, or what the TRUSTED_PROXIES nearest proxies say it is."""
    return request.remote_addr or "unknown"


def login_fields() -> dict:
    """What a login sends, read once per request (the per-account limit reads it before the view does):
    OAuth2-style form logins send `username`, JSON clients `email`."""
    if "login_fields" not in g:
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            g.login_fields = {"email": request.form.get("username") or request.form.get("email"),
                              "password": request.form.get("password")}
        elif request.mimetype == "application/json":
            g.login_fields = read_json_object()
        else:
            raise UnsupportedMediaType("log in with a JSON body or an HTML form")
    return g.login_fields


def _login_email() -> str:
    if "login_email" not in g:
        try:
            raw = login_fields().get("email")
        except ServiceError:  # a body the view refuses itself, with its own 4xx
            raw = None
        # Longer is refused as invalid anyway.
        g.login_email = normalize_email(raw) if isinstance(raw, str) and len(raw) <= MAX_EMAIL_INPUT else ""
    return g.login_email


def account_key() -> str:
    """The account a login names, normalised like Memory stores it, so every spelling of one address
    shares one counter; hashed, so a huge or hostile string costs a fixed few bytes of storage."""
    return "account:" + hashlib.sha256(_login_email().encode()).hexdigest()[:32]


def _not_a_login_with_email() -> bool:
    return not (request.endpoint or "").endswith(".login") or not _login_email()


class SignInGate:
    """At most `limit` sign-ins in progress at once; the next waits up to `wait` seconds for one to finish,
    then gets 429. The short wait paces a flood: refused at once, its connections would ask again at once
    and spend the worker's time on refusals instead of other users' calls."""

    def __init__(self, limit: int, wait: float) -> None:
        self.limit = limit
        self.wait = wait
        self._slots = threading.BoundedSemaphore(limit)
        self._running = 0

    @property
    def running(self) -> int:
        """How many sign-ins hold a slot now."""
        return self._running

    @contextmanager
    def hold(self) -> Iterator[None]:
        """One slot for the duration of the block, or TooManyRequests after waiting `wait` seconds."""
        if not self._slots.acquire(timeout=self.wait):
            metrics.rate_limited("core", "sign_in_concurrency")
            raise TooManyRequests("too many sign-ins in progress on this server; try again shortly",
                                  {"limit": self.limit}, retry_after=1)
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            self._slots.release()


def search_slots() -> KeyedSlots:
    """The per-user bound on searches, context and analysis calls of this app."""
    return current_app.extensions["cortex.searches"]


def sign_in_slots() -> SignInGate:
    """The bound on logins and registrations in progress in this process, all callers together."""
    return current_app.extensions["cortex.sign_ins"]


def install_limits(app: Flask, settings: CoreConfig, auth: Blueprint) -> Limiter:
    """Trust the configured proxies' X-Forwarded-For, rate-limit the `auth` blueprint (/v1/auth/*), and
    bound sign-ins in progress and searches per user."""
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    limiter = Limiter(client_address, app=app, storage_uri=settings.ratelimit_storage_uri,
                      strategy="moving-window", headers_enabled=False)
    limiter.limit(settings.auth_rate_limit_per_address, key_func=client_address,
                  error_message=ADDRESS_MESSAGE)(auth)
    # Every attempt counts, not only failures: counted before the password check, a burst of parallel
    # guesses cannot slip past the limit while the first ones are still being hashed.
    limiter.limit(settings.auth_rate_limit_per_account, key_func=account_key, error_message=ACCOUNT_MESSAGE,
                  exempt_when=_not_a_login_with_email)(auth)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded) -> Response:
        # Answered after the same short wait as a sign-in that found no free turn: a flood that asks
        # again the moment it is refused would otherwise keep the worker busy with refusals alone.
        time.sleep(settings.sign_in_wait)
        breached = limiter.current_limit
        wait = 1.0
        if breached is not None:  # the storage rounds the reset up to a whole second: never past the window
            wait = min(breached.reset_at - time.time(), breached.limit.get_expiry())
        scope = "account" if exc.description == ACCOUNT_MESSAGE else "address"
        metrics.rate_limited("core", f"auth_rate_limit_per_{scope}")
        return error_response(TooManyRequests(exc.description, {"per": scope}, retry_after=math.ceil(wait)))

    app.extensions["cortex.searches"] = KeyedSlots(
        settings.search_concurrency_per_user,
        f"at most {settings.search_concurrency_per_user} searches at once per user; wait for one to finish",
        name="search_concurrency_per_user")
    # Each password check holds a connection to Memory while it hashes: a share of the pool, not all of it.
    app.extensions["cortex.sign_ins"] = SignInGate(settings.sign_in_concurrency, settings.sign_in_wait)
    return limiter
