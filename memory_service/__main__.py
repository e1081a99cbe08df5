"""`python -m memory_service`: the Memory Service under gunicorn + gevent on MEMORY_SERVICE_PORT."""

from common.serve import serve
from memory_service.config import load_config


def address() -> tuple[str, int]:
    settings = load_config()
    return settings.host, settings.port


if __name__ == "__main__":
    serve("memory_service.app:create_app()", address)
