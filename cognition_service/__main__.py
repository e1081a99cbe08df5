"""`python -m cognition_service`: the Cognition Service under gunicorn + gevent on COGNITION_SERVICE_PORT."""

from cognition_service.config import load_config
from common.serve import serve


def address() -> tuple[str, int]:
    settings = load_config()
    return settings.host, settings.port


if __name__ == "__main__":
    serve("cognition_service.app:create_app()", address)
