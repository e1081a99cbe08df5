"""What an origin in a CORS setting may be, and the pattern Flask-CORS matches it with."""

from __future__ import annotations

import pytest

from common.config import ConfigError
from common.server.cors import NonCanonicalAddress, canonical_origin, exact_origin, parse_origins


@pytest.mark.parametrize(("entry", "origin"), [
    ("https://chat.example.com", "https://chat.example.com"),
    ("  HTTPS://Chat.Example.COM/ ", "https://chat.example.com"),
    ("https://chat.example.com:443", "https://chat.example.com"),  # browsers omit the default port
    ("http://chat.example.com:80", "http://chat.example.com"),
    ("http://chat.example.com:443", "http://chat.example.com:443"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://[::1]:3000", "http://[::1]:3000"),
    ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
    ("http://chat_web:8000", "http://chat_web:8000"),  # a compose service name
    ("http://[0:0::1]:8080", "http://[::1]:8080"),  # IPv6 compressed, as browsers write it
    ("http://[2001:DB8:0:0:1:0:0:1]", "http://[2001:db8::1:0:0:1]"),
    ("http://[::FFFF:127.0.0.1]", "http://[::ffff:7f00:1]"),
    ("http://0.0.0.0:8080", "http://0.0.0.0:8080"),
    ("http://10.255.0.1", "http://10.255.0.1"),
    ("http://app.example.com.", "http://app.example.com."),  # a domain keeps its trailing dot in Origin
])
def test_origins_are_written_as_browsers_send_them(entry, origin):
    assert canonical_origin(entry) == origin


@pytest.mark.parametrize("entry", [
    "*", "null", "chat.example.com", "//chat.example.com", "https://", "https://*.example.com", "http://localhost:*",
    "https://chat.example.com/app", "https://chat.example.com?x", "https://chat.example.com#x",
    "ftp://chat.example.com", "file:///tmp/page.html", "https://user:pw@chat.example.com", "http://localhost:99999",
    "http://localhost:port", "https://bücher.example", "https://chat example.com",
    "http://[127.0.0.1]", "http://[::g]", "http://[1::2::3]", "http://[fe80::1%25eth0]", "http://::1",
])
def test_anything_else_is_not_an_origin(entry):
    assert canonical_origin(entry) is None


@pytest.mark.parametrize(("entry", "written"), [
    ("http://127.1", "as 127.0.0.1"),
    ("http://0x7f.0.0.1:8080", "as 127.0.0.1"),
    ("http://0177.0.0.1", "as 127.0.0.1"),
    ("http://127.000.0.1", "as 127.0.0.1"),
    ("http://2130706433", "as 127.0.0.1"),
    ("http://127.0.0.1.", "as 127.0.0.1"),
    ("http://256.0.0.1", "is not an address"),
    ("http://1.2.3.4.5", "is not an address"),
    ("http://app.example.123", "is not an address"),  # ends in a number: browsers refuse such a URL
])
def test_an_ipv4_address_in_a_form_browsers_never_send_is_refused_with_advice(entry, written):
    with pytest.raises(NonCanonicalAddress, match=written):
        canonical_origin(entry)
    with pytest.raises(ConfigError) as caught:
        parse_origins("CORS_ALLOWED_ORIGINS", f"https://a.example, {entry}")
    message = str(caught.value)
    assert caught.value.name == "CORS_ALLOWED_ORIGINS" and "IPv4" in message and written in message
    assert repr(entry) in message and "\n" not in message


def test_a_setting_is_a_list_of_distinct_origins():
    assert parse_origins("X", "https://a.example, https://A.example:443/,,http://b.example:8080") == (
        "https://a.example", "http://b.example:8080")
    assert parse_origins("X", None) == parse_origins("X", " ") == ()


def test_a_bad_entry_names_the_setting_and_the_entry():
    with pytest.raises(ConfigError) as caught:
        parse_origins("CORS_ALLOWED_ORIGINS", "https://a.example, https://b.example/path")
    assert caught.value.name == "CORS_ALLOWED_ORIGINS"
    assert "'https://b.example/path'" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("origin", "matches"), [
    ("http://[::1]:8080", True),  # brackets: a regular expression's character class, if taken as one
    ("HTTP://[::1]:8080", True),
    ("http://[::1]:80801", False),
    ("http://:", False),
    ("http://1", False),
])
def test_an_exact_origin_matches_itself_only(origin, matches):
    assert bool(exact_origin("http://[::1]:8080").match(origin)) is matches
