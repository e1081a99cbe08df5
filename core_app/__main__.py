"""`python -m core_app`: the Core App under gunicorn + gevent on PORT. With CORTEX_DISTRIBUTED_MODE unset
(false) it runs Memory and Cognition inside the same process: the whole system in one command."""

from common.serve import serve
from core_app.config import load_config


def address() -> tuple[str, int]:
    settings = load_config()
    return settings.host, settings.port


if __name__ == "__main__":
    serve("core_app.app:create_app()", address)
