"""docs/API.md documents the API the code serves: every Core App route, and every tool and resource of
Memory and Cognition. A route added without its documentation fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cognition_service.app import create_app as cognition_app
from core_app.app import create_app as core_app
from memory_service.app import create_app as memory_app

REPO = Path(__file__).resolve().parents[1]
PLACEHOLDER = re.compile(r"<[^>]+>|\{[^}]+\}")


def documented() -> str:
    """docs/API.md with every path parameter (`{id}`, `{name}`) written as `{}`."""
    return PLACEHOLDER.sub("{}", (REPO / "docs" / "API.md").read_text())


def core_routes(tmp_path) -> list[str]:
    app = core_app({"DATABASE_URL": f"sqlite:///{tmp_path}/m.db", "HEALTH_INTERVAL_SECONDS": "0",
                    "JWT_SECRET": "api-docs-test-secret-0123456789abcdef", "CORTEX_DISTRIBUTED_MODE": "false",
                    "DEBUG_STATS": "true", "SERVICE_TOKEN": ""})
    return sorted(f"{method} {PLACEHOLDER.sub('{}', rule.rule)}" for rule in app.url_map.iter_rules()
                  if rule.endpoint != "static" for method in rule.methods - {"HEAD", "OPTIONS"})


def test_every_core_app_route_is_documented(tmp_path):
    text = documented()
    routes = core_routes(tmp_path)
    assert len(routes) > 15
    assert [route for route in routes if f"`{route}`" not in text and f"{route} " not in text] == []


@pytest.mark.parametrize("make_app", [memory_app, cognition_app], ids=["memory", "cognition"])
def test_every_tool_and_resource_is_documented(make_app, tmp_path):
    app = make_app({"DATABASE_URL": f"sqlite:///{tmp_path}/m.db", "HEALTH_INTERVAL_SECONDS": "0",
                    "SERVICE_TOKEN": "", "EMBEDDINGS": "off"})
    client = app.test_client()
    text = documented()
    tools = [tool["name"] for tool in client.get("/tools").get_json()["tools"]]
    templates = [PLACEHOLDER.sub("{}", r["path_template"]) for r in client.get("/resources").get_json()["resources"]]
    assert tools and templates
    assert [name for name in tools if f"| `{name}` |" not in text] == []
    assert [template for template in templates if f"`{template}" not in text] == []
    for endpoint in ("POST /tool/{}", "GET /tools", "GET /resource/{}", "GET /resources", "GET /health", "POST /mcp"):
        assert f"`{endpoint}`" in text
