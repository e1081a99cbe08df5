"""The embedding settings of the Cognition Service: EMBEDDINGS and the settings of the embedder it names, with
every bad value refused at start by a ConfigError naming its variable."""

from __future__ import annotations

import pytest

from cognition_service.app import create_app
from cognition_service.config import load_config
from common.config import ConfigError
from tests.cognition_service.fake_memory import BASE_CONFIG

OPENAI = {"EMBEDDINGS": "openai", "EMBEDDINGS_URL": "https://api.openai.com/v1",
          "EMBEDDINGS_MODEL": "text-embedding-3-small"}


def test_embeddings_default_to_the_builtin_model_with_its_default_tuning():
    settings = load_config({})

    assert settings.embeddings == "builtin"
    assert (settings.embeddings_url, settings.embeddings_model, settings.embeddings_api_key) == (None, None, None)
    assert settings.embedding_poll_seconds == 0.2
    assert (settings.embedding_batch, settings.embedding_threads) == (32, 1)


def test_openai_embeddings_take_url_model_and_key():
    settings = load_config({**OPENAI, "EMBEDDINGS": " OpenAI ", "EMBEDDINGS_URL": "http://localhost:11434/v1/",
                            "EMBEDDINGS_API_KEY": "sk-test"})

    assert settings.embeddings == "openai"
    assert settings.embeddings_url == "http://localhost:11434/v1"  # the trailing slash is dropped
    assert settings.embeddings_model == "text-embedding-3-small"
    assert settings.embeddings_api_key == "sk-test"


def test_a_blank_embeddings_api_key_means_none():
    assert load_config({**OPENAI, "EMBEDDINGS_API_KEY": "   "}).embeddings_api_key is None


def test_embeddings_can_be_turned_off_and_the_worker_tuned():
    settings = load_config({"EMBEDDINGS": "off", "EMBEDDING_POLL_SECONDS": "0", "EMBEDDING_BATCH": "256",
                            "EMBEDDING_THREADS": "4"})

    assert settings.embeddings == "off"
    assert settings.embedding_poll_seconds == 0.0  # 0 turns the worker off
    assert (settings.embedding_batch, settings.embedding_threads) == (256, 4)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"EMBEDDINGS": "sentence-transformers"}, "EMBEDDINGS"),
        ({"EMBEDDINGS": "openai"}, "EMBEDDINGS_URL"),
        ({**OPENAI, "EMBEDDINGS_URL": "   "}, "EMBEDDINGS_URL"),
        ({"EMBEDDINGS": "openai", "EMBEDDINGS_MODEL": "text-embedding-3-small"}, "EMBEDDINGS_URL"),
        ({**OPENAI, "EMBEDDINGS_MODEL": ""}, "EMBEDDINGS_MODEL"),
        ({"EMBEDDINGS": "openai", "EMBEDDINGS_URL": "https://api.openai.com/v1"}, "EMBEDDINGS_MODEL"),
        ({**OPENAI, "EMBEDDINGS_URL": "api.openai.com/v1"}, "EMBEDDINGS_URL"),
        ({**OPENAI, "EMBEDDINGS_URL": "ftp://embeddings.example.com"}, "EMBEDDINGS_URL"),
        ({**OPENAI, "EMBEDDINGS_URL": "http://localhost:notaport/v1"}, "EMBEDDINGS_URL"),
        ({"EMBEDDING_BATCH": "0"}, "EMBEDDING_BATCH"),
        ({"EMBEDDING_BATCH": "257"}, "EMBEDDING_BATCH"),
        ({"EMBEDDING_BATCH": "many"}, "EMBEDDING_BATCH"),
        ({"EMBEDDING_POLL_SECONDS": "-1"}, "EMBEDDING_POLL_SECONDS"),
        ({"EMBEDDING_POLL_SECONDS": "nan"}, "EMBEDDING_POLL_SECONDS"),
        ({"EMBEDDING_THREADS": "0"}, "EMBEDDING_THREADS"),
        ({"EMBEDDING_THREADS": "17"}, "EMBEDDING_THREADS"),
    ],
    ids=["unknown-kind", "openai-without-url-or-model", "openai-blank-url", "openai-without-url",
         "openai-blank-model", "openai-without-model", "url-without-scheme", "url-not-http", "url-bad-port",
         "batch-zero", "batch-too-big", "batch-not-a-number", "poll-negative", "poll-nan", "threads-zero",
         "threads-too-many"],
)
def test_a_bad_embedding_setting_is_refused_naming_the_variable(env, name):
    with pytest.raises(ConfigError) as caught:
        load_config(env)

    assert caught.value.name == name
    message = str(caught.value)
    assert message.startswith(f"invalid configuration: {name} ")
    assert "\n" not in message


def test_openai_without_a_url_says_what_to_set():
    with pytest.raises(ConfigError, match="must be set with EMBEDDINGS=openai"):
        load_config({"EMBEDDINGS": "openai", "EMBEDDINGS_MODEL": "m"})
    with pytest.raises(ConfigError, match="must be set with EMBEDDINGS=openai"):
        load_config({"EMBEDDINGS": "openai", "EMBEDDINGS_URL": "https://api.openai.com/v1"})


def test_a_bad_embedding_setting_stops_the_app_with_one_line_naming_it(capsys):
    with pytest.raises(SystemExit) as stopped:
        create_app({**BASE_CONFIG, "EMBEDDINGS": "openai", "EMBEDDINGS_URL": "", "EMBEDDINGS_MODEL": "m"})

    assert stopped.value.code == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "EMBEDDINGS_URL" in err and "Traceback" not in err
