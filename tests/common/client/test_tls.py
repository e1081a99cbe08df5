"""The client's TLS settings (CLIENT_CA_BUNDLE, CLIENT_CERT, CLIENT_KEY): checked once at start."""

from __future__ import annotations

import pytest
import trustme

from common.client import ClientSettings, ClientTLS
from common.config import ConfigError, Env


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    client = ca.issue_cert("core.internal")
    client.cert_chain_pems[0].write_to_path(str(tmp / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp / "client.key"))
    (tmp / "junk.pem").write_text("not a certificate\n")
    return tmp


def test_no_setting_means_the_systems_cas():
    tls = ClientSettings.from_env(Env({})).tls
    assert (tls.verify, tls.client_cert) == (True, None)


def test_a_bundle_and_a_client_certificate(files):
    tls = ClientTLS.from_env(Env({"CLIENT_CA_BUNDLE": str(files / "ca.pem"), "CLIENT_CERT": str(files / "client.pem"),
                                  "CLIENT_KEY": str(files / "client.key")}))
    assert tls.verify == str(files / "ca.pem")
    assert tls.client_cert == (str(files / "client.pem"), str(files / "client.key"))


@pytest.mark.parametrize(("values", "name"), [
    ({"CLIENT_CA_BUNDLE": "missing.pem"}, "CLIENT_CA_BUNDLE"),
    ({"CLIENT_CA_BUNDLE": "junk.pem"}, "CLIENT_CA_BUNDLE"),
    ({"CLIENT_KEY": "client.key"}, "CLIENT_KEY"),
    ({"CLIENT_CERT": "junk.pem"}, "CLIENT_CERT"),
    ({"CLIENT_CERT": "client.pem", "CLIENT_KEY": "ca.pem"}, "CLIENT_CERT/CLIENT_KEY"),
], ids=["missing-bundle", "bundle-not-pem", "key-without-cert", "cert-not-pem", "key-not-a-key"])
def test_a_bad_setting_stops_the_start_naming_it(files, values, name):
    with pytest.raises(ConfigError) as excinfo:
        ClientTLS.from_env(Env({key: str(files / value) for key, value in values.items()}))
    assert str(excinfo.value).startswith(f"invalid configuration: {name} ")
    assert "\n" not in str(excinfo.value)
