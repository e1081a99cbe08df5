"""`python -m cognition_service`: the Cognition Service under gunicorn + gevent on COGNITION_SERVICE_PORT."""

from __future__ import annotations

from cognition_service.config import load_config
from common.serving import Listen, serve


def prepare() -> Listen:
    settings = load_config()
    return Listen(settings.host, settings.port, "COGNITION_SERVICE_PORT")


if __name__ == "__main__":
    serve("cognition_service.app:create_app()", prepare)
