"""What a new password must be (NIST SP 800-63B) and how e-mail addresses and passwords are compared,
through the Core App's client API and the embedded Memory."""

from __future__ import annotations

import pytest

from tests.core_app.accounts import PASSWORD, unique_email
from tests.core_app.api_calls import assert_error


def register(client, email: str, password: str = PASSWORD, name: str = "Jo"):
    return client.post("/v1/auth/register", json={"email": email, "name": name, "password": password})


def login(client, email: str, password: str = PASSWORD):
    return client.post("/v1/auth/login", json={"email": email, "password": password})


@pytest.mark.parametrize("password", [
    "password", "12345678", "PassWord", "iloveyou", "qwertyuiop", "ｐａｓｓｗｏｒｄ",  # common, in any case/width
    "        ", "\t\t\t\t\t\t\t\t", "\u3000" * 8,  # whitespace alone
    "seven77", "cafe\u0301s!!",  # 7 characters (the last one 8 code points until NFKC composes é)
])
def test_register_refuses_weak_passwords(client, password):
    error = assert_error(register(client, unique_email("Weak"), password), 400, "invalid_arguments")

    assert [item["field"] for item in error["details"]["errors"]] == ["password"]


def test_register_refuses_the_email_or_name_as_password(client):
    email = unique_email("Kim")
    assert_error(register(client, email, email.upper()), 400, "invalid_arguments")
    assert_error(register(client, email, email.split("@")[0]), 400, "invalid_arguments")
    assert_error(register(client, email, "Kimberly Jones", name="Kimberly Jones"), 400, "invalid_arguments")


@pytest.mark.parametrize("password", [
    "password-123", "correct horse battery", "bench-password", "ninechars",  # no composition rules
    "pässwörd über alles", "密码是一个秘密的东西", "x" * 256, "  padded but long  ",
])
def test_register_accepts_any_long_enough_uncommon_password(client, password):
    email = unique_email("Lee")

    assert register(client, email, password).status_code == 201
    assert login(client, email, password).status_code == 200


def test_passwords_are_compared_after_nfkc(client):
    email = unique_email("Max")
    assert register(client, email, "ﬁsh and chips ①").status_code == 201  # ligature, circled digit

    assert login(client, email, "fish and chips 1").status_code == 200
    assert login(client, email, "ﬁsh and chips ①").status_code == 200


def test_look_alike_addresses_are_one_account(client):
    local = unique_email("Noa").split("@")[0]
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in local)
    created = register(client, f"{fullwidth}＠Example.COM")
    assert created.status_code == 201
    assert created.get_json()["user"]["email"] == f"{local}@example.com"

    for spelling in (f"{local}@example.com", f"{local.upper()}@EXAMPLE.com", f"{fullwidth}@example.com"):
        assert_error(register(client, spelling), 409, "conflict")
        assert login(client, spelling).status_code == 200


def test_unicode_case_variants_are_one_account(client):
    # SQLite's NOCASE folds ASCII only: Ö and ö were two accounts before addresses were case-folded.
    local = unique_email("Öz").split("@")[0]
    assert register(client, f"{local.upper()}@example.com").status_code == 201

    assert_error(register(client, f"{local}@example.com"), 409, "conflict")
    assert login(client, f"{local}@example.com").status_code == 200


def test_an_oversized_address_is_refused_without_normalising_it(client, monkeypatch):
    # NFKC expands "ﷺ" 18-fold: normalising 150,000 of them took half a second of the worker's time.
    from common import models
    from core_app import limits

    def must_not_run(value: str) -> str:
        # Not a ValueError, which pydantic would take as an ordinary refusal.
        raise RuntimeError(f"normalised {len(value)} characters")

    monkeypatch.setattr(models, "normalize_email", must_not_run)
    monkeypatch.setattr(limits, "normalize_email", must_not_run)
    huge = "ﷺ" * 150_000 + "@example.com"

    assert_error(login(client, huge, "x"), 400, "invalid_arguments")
    assert_error(register(client, huge), 400, "invalid_arguments")
