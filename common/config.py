"""Reading settings from the environment, failing at start with one line that names the variable."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from typing import NoReturn, TypeAlias
from urllib.parse import urlparse

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A setting is invalid; the message names the variable and what is wrong with it."""

    prefix = "invalid configuration"

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{self.prefix}: {name} {problem}")
        self.name = name


class UnusableSetting(ConfigError):
    """A well-formed setting this machine cannot honour now: a port already in use, a database file that
    cannot be opened. Reported the same way, one line naming the variable."""

    prefix = "cannot start"


# Env has methods named str, int, float and bool; inside it those names are the methods, so its
# annotations use these aliases of the builtins.
Text: TypeAlias = str
Whole: TypeAlias = int
Number: TypeAlias = float
Flag: TypeAlias = bool


class Env:
    """Typed reads over a mapping of settings (the process environment, or a test's dict)."""

    def __init__(self, values: Mapping[Text, Text] | None = None) -> None:
        self.values = os.environ if values is None else values

    def raw(self, name: Text) -> Text | None:
        value = self.values.get(name)
        if value is None or str(value).strip() == "":
            return None
        return str(value).strip()

    def str(self, name: Text, default: Text | None = None) -> Text | None:
        value = self.raw(name)
        return default if value is None else value

    def int(self, name: Text, default: Whole, *, minimum: Whole | None = None, maximum: Whole | None = None) -> Whole:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(name, f"must be a whole number, got {value!r}") from None
        self._check_range(name, number, minimum, maximum)
        return number

    def float(self, name: Text, default: Number, *, minimum: Number | None = None,
              maximum: Number | None = None) -> Number:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(name, f"must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(name, f"must be a finite number, got {value!r}")
        self._check_range(name, number, minimum, maximum)
        return number

    def bool(self, name: Text, default: Flag) -> Flag:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in TRUE_WORDS:
            return True
        if value.lower() in FALSE_WORDS:
            return False
        raise ConfigError(name, f"must be true or false, got {value!r}")

    def url(self, name: Text, default: Text) -> Text:
        value = self.raw(name) or default
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(name, f"must be an http(s) URL, got {value!r}")
        try:
            parsed.port  # noqa: B018 - reading it validates the port number
        except ValueError:
            raise ConfigError(name, f"has an invalid port: {value!r}") from None
        return value.rstrip("/")

    def choice(self, name: Text, default: Text, choices: tuple[Text, ...]) -> Text:
        value = (self.raw(name) or default).lower()
        if value not in choices:
            raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def log_level(self, name: Text = "LOG_LEVEL", default: Text = "INFO") -> Text:
        return self.choice(name, default.lower(), ("debug", "info", "warning", "error", "critical")).upper()

    @staticmethod
    def _check_range(name: Text, number: Number, minimum: Number | None, maximum: Number | None) -> None:
        if minimum is not None and number < minimum:
            raise ConfigError(name, f"must be at least {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise ConfigError(name, f"must be at most {maximum}, got {number}")


def exit_on_config_error(error: ConfigError) -> NoReturn:
    """Print the one-line reason and stop; exit status 3 makes gunicorn halt instead of respawning."""
    print(f"cortex: {error}", file=sys.stderr, flush=True)
    raise SystemExit(3)
