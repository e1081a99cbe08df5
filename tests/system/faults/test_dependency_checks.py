"""What a caller checks about the service it depends on, against real processes (issue 11):

- item 17: Memory serves HTTPS with a certificate from a private CA made here, and requires client
  certificates from it; a Cognition given that CA (CLIENT_CA_BUNDLE) and a client certificate works end to
  end, one given another CA reports `tls_error` and answers 503 saying the certificate is not trusted;
- item 20: a Core whose MEMORY_SERVICE_URL points at a Cognition reports memory as `wrong_service` and
  answers a login with a clear 503, not `404 unknown tool`;
- item 3: a wrong-password login flood that fills the Core's pool to Memory is answered 503 `busy` with
  Retry-After, and never opens the circuit."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import trustme

from tests.system.support.harness import ServiceProcess, free_port
from tests.system.support.polling import wait_until
from tests.system.support.stack import GENEROUS_AUTH_LIMITS, JWT_SECRET

TOKEN = "checks-token-0001"
FAST = {"SERVICE_TOKEN": TOKEN, "HEALTH_INTERVAL_SECONDS": "0.5", "BREAKER_RESET_SECONDS": "1",
        "GUNICORN_ACCESS_LOG": ""}
FLOOD = 32


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Two private CAs: Memory's certificate and the clients' certificate come from the first."""
    tmp = tmp_path_factory.mktemp("pki")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    other.cert_pem.write_to_path(str(tmp / "other-ca.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(str(tmp / "memory.pem"))
    client = ca.issue_cert("cortex-client")
    client.cert_chain_pems[0].write_to_path(str(tmp / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp / "client.key"))
    return tmp


@pytest.fixture(scope="module")
def services(tmp_path_factory, pki):
    tmp = tmp_path_factory.mktemp("checks")
    memory_port = free_port()
    memory_url = f"https://127.0.0.1:{memory_port}"
    trusting = {"CLIENT_CA_BUNDLE": str(pki / "ca.pem"), "CLIENT_CERT": str(pki / "client.pem"),
                "CLIENT_KEY": str(pki / "client.key")}
    memory = ServiceProcess("memory_service.app:create_app()", {
        **FAST, "DATABASE_URL": f"sqlite:///{tmp}/m.db", "GUNICORN_CERTFILE": str(pki / "memory.pem"),
        "GUNICORN_KEYFILE": str(pki / "memory.pem"), "GUNICORN_CA_CERTS": str(pki / "ca.pem")},
        tmp / "memory.log", port=memory_port)
    cognition = ServiceProcess("cognition_service.app:create_app()", {
        **FAST, **trusting, "MEMORY_SERVICE_URL": memory_url}, tmp / "cognition.log")
    distrusting = ServiceProcess("cognition_service.app:create_app()", {
        **FAST, **trusting, "CLIENT_CA_BUNDLE": str(pki / "other-ca.pem"), "MEMORY_SERVICE_URL": memory_url},
        tmp / "cognition-other-ca.log")
    # The flood test asks the pool, not the sign-in rate limits, to refuse: those are lifted here.
    core = {**FAST, **GENEROUS_AUTH_LIMITS, "CORTEX_DISTRIBUTED_MODE": "true", "JWT_SECRET": JWT_SECRET,
            "COGNITION_SERVICE_URL": cognition.url}
    misdirected = ServiceProcess("core_app.app:create_app()", {**core, "MEMORY_SERVICE_URL": cognition.url},
                                 tmp / "core-misdirected.log")
    # One pooled connection to Memory, and no more than 0.3 s of waiting for it.
    crowded = ServiceProcess("core_app.app:create_app()", {
        **core, **trusting, "MEMORY_SERVICE_URL": memory_url, "CLIENT_POOL_SIZE": "1",
        "CLIENT_CONNECT_TIMEOUT": "0.3"}, tmp / "core-crowded.log")
    everyone = [memory, cognition, distrusting, misdirected, crowded]
    try:
        for proc in everyone:
            proc.start(wait=False)
        wait_until(lambda: https_health(memory_url, pki) == 200, 20, message=f"Memory's /health at {memory_url}")
        for proc in everyone[1:]:
            proc.wait_healthy()
        yield {"memory_url": memory_url, "cognition": cognition, "distrusting": distrusting,
               "misdirected": misdirected, "crowded": crowded}
    finally:
        for proc in reversed(everyone):
            proc.stop()


def https_health(url: str, pki) -> int | None:
    try:
        return requests.get(f"{url}/health", verify=str(pki / "ca.pem"),
                            cert=(str(pki / "client.pem"), str(pki / "client.key")), timeout=2).status_code
    except requests.RequestException:
        return None


def dependency(proc: ServiceProcess, name: str) -> dict:
    return requests.get(f"{proc.url}/health", timeout=5).json()["dependencies"][name]


def get_context(proc: ServiceProcess, user_id: str) -> requests.Response:
    return requests.post(f"{proc.url}/tool/get_context", json={"arguments": {"user_id": user_id, "query": "key"}},
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def register(core: ServiceProcess, password: str) -> dict:
    email = f"user-{uuid.uuid4().hex[:8]}@example.com"
    registered = requests.post(f"{core.url}/v1/auth/register", json={"email": email, "name": "User",
                                                                      "password": password}, timeout=10)
    assert registered.status_code == 201, registered.text
    return {"email": email, **registered.json()}


# --- item 17: TLS with a private CA --------------------------------------------------------------


def test_memory_over_https_needs_a_client_certificate(services, pki):
    with pytest.raises(requests.exceptions.ConnectionError):  # an SSLError, or a reset during the handshake
        requests.get(f"{services['memory_url']}/health", verify=str(pki / "ca.pem"), timeout=5)


def test_clients_that_trust_the_private_ca_work_end_to_end(services):
    user = register(services["crowded"], "a-good-password-1")  # the Core stores it in Memory, over TLS
    cognition = services["cognition"]
    assert dependency(cognition, "memory") == {"status": "up", "circuit": "closed"}
    answer = get_context(cognition, user["user"]["id"])  # Cognition reads that user's history, over TLS
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["context"] == []


def test_a_client_that_trusts_another_ca_says_so(services):
    distrusting = services["distrusting"]
    wait_until(lambda: dependency(distrusting, "memory")["status"] == "tls_error", 10,
               message="the other-CA Cognition to report memory's TLS error")
    answer = get_context(distrusting, "nobody")
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "unavailable" and error["details"]["service"] == "memory"
    assert "memory: TLS certificate not trusted (" in error["message"]
    log = distrusting.log_path.read_text(errors="replace")
    assert f"dependency memory at {services['memory_url']}/health is tls_error" in log


# --- item 20: a URL that points at the wrong service ---------------------------------------------


def test_a_core_pointed_at_the_wrong_service_says_so(services):
    core, cognition = services["misdirected"], services["cognition"]
    wait_until(lambda: dependency(core, "memory")["status"] == "wrong_service", 10,
               message="the Core to report memory as the wrong service")
    body = requests.get(f"{core.url}/health", timeout=5).json()
    assert body["status"] == "degraded"
    assert body["dependencies"] == {"memory": {"status": "wrong_service", "circuit": "open"},
                                    "cognition": {"status": "up", "circuit": "closed"}}
    for _ in range(3):  # before and after the breaker's reset timeout: no trial call reaches the wrong service
        login = requests.post(f"{core.url}/v1/auth/login", json={"email": "a@example.com", "password": "whatever1"},
                              timeout=10)
        assert login.status_code == 503, login.text
        error = login.json()["error"]
        assert error["code"] == "unavailable" and error["details"]["service"] == "memory"
        assert "the service at memory's URL is the 'cognition' service" in error["message"]
    log = core.log_path.read_text(errors="replace")
    assert f"dependency memory at {cognition.url}/health is wrong_service" in log


# --- item 3 (part): local saturation is back-pressure --------------------------------------------


def test_a_login_flood_that_fills_the_pool_is_busy_not_a_memory_failure(services):
    core = services["crowded"]
    email = register(core, "a-good-password-1")["email"]

    def wrong_login(_: int) -> requests.Response:
        return requests.post(f"{core.url}/v1/auth/login", json={"email": email, "password": "wrong-password-1"},
                             timeout=30)

    with ThreadPoolExecutor(FLOOD) as pool:
        answers = list(pool.map(wrong_login, range(FLOOD)))
    codes = sorted((answer.status_code, answer.json()["error"]["code"]) for answer in answers)
    busy = [answer for answer in answers if answer.status_code == 503]
    assert busy, codes
    assert all(answer.json()["error"]["code"] == "busy" and answer.headers["Retry-After"] == "1"
               for answer in busy), codes
    assert {code for code in codes if code[0] != 503} <= {(401, "invalid_credentials"), (429, "too_many_requests")}
    assert dependency(core, "memory") == {"status": "up", "circuit": "closed"}
    login = requests.post(f"{core.url}/v1/auth/login", json={"email": email, "password": "a-good-password-1"},
                          timeout=10)
    assert login.status_code == 200, login.text
