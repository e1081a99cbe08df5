"""The Procfile, docker-compose.yml, Dockerfile and .env.example agree with each other and with the code.

No docker engine runs here, so these are read and checked rather than run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from cognition_service.config import load_config as cognition_config
from core_app.config import load_config as core_config
from memory_service.config import load_config as memory_config

REPO = Path(__file__).resolve().parents[1]
APPS = {"web": "core_app.app:create_app()", "memory": "memory_service.app:create_app()",
        "cognition": "cognition_service.app:create_app()"}
PORT_VARIABLES = {"web": "PORT", "memory": "MEMORY_SERVICE_PORT", "cognition": "COGNITION_SERVICE_PORT"}
COMPOSE_NAMES = {"web": "core", "memory": "memory", "cognition": "cognition"}
MODULES = {"web": "core_app", "memory": "memory_service", "cognition": "cognition_service"}


def default_ports() -> dict[str, int]:
    env = {"JWT_SECRET": "x" * 32}
    return {"web": core_config(env).port, "memory": memory_config(env).port, "cognition": cognition_config(env).port}


def procfile() -> dict[str, list[str]]:
    entries = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        entries[name.strip()] = shlex.split(command)
    return entries


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def settings_read_by_code() -> set[str]:
    names = set()
    for path in [*REPO.glob("*/config.py"), REPO / "common" / "transport.py", REPO / "gunicorn.conf.py"]:
        names |= set(re.findall(r"""(?:env\.\w+|environ\.get)\(\s*["']([A-Z][A-Z0-9_]+)["']""", path.read_text()))
    return names


def test_procfile_runs_each_service_under_gunicorn_gevent_on_its_port():
    ports = default_ports()
    entries = procfile()
    assert set(entries) == set(APPS)
    for name, argv in entries.items():
        argv = [word for word in argv if word != "exec" and not re.match(r"^[A-Z_]+=", word)]
        assert "gunicorn" in argv and argv[argv.index("-c") + 1] == "gunicorn.conf.py", argv
        assert argv[-1] == APPS[name]
        bind = argv[argv.index("-b") + 1]
        assert bind == f"${{HOST:-127.0.0.1}}:${{{PORT_VARIABLES[name]}:-{ports[name]}}}", bind
    assert "CORTEX_DISTRIBUTED_MODE=true" in (REPO / "Procfile").read_text().splitlines()[0]


def test_gunicorn_config_suits_long_streams():
    namespace: dict = {}
    exec(compile((REPO / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    assert namespace["worker_class"] == "common.gunicorn_worker.JsonErrorGeventWorker"
    from gunicorn.workers.ggevent import GeventWorker

    from common.gunicorn_worker import JsonErrorGeventWorker

    assert issubclass(JsonErrorGeventWorker, GeventWorker)
    assert namespace["graceful_timeout"] < 5  # honcho kills 5 s after SIGTERM
    assert namespace["worker_connections"] >= 10_000
    assert "preload_app" not in namespace or namespace["preload_app"] is False
    assert callable(namespace["post_worker_init"])


def test_compose_services_agree_with_procfile_and_config():
    ports = default_ports()
    services = compose()["services"]
    assert set(services) == set(COMPOSE_NAMES.values())
    for name, service_name in COMPOSE_NAMES.items():
        service = services[service_name]
        assert service["command"] == ["python", "-m", MODULES[name]]
        env = service["environment"]
        assert env["HOST"] == "0.0.0.0"
        assert str(env.get(PORT_VARIABLES[name], ports[name])) == str(ports[name])
        assert f":{ports[name]}/health" in " ".join(service["healthcheck"]["test"])
        assert env["SERVICE_TOKEN"].startswith("${SERVICE_TOKEN")
        assert env["MEMORY_SERVICE_URL"] == f"http://memory:{ports['memory']}"
        assert env["COGNITION_SERVICE_URL"] == f"http://cognition:{ports['cognition']}"
    core = services["core"]
    assert core["environment"]["CORTEX_DISTRIBUTED_MODE"] == "true"
    assert core["environment"]["JWT_SECRET"].startswith("${JWT_SECRET")
    assert core["ports"] == [f"${{CORE_PUBLISHED_PORT:-{ports['web']}}}:{ports['web']}"]
    assert "ports" not in services["memory"] and "ports" not in services["cognition"]
    for dependent, needs in (("cognition", ["memory"]), ("core", ["memory", "cognition"])):
        assert {k: v["condition"] for k, v in services[dependent]["depends_on"].items()} == {
            n: "service_healthy" for n in needs}


def test_compose_keeps_the_database_on_a_named_volume():
    spec = compose()
    memory = spec["services"]["memory"]
    volume, mount = memory["volumes"][0].split(":")
    assert volume in spec["volumes"]
    assert memory["environment"]["DATABASE_URL"] == f"sqlite:///{mount}/cortex-memory.db"


def test_dockerfile_is_slim_and_non_root():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "pip install -r requirements.txt" in text
    assert re.search(r"^USER (?!root)\w+", text, re.M)


@pytest.mark.parametrize("name", sorted(settings_read_by_code()))
def test_every_setting_is_documented_in_env_example(name):
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M))
    assert name in documented
