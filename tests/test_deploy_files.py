"""The Procfile, docker-compose.yml, Dockerfile and .env.example agree with each other and with the code.

No docker engine runs here, so these are read and checked rather than run.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shlex
import sys
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
# What `pip install -r requirements.txt` must be enough for: the services, the tests, and the scripts the
# tests run. scripts/bench.py is a developer tool (requirements-dev.txt) and is left out on purpose.
RUNTIME_CODE = ["common", "core_app", "memory_service", "cognition_service", "tests", "gunicorn.conf.py",
                "scripts/chat.py", "scripts/run_distributed.py"]


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
    for path in [*REPO.glob("*/config.py"), REPO / "common" / "client" / "transport.py", REPO / "gunicorn.conf.py"]:
        pattern = r"""(?:env\.\w+|environ\.get|whole_number)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
        names |= set(re.findall(pattern, path.read_text()))
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
    assert namespace["worker_class"] == "common.serving.worker.JsonErrorGeventWorker"
    from gunicorn.workers.ggevent import GeventWorker

    from common.serving.worker import JsonErrorGeventWorker

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


def requirement_names(path: Path) -> set[str]:
    """The distributions a requirements file names itself (not through `-r`), normalised as pip does."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", line).group()).lower())
    return names


def imported_top_level_modules() -> dict[str, str]:
    """Every top-level module imported anywhere in RUNTIME_CODE, with one file that imports it."""
    found: dict[str, str] = {}
    for entry in RUNTIME_CODE:
        path = REPO / entry
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            for node in ast.walk(ast.parse(source.read_text(), str(source))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.partition(".")[0], str(source.relative_to(REPO)))
    return found


def test_requirements_txt_alone_provides_every_third_party_import():
    """The README installs requirements.txt and then runs the tests: nothing they import may come only
    from requirements-dev.txt (the MCP SDK once did, and a fresh install could not run the suite)."""
    first_party = {path.name for path in REPO.iterdir() if (path / "__init__.py").exists()}
    distributions = importlib.metadata.packages_distributions()
    required = requirement_names(REPO / "requirements.txt")
    missing = []
    for module, where in sorted(imported_top_level_modules().items()):
        if module in sys.stdlib_module_names or module in first_party or module == "__future__":
            continue
        provided_by = {re.sub(r"[-_.]+", "-", name).lower() for name in distributions.get(module, [])}
        if not provided_by & required:
            missing.append(f"{module} (imported by {where}, from {sorted(provided_by) or 'nothing installed'})")
    assert not missing, f"not in requirements.txt: {missing}"


def test_requirements_dev_txt_adds_only_tools():
    """The development file builds on requirements.txt and adds lint, type and benchmark tools only."""
    assert "-r requirements.txt" in (REPO / "requirements-dev.txt").read_text().splitlines()
    added = requirement_names(REPO / "requirements-dev.txt")
    assert added and not added & requirement_names(REPO / "requirements.txt")
    assert added <= {"ruff", "mypy", "matplotlib"}, added
