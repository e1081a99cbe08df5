"""The Core App's settings for replies: the LLM key refusal (issue 11 item 21) and the reply limits (item 3)."""

from __future__ import annotations

import pytest

from common.config import ConfigError
from core_app.config import load_config
from core_app.reply_pool import ReplyLimits

BASE = {"JWT_SECRET": "x" * 32}
OPENAI = {**BASE, "LLM_PROVIDER": "openai"}


@pytest.mark.parametrize("env", [
    {},
    {"LLM_API_KEY": ""},  # an empty key means "none", allowed only on this machine
    {"LLM_API_KEY": "   "},
    {"LLM_BASE_URL": "http://127.0.0.1:11434/v1"},  # loopback, but the key is merely forgotten
    {"LLM_API_KEY": "", "LLM_BASE_URL": "http://10.0.0.5:8000/v1"},
    {"LLM_API_KEY": "", "LLM_BASE_URL": "https://llm.example.com/v1"},
    {"LLM_API_KEY": "", "LLM_BASE_URL": "http://localhost.example.com/v1"},
    {"LLM_API_KEY": "", "LLM_BASE_URL": "http://127.0.0.1.nip.io/v1"},
], ids=["unset", "empty-for-openai-com", "blank", "loopback-unset", "private-network", "remote", "lookalike-host",
        "dns-to-loopback"])
def test_openai_without_a_key_is_refused_naming_the_variable(env):
    with pytest.raises(ConfigError) as caught:
        load_config({**OPENAI, **env})

    assert caught.value.name == "LLM_API_KEY"
    assert str(caught.value).startswith("invalid configuration: LLM_API_KEY is required when LLM_PROVIDER is openai")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:11434/v1", "http://localhost:8080/v1", "http://[::1]:8080/v1",
                                 "http://127.0.0.2:9/v1"])
def test_a_keyless_server_on_this_machine_needs_an_explicitly_empty_key(url):
    settings = load_config({**OPENAI, "LLM_API_KEY": "", "LLM_BASE_URL": url})

    assert settings.llm_api_key is None


def test_a_key_is_taken_as_given_and_builtin_needs_none():
    assert load_config({**OPENAI, "LLM_API_KEY": "sk-test"}).llm_api_key == "sk-test"
    assert load_config(BASE).llm_provider == "builtin"


def test_reply_limits_default_and_can_be_set():
    assert load_config(BASE).reply_limits == ReplyLimits(concurrency=64, queue=256, per_user=4)
    tuned = load_config({**BASE, "REPLY_CONCURRENCY": "8", "REPLY_QUEUE": "0", "REPLIES_PER_USER": "100"})
    assert tuned.reply_limits == ReplyLimits(concurrency=8, queue=0, per_user=100)


@pytest.mark.parametrize(("name", "value"), [
    ("REPLY_CONCURRENCY", "0"), ("REPLY_CONCURRENCY", "lots"), ("REPLY_QUEUE", "-1"), ("REPLIES_PER_USER", "0"),
    ("REPLIES_PER_USER", "2.5"), ("REPLY_CONCURRENCY", "100000"),
])
def test_bad_reply_limits_are_refused_naming_the_variable(name, value):
    with pytest.raises(ConfigError) as caught:
        load_config({**BASE, name: value})

    assert caught.value.name == name
