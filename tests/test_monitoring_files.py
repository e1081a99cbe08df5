"""The monitoring files agree with the code: the alerting rules, their unit tests, the scrape configuration
and the compose profile in deploy/prometheus, the Grafana dashboard and docs/OPERATIONS.md name only metrics
common/metrics.py defines, with their labels; promtool finds the Prometheus files valid and the rules firing
as their unit tests say; the project's nginx refuses /metrics.

promtool comes with Debian's `prometheus` package (.ci/run installs it): without it the promtool tests are
skipped with the reason, and fail under CORTEX_REQUIRE_BACKENDS=1, as for the engines.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from cognition_service.config import load_config as cognition_config
from common import metrics
from core_app.config import load_config as core_config
from memory_service.config import load_config as memory_config
from tests.engines import required
from tests.system.deploy.nginx import Nginx

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERTS_TEST = PROMETHEUS / "alerts_test.yml"
CONFIG = PROMETHEUS / "prometheus.yml"
MONITORING_COMPOSE = PROMETHEUS / "compose.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "cortex-dashboard.json"
OPERATIONS = REPO / "docs" / "OPERATIONS.md"

# Figures read at scrape time rather than defined in common/metrics.py: Memory registers the database's
# size with `add_live_metrics`. Name: (type, labels).
SCRAPE_TIME: dict[str, tuple[str, tuple[str, ...]]] = {"cortex_db_size_bytes": ("gauge", ())}
# The series a scrape returns under gunicorn (multiprocess mode): no `_created`, which only a single process
# without PROMETHEUS_MULTIPROC_DIR adds, so nothing may rely on it.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
TARGET_LABELS = {"job", "instance"}  # what Prometheus adds to every series it scrapes
COMPOSE_SERVICES = {"core": "web", "memory": "memory", "cognition": "cognition"}
METRIC_NAME = re.compile(r"\bcortex_[a-z_]+\b")


# --- what the services expose ----------------------------------------------------------------------------

def defined_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every metric the services export, by name (as defined: a counter without `_total`): type, labels."""
    found = dict(SCRAPE_TIME)
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            (described,) = value.describe()
            found[described.name] = (described.type, tuple(value._labelnames))
    return found


def exposed_series() -> dict[str, set[str]]:
    """Every series name a scrape can return (`cortex_http_requests_total`, `..._bucket`), with its labels."""
    series = {}
    for name, (kind, labels) in defined_metrics().items():
        for suffix in SUFFIXES[kind]:
            series[name + suffix] = set(labels) | ({"le"} if suffix == "_bucket" else set())
    return series


def names_in(text: str) -> set[str]:
    return set(METRIC_NAME.findall(text))


# --- the files -------------------------------------------------------------------------------------------

def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def unit_tests() -> list[dict]:
    return load_yaml(ALERTS_TEST)["tests"]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_targets() -> Iterator[tuple[dict, dict]]:
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def scrape_jobs() -> dict[str, dict]:
    return {job["job_name"]: job for job in load_yaml(CONFIG)["scrape_configs"]}


def default_ports() -> dict[str, int]:
    env = {"JWT_SECRET": "x" * 32}
    return {"core": core_config(env).port, "memory": memory_config(env).port, "cognition": cognition_config(env).port}


def promtool() -> str:
    """The promtool program; skipped with the reason when it is missing (a failure under
    CORTEX_REQUIRE_BACKENDS=1: .ci/run installs it)."""
    found = shutil.which("promtool")
    if found:
        return found
    reason = "promtool is not installed (apt-get install prometheus)"
    if required():
        pytest.fail(f"{reason} (CORTEX_REQUIRE_BACKENDS=1: it is required here)", pytrace=False)
    pytest.skip(reason)


