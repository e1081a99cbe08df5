"""Typed settings from the environment; a bad one stops the process with one line naming it."""

from __future__ import annotations

import pytest

from common.config import ConfigError, Env, exit_on_config_error

NAME = "SOME_SETTING"


def env_with(value: str | None) -> Env:
    return Env({} if value is None else {NAME: value})


def assert_names_variable(excinfo: pytest.ExceptionInfo[ConfigError], value: str) -> None:
    message = str(excinfo.value)
    assert excinfo.value.name == NAME
    assert NAME in message
    assert value.strip() in message
    assert "\n" not in message


def test_reads_process_environment_by_default(monkeypatch):
    monkeypatch.setenv(NAME, "17")
    assert Env().int(NAME, 1) == 17


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (None, {}, 5),
        ("", {}, 5),
        ("   ", {}, 5),
        ("42", {}, 42),
        (" 7 ", {}, 7),
        ("-3", {}, -3),
        ("1", {"minimum": 1, "maximum": 65535}, 1),
        ("65535", {"minimum": 1, "maximum": 65535}, 65535),
    ],
)
def test_int_good(value, kwargs, expected):
    assert env_with(value).int(NAME, 5, **kwargs) == expected


@pytest.mark.parametrize(
    ("value", "kwargs"),
    [
        ("abc", {}),
        ("4.5", {}),
        ("1e3", {}),
        ("0x10", {}),
        ("0", {"minimum": 1}),
        ("65536", {"maximum": 65535}),
    ],
)
def test_int_bad(value, kwargs):
    with pytest.raises(ConfigError) as excinfo:
        env_with(value).int(NAME, 5, **kwargs)
    assert_names_variable(excinfo, value)


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (None, {}, 1.5),
        ("0.25", {}, 0.25),
        ("3", {}, 3.0),
        ("1e2", {}, 100.0),
        ("0", {"minimum": 0}, 0.0),
        ("60", {"minimum": 0, "maximum": 60}, 60.0),
    ],
)
def test_float_good(value, kwargs, expected):
    assert env_with(value).float(NAME, 1.5, **kwargs) == expected


@pytest.mark.parametrize(
    ("value", "kwargs"),
    [
        ("abc", {}),
        ("1,5", {}),
        ("-0.1", {"minimum": 0}),
        ("61", {"maximum": 60}),
        ("inf", {"minimum": 0, "maximum": 60}),
    ],
)
def test_float_bad(value, kwargs):
    with pytest.raises(ConfigError) as excinfo:
        env_with(value).float(NAME, 1.5, **kwargs)
    assert_names_variable(excinfo, value)


@pytest.mark.parametrize("value", ["nan", "NaN"])
def test_float_rejects_nan_when_bounded(value):
    with pytest.raises(ConfigError) as excinfo:
        env_with(value).float(NAME, 5.0, minimum=0.1, maximum=60)
    assert_names_variable(excinfo, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("1", True), ("true", True), ("TRUE", True), ("Yes", True), ("on", True), (" true ", True),
        ("0", False), ("false", False), ("No", False), ("OFF", False),
    ],
)
def test_bool_good(value, expected):
    assert env_with(value).bool(NAME, False) is expected


def test_bool_default_true():
    assert env_with(None).bool(NAME, True) is True


@pytest.mark.parametrize("value", ["maybe", "2", "y", "enabled", "t"])
def test_bool_bad(value):
    with pytest.raises(ConfigError) as excinfo:
        env_with(value).bool(NAME, False)
    assert_names_variable(excinfo, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "http://localhost:9000"),
        ("http://memory:9000", "http://memory:9000"),
        ("http://memory:9000/", "http://memory:9000"),
        ("https://memory.example.com/api/", "https://memory.example.com/api"),
        ("http://127.0.0.1", "http://127.0.0.1"),
    ],
)
def test_url_good(value, expected):
    assert env_with(value).url(NAME, "http://localhost:9000/") == expected


@pytest.mark.parametrize(
    "value",
    [
        "memory:9000",
        "localhost",
        "ftp://memory:9000",
        "http://",
        "http://:9000",
        "http://memory:99999",
        "http://memory:port",
    ],
)
def test_url_bad(value):
    with pytest.raises(ConfigError) as excinfo:
        env_with(value).url(NAME, "http://localhost:9000")
    assert_names_variable(excinfo, value)


CHOICES = ("memory", "redis", "postgres")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "memory"), ("redis", "redis"), ("Postgres", "postgres"), (" REDIS ", "redis")],
)
def test_choice_good(value, expected):
    assert env_with(value).choice(NAME, "memory", CHOICES) == expected


@pytest.mark.parametrize("value", ["mysql", "redis2", "re dis"])
def test_choice_bad(value):
    with pytest.raises(ConfigError) as excinfo:
        env_with(value).choice(NAME, "memory", CHOICES)
    assert_names_variable(excinfo, value)
    for choice in CHOICES:
        assert choice in str(excinfo.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "INFO"), ("debug", "DEBUG"), ("Warning", "WARNING"), ("ERROR", "ERROR"), ("critical", "CRITICAL")],
)
def test_log_level_good(value, expected):
    assert Env({} if value is None else {"LOG_LEVEL": value}).log_level() == expected


def test_log_level_default_may_be_given_in_any_case():
    assert Env({}).log_level(default="Debug") == "DEBUG"


@pytest.mark.parametrize("value", ["verbose", "trace", "warn", "10"])
def test_log_level_bad(value):
    with pytest.raises(ConfigError) as excinfo:
        Env({"LOG_LEVEL": value}).log_level()
    assert excinfo.value.name == "LOG_LEVEL"
    assert "LOG_LEVEL" in str(excinfo.value)


def test_str_trims_and_defaults():
    env = Env({"A": "  value  ", "B": "   "})
    assert env.str("A") == "value"
    assert env.str("B", "fallback") == "fallback"
    assert env.str("MISSING") is None


def test_exit_on_config_error_prints_one_line_and_exits_3(capsys):
    with pytest.raises(ConfigError) as excinfo:
        Env({"MEMORY_SERVICE_PORT": "http"}).int("MEMORY_SERVICE_PORT", 9000)
    with pytest.raises(SystemExit) as exit_info:
        exit_on_config_error(excinfo.value)
    assert exit_info.value.code == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n")
    lines = err.splitlines()
    assert len(lines) == 1
    assert "MEMORY_SERVICE_PORT" in lines[0]
    assert "'http'" in lines[0]
