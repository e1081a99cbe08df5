"""The Procfile, docker-compose.yml, deploy/ (nginx, honcho), Dockerfile and .env.example agree with each
other and with the code.

No docker engine runs here, so these are read and checked rather than run; tests/system/deploy runs the
nginx configuration itself.
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
from honcho.environ import expand_processes, parse

from cognition_service.config import load_config as cognition_config
from core_app.config import load_config as core_config
from memory_service.config import load_config as memory_config

REPO = Path(__file__).resolve().parents[1]
APPS = {"web": "core_app.app:create_app()", "memory": "memory_service.app:create_app()",
        "cognition": "cognition_service.app:create_app()"}
PORT_VARIABLES = {"web": "PORT", "memory": "MEMORY_SERVICE_PORT", "cognition": "COGNITION_SERVICE_PORT"}
COMPOSE_NAMES = {"web": "web", "memory": "memory", "cognition": "cognition"}
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
    # Each service's config.py, and the settings every service shares, read where they are used in `common`.
    for path in [*REPO.glob("*/config.py"), *REPO.glob("common/**/*.py"), REPO / "gunicorn.conf.py"]:
        pattern = r"""(?:env\.\w+|os\.environ\.get|whole_number)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
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
    assert set(services) == {*COMPOSE_NAMES.values(), "postgres", "redis", "proxy"}
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
    web = services["web"]
    assert web["environment"]["CORTEX_DISTRIBUTED_MODE"] == "true"
    assert web["environment"]["JWT_SECRET"].startswith("${JWT_SECRET")
    for dependent, needs in (("memory", ["postgres"]), ("cognition", ["memory"]),
                             ("web", ["memory", "cognition", "redis"]), ("proxy", ["web"])):
        assert {k: v["condition"] for k, v in services[dependent]["depends_on"].items()} == {
            n: "service_healthy" for n in needs}


def test_compose_publishes_only_the_proxy_so_web_scales():
    """`docker compose up --scale web=3`: a fixed host port or container name on `web` would make the
    second replica fail; clients reach every replica through nginx on 8000."""
    services = compose()["services"]
    assert [name for name, service in services.items() if "ports" in service] == ["proxy"]
    assert services["proxy"]["ports"] == [f"${{CORE_PUBLISHED_PORT:-{default_ports()['web']}}}:8000"]
    assert not any("container_name" in service for service in services.values())
    assert services["web"]["expose"] == [str(default_ports()["web"])]


def test_compose_engines_use_official_pinned_images_named_volumes_and_healthchecks():
    spec = compose()
    services = spec["services"]
    assert services["postgres"]["image"] == "postgres:16" and services["redis"]["image"] == "redis:7"
    # 1.28 or later: the first stable nginx with `resolve` on upstream servers (upstream-compose.conf).
    assert re.fullmatch(r"nginx:1\.(2[89]|[3-9][0-9])(\.[0-9]+)?-alpine", services["proxy"]["image"])
    for name, data_dir in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        volume, mount = services[name]["volumes"][0].split(":")
        assert volume in spec["volumes"] and mount == data_dir
    assert "--appendonly" in services["redis"]["command"]
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "http://127.0.0.1:8000/health" in services["proxy"]["healthcheck"]["test"]


def test_compose_points_memory_at_postgres_and_web_at_redis_behind_one_trusted_proxy():
    spec = compose()
    services = spec["services"]
    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert services["memory"]["environment"]["DATABASE_URL"] == (
        f"postgresql://{postgres['POSTGRES_USER']}:${{POSTGRES_PASSWORD}}@postgres:5432/{postgres['POSTGRES_DB']}")
    # An earlier deployment's SQLite file stays reachable on its named volume, for copying it over.
    assert services["memory"]["volumes"] == ["memory-data:/data"] and "memory-data" in spec["volumes"]
    web = services["web"]["environment"]
    assert web["REDIS_URL"] == "redis://redis:6379/0"
    assert web["RATELIMIT_STORAGE_URI"].startswith("redis://redis:6379/")
    assert web["TRUSTED_PROXIES"] == "1" and web["MAX_CONNECTIONS_PER_ADDRESS"] == "0"
    assert core_config({"JWT_SECRET": "x" * 32, "TRUSTED_PROXIES": web["TRUSTED_PROXIES"]}).trusted_proxies == 1


def nginx_directives(name: str) -> list[tuple[str, str]]:
    """(directive, arguments) of each simple directive in deploy/nginx/`name`, comments dropped."""
    text = re.sub(r"#[^\n]*", "", (REPO / "deploy" / "nginx" / name).read_text())
    return [(m.group(1), " ".join(m.group(2).split())) for m in re.finditer(r"([a-z_]+)\s+([^;{}]*);", text)]