def run_promtool(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess:
    done = subprocess.run([promtool(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"
    return done


# --- alerting rules --------------------------------------------------------------------------------------

def test_promtool_finds_the_alerting_rules_valid():
    done = run_promtool("check", "rules", ALERTS.relative_to(REPO))
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_each_alert_fires_and_stays_quiet_as_its_unit_tests_say():
    done = run_promtool("test", "rules", ALERTS_TEST.relative_to(REPO))
    assert "SUCCESS" in done.stdout and "FAILED" not in done.stdout


def test_every_alert_has_unit_tests_where_it_fires_and_where_it_does_not():
    names = {rule["alert"] for rule in alert_rules()}
    assert names >= {"CortexCircuitOpen", "CortexHighErrorRate", "CortexRepliesFailing", "CortexReplyFirstTokenSlow",
                     "CortexStreamsNearLimit", "CortexRateLimitRefusalsSpiking", "CortexDependencyDown",
                     "CortexTargetDown", "CortexTargetMissing"}
    cases = [case for test in unit_tests() for case in test["alert_rule_test"]]
    fires = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert fires == names, f"never shown firing: {names - fires}"
    assert quiet == names, f"never shown quiet: {names - quiet}"


def test_every_alert_says_how_bad_it_is_and_where_to_read_what_to_do():
    headings = set(re.findall(r"^### (\w+)$", OPERATIONS.read_text(), re.M))
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule.get("for"), f"{name} fires on a single evaluation"
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, name
        assert annotations["runbook"] == f"docs/OPERATIONS.md#{name.lower()}"
        assert name in headings, f"docs/OPERATIONS.md has no section '### {name}'"
        assert f'docs/OPERATIONS.md, "{name}"' in annotations["description"]


def test_the_alerts_watch_the_jobs_prometheus_scrapes():
    jobs = set(scrape_jobs())
    assert jobs == set(COMPOSE_SERVICES)
    named = set()
    for rule in alert_rules():
        for operator, value in re.findall(r'\bjob\s*(=~|=)\s*"([^"]*)"', rule["expr"]):
            named |= set(value.split("|")) if operator == "=~" else {value}
    assert named and named <= jobs, named - jobs


# --- metric names and labels -----------------------------------------------------------------------------

def test_every_metric_the_alerts_and_the_dashboard_name_is_exposed_by_the_services():
    """By the name a scrape returns: a counter's `_total`, a histogram's `_bucket`, `_sum`, `_count`."""
    exposed = exposed_series()
    used = {"alerts.yml": names_in("\n".join(rule["expr"] for rule in alert_rules())),
            "the dashboard": names_in("\n".join(target["expr"] for _, target in dashboard_targets())),
            "alerts_test.yml": names_in(ALERTS_TEST.read_text())}
    for where, names in used.items():
        assert names, where
        assert names <= set(exposed), f"{where} names metrics no service exposes: {sorted(names - set(exposed))}"


def series_labels(series: str) -> tuple[str, set[str]]:
    match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}", series.strip())
    assert match, series
    return match.group(1), set(re.findall(r'([a-zA-Z_]\w*)\s*=\s*"', match.group(2)))


def test_the_unit_tests_series_carry_exactly_the_labels_the_services_give_them():
    """Synthetic series with made-up labels would prove nothing about the real ones."""
    exposed = exposed_series()
    for test in unit_tests():
        for item in test["input_series"]:
            name, labels = series_labels(item["series"])
            expected = set() if name == "up" else exposed[name]
            assert labels == expected | TARGET_LABELS, item["series"]


def test_every_metric_is_on_the_dashboard_and_described_in_operations_md():
    shown = names_in("\n".join(target["expr"] for _, target in dashboard_targets()))
    described = OPERATIONS.read_text()
    for name, (kind, _) in defined_metrics().items():
        exposed_as = [name + suffix for suffix in SUFFIXES[kind]]
        assert shown & set(exposed_as), f"no dashboard panel shows {name}"
        primary = name + "_total" if kind == "counter" else name
        assert f"`{primary}`" in described, f"docs/OPERATIONS.md does not describe {primary}"


# --- the scrape configuration and the compose profile ----------------------------------------------------

def monitoring_service() -> dict:
    return load_yaml(MONITORING_COMPOSE)["services"]["prometheus"]


def test_promtool_finds_the_scrape_configuration_valid(tmp_path):
    """As shipped its token file exists only inside the container: the syntax alone is checked there, and
    the whole configuration (rule files included) on a copy whose token file exists."""
    run_promtool("check", "config", "--syntax-only", CONFIG.relative_to(REPO))
    token = tmp_path / "metrics_token"
    token.write_text("a-token-for-the-check-only-0123456789")
    shipped = monitoring_service()["secrets"][0]
    in_container = f"/run/secrets/{shipped['target']}"
    text = CONFIG.read_text()
    assert text.count(f"credentials_file: {in_container}") == len(scrape_jobs())
    (tmp_path / "prometheus.yml").write_text(text.replace(in_container, str(token)))
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    done = run_promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_prometheus_scrapes_every_compose_service_on_its_port_with_the_token():
    ports = default_ports()
    secret = monitoring_service()["secrets"][0]
    for job, config in scrape_jobs().items():
        (discovery,) = config["dns_sd_configs"]  # one target per replica
        assert discovery["names"] == [COMPOSE_SERVICES[job]] and discovery["type"] == "A"
        assert discovery["port"] == ports[job]
        assert config["authorization"] == {"credentials_file": f"/run/secrets/{secret['target']}"}
    assert load_yaml(CONFIG)["rule_files"] == ["alerts.yml"]


def test_the_compose_monitoring_profile_runs_a_pinned_prometheus_with_the_files_and_the_token():
    main = load_yaml(REPO / "docker-compose.yml")
    assert MONITORING_COMPOSE.relative_to(REPO).as_posix() in main["include"]
    for service in COMPOSE_SERVICES.values():
        assert main["services"][service]["environment"]["METRICS_TOKEN"] == "${METRICS_TOKEN:-}"
    spec = load_yaml(MONITORING_COMPOSE)
    # Everything in it is under the profile: a plain `docker compose up` starts nothing more.
    assert all(service.get("profiles") == ["monitoring"] for service in spec["services"].values())
    prometheus = monitoring_service()
    assert re.fullmatch(r"prom/prometheus:v2\.[0-9]+\.[0-9]+", prometheus["image"])
    config_file = next(arg.partition("=")[2] for arg in prometheus["command"] if arg.startswith("--config.file="))
    mounts = {}
    for volume in prometheus["volumes"]:
        source, target, *mode = volume.split(":")
        if source.startswith("./"):
            assert mode == ["ro"], volume
            assert (MONITORING_COMPOSE.parent / source).is_file(), volume
            mounts[Path(source).name] = target
    config_dir = Path(config_file).parent.as_posix()
    assert mounts == {"prometheus.yml": config_file, "alerts.yml": f"{config_dir}/alerts.yml"}
    assert any(volume.startswith("prometheus-data:") for volume in prometheus["volumes"])
    assert "prometheus-data" in spec["volumes"]
    # The page and API have no authentication: this machine only.
    assert all(port.startswith("127.0.0.1:") for port in prometheus["ports"])
    (secret,) = prometheus["secrets"]
    assert spec["secrets"][secret["source"]] == {"environment": "METRICS_TOKEN"}
    assert secret["mode"] == 0o444  # the image runs as an unprivileged user
    assert prometheus["healthcheck"]["test"][0] == "CMD"


# --- the dashboard ---------------------------------------------------------------------------------------

def test_the_dashboard_is_a_grafana_dashboard_on_a_prometheus_chosen_at_import():
    board = dashboard()
    assert board["schemaVersion"] >= 39 and board["uid"] and board["title"]
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel, target in dashboard_targets():
        assert panel["datasource"] == target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert 'job=~"$job"' in target["expr"], panel["title"]
    cells: dict[tuple[int, int], str] = {}
    for panel in board["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def as_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced by values (every job, every process)."""
    expr = expr.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")
    assert "$" not in expr, expr
    return expr


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """promtool parses each query as a recording rule, with Grafana's variables replaced by values."""
    rules = []
    for panel, target in dashboard_targets():
        rules.append({"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": as_promql(target["expr"])})
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = run_promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def test_the_streams_panel_shows_only_the_processes_that_hold_streams(tmp_path):
    """Memory and Cognition export the stream gauges too, at 0 open of a limit of 0: the panel leaves them out,
    and shows a Core process's streams and limit (promtool evaluates the panel's queries on such series)."""
    (panel,) = [panel for panel in dashboard()["panels"]
                if any("cortex_streams_limit" in target["expr"] for target in panel.get("targets", []))]
    processes = [("core", "10.0.0.5:8000", 3, 1000), ("core", "10.0.0.6:8000", 0, 1000),
                 ("memory", "memory:9000", 0, 0), ("cognition", "cognition:9100", 0, 0)]
    series = [{"series": f'{name}{{job="{job}", instance="{instance}"}}', "values": f"{value}x5"}
              for job, instance, open_, limit in processes
              for name, value in [("cortex_streams_open", open_), ("cortex_streams_limit", limit)]]
    expected = {"cortex_streams_open": {instance: open_ for job, instance, open_, _ in processes if job == "core"},
                "cortex_streams_limit": {instance: limit for job, instance, _, limit in processes if job == "core"}}
    checks = []
    for target in panel["targets"]:
        (shown,) = [name for name in expected if re.match(rf"sum by \(instance\) \({name}\b", target["expr"])]
        checks.append({"expr": as_promql(target["expr"]), "eval_time": "4m",
                       "exp_samples": [{"labels": f'{{instance="{instance}"}}', "value": value}
                                       for instance, value in expected[shown].items()]})
    assert len(checks) == 2
    spec = {"rule_files": [], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": checks}]}
    (tmp_path / "streams_test.yml").write_text(yaml.safe_dump(spec))
    done = run_promtool("test", "rules", "streams_test.yml", cwd=tmp_path)
    assert "SUCCESS" in done.stdout


def test_scrapes_under_gunicorn_have_no_created_series():
    """What SUFFIXES and docs/OPERATIONS.md say: in multiprocess mode (every gunicorn master sets
    PROMETHEUS_MULTIPROC_DIR) a scrape has `_total`, `_bucket`, `_sum`, `_count`, and no `_created`."""
    script = ("from common import metrics\n"
              "metrics.enable(True)\n"
              "metrics.call_finished('memory', 'get_context', 'ok', 0.01)\n"
              "print(metrics.exposition(()).decode())\n")
    with tempfile.TemporaryDirectory() as directory:
        done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory})
    assert done.returncode == 0, done.stderr
    assert "cortex_client_calls_total{" in done.stdout and "cortex_client_call_duration_seconds_count{" in done.stdout
    assert "_created" not in done.stdout


# --- nginx -----------------------------------------------------------------------------------------------

def test_the_public_proxy_configuration_answers_metrics_itself():
    text = re.sub(r"#[^\n]*", "", (REPO / "deploy" / "nginx" / "cortex.conf").read_text())
    block = re.search(r"location\s*=\s*/metrics\s*\{([^}]*)\}", text)
    assert block, "deploy/nginx/cortex.conf has no `location = /metrics`"
    assert re.search(r"\breturn\s+404\b", block.group(1)) and "proxy_pass" not in block.group(1)


class _Upstream(BaseHTTPRequestHandler):
    """Stands in for the Core behind nginx: answers everything 200 and notes the paths it was asked for."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b'{"status": "healthy"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.system
def test_nginx_refuses_metrics_however_it_is_spelled_and_passes_the_rest(tmp_path):
    _Upstream.seen.clear()
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    proxy = Nginx(tmp_path, [f"127.0.0.1:{upstream.server_address[1]}"])
    try:
        proxy.start()

        def ask(method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
            connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            try:
                connection.request(method, path, headers=headers or {})
                answer = connection.getresponse()
                return answer.status, answer.read()
            finally:
                connection.close()

        for method, path, headers in [("GET", "/metrics", {}), ("HEAD", "/metrics", {}), ("GET", "/metrics?x=1", {}),
                                      ("GET", "//metrics", {}), ("GET", "/%6Detrics", {}),
                                      ("GET", "/metrics", {"Authorization": "Bearer a-metrics-token-0123456789abc"})]:
            status, body = ask(method, path, headers)
            assert status == 404, (method, path, status)
            if method == "GET":
                assert json.loads(body)["error"]["code"] == "not_found", path
        assert ask("GET", "/metricsx")[0] == 200 and ask("GET", "/health")[0] == 200
        assert "/metricsx" in _Upstream.seen
        assert not [path for path in _Upstream.seen if "metrics" in path and path != "/metricsx"], _Upstream.seen
    finally:
        proxy.stop()
        upstream.shutdown()
        upstream.server_close()