def seconds(value: str) -> float:
    match = re.fullmatch(r"([0-9]+)(ms|s|m|h|d)?", value)
    assert match, value
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2) or "s"]


def test_compose_mounts_the_projects_nginx_files():
    volumes = compose()["services"]["proxy"]["volumes"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in volumes)
    assert mounts == {"./deploy/nginx/nginx.conf": "/etc/nginx/nginx.conf",
                      "./deploy/nginx/cortex.conf": "/etc/nginx/cortex.conf",
                      "./deploy/nginx/upstream-compose.conf": "/etc/nginx/upstream.conf"}
    assert all(volume.endswith(":ro") for volume in volumes)
    assert all((REPO / source).is_file() for source in mounts)
    main = nginx_directives("nginx.conf")
    assert ("include", "upstream.conf") in main and ("include", "cortex.conf") in main
    assert "daemon" not in dict(main)  # the image's command passes `daemon off`; twice is an error


def test_nginx_location_is_set_up_for_streams():
    listed = nginx_directives("cortex.conf")
    directives = dict(listed)
    assert [d for d in listed if d[0] == "listen"] == [("listen", "8000")]
    assert directives["proxy_pass"] == "http://cortex_web"
    assert directives["proxy_buffering"] == "off" and directives["proxy_cache"] == "off"
    assert directives["proxy_http_version"] == "1.1"
    for header in ('Connection ""', "X-Forwarded-For $proxy_add_x_forwarded_for", "Host $http_host"):
        assert ("proxy_set_header", header) in listed
    assert "proxy_ignore_headers" not in directives  # X-Accel-Buffering from the Core is honoured
    settings = core_config({"JWT_SECRET": "x" * 32})
    assert seconds(directives["proxy_read_timeout"]) > 4 * settings.heartbeat_seconds
    assert seconds(directives["proxy_send_timeout"]) > 4 * settings.heartbeat_seconds
    # Bodies up to the Core's own limit pass, so the Core answers a too-big one in its error shape.
    assert re.fullmatch(r"[0-9]+m", directives["client_max_body_size"])
    assert int(directives["client_max_body_size"][:-1]) << 20 > settings.max_body_bytes


def test_nginx_upstreams_keep_connections_alive_below_gunicorns_keepalive():
    namespace: dict = {}
    exec(compile((REPO / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    for name in ("upstream.conf", "upstream-compose.conf"):
        assert re.search(r"^upstream cortex_web \{", (REPO / "deploy" / "nginx" / name).read_text(), re.M)
        directives = dict(nginx_directives(name))
        assert int(directives["keepalive"]) > 0
        assert seconds(directives["keepalive_timeout"]) < namespace["keepalive"], name
    compose_upstream = nginx_directives("upstream-compose.conf")
    assert ("server", "web:8000 resolve") in compose_upstream  # every replica, re-resolved
    assert dict(compose_upstream)["resolver"].startswith("127.0.0.11 ")  # Docker's embedded DNS
    assert "zone" in dict(compose_upstream)


def test_honcho_env_puts_two_web_processes_where_the_local_upstream_expects_them():
    """`honcho -e .env,deploy/honcho.env start -c web=2,memory=2` as honcho 2.0.0 expands it: web.N gets the
    base PORT + N - 1 (nginx's upstream.conf); every memory.N binds MEMORY_SERVICE_PORT, hence reuse-port."""
    env = parse((REPO / ".env").read_text() + "\n" + (REPO / "deploy" / "honcho.env").read_text())
    assert env["DATABASE_URL"].startswith("postgresql://") and env["REDIS_URL"].startswith("redis://")
    assert env["TRUSTED_PROXIES"] == "1" and "--reuse-port" in shlex.split(env["GUNICORN_CMD_ARGS"])
    expanded = expand_processes({name: " ".join(argv) for name, argv in procfile().items()},
                                concurrency={"web": 2, "memory": 2}, env=env, port=5000)
    web_ports = [f"127.0.0.1:{p.env['PORT']}" for p in expanded if p.name.startswith("web.")]
    assert web_ports == [args for name, args in nginx_directives("upstream.conf") if name == "server"]
    assert [p.name for p in expanded if p.name.startswith("memory.")] == ["memory.1", "memory.2"]
    memory = procfile()["memory"]
    assert memory[memory.index("-b") + 1].endswith("${MEMORY_SERVICE_PORT:-9000}")


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
